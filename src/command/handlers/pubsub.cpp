#include "respcache/command/handlers/handlers.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::command {

void subscribe(context& c, args_view) { c.subscribe(false); }

void monitor(context& c, args_view) { c.subscribe(true); }

void unsubscribe(context& c, args_view args) {
    // Not subscribed (a subscriber's commands go to its own connection): Redis answers one
    // confirmation per channel named, or a single one with a nil channel, each with a count of 0.
    char buf[16];
    const std::string kind(util::to_lower(args[0], buf));
    resp::reply_builder& out = c.reply();
    auto confirm = [&](const std::string_view* channel) {
        out.push(3);
        out.bulk(kind);
        if (channel != nullptr)
            out.bulk(*channel);
        else
            out.null();
        out.integer(0);
    };
    if (args.size() == 1) {
        confirm(nullptr);
        return;
    }
    for (std::size_t i = 1; i < args.size(); ++i) confirm(&args[i]);
}

}  // namespace respcache::command
