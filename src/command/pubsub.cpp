#include "respcache/command/catalog.hpp"
#include "respcache/command/handlers.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/server/session.hpp"

namespace respcache::command {

void subscribe(server::session& s, args_view args) { s.subscribe(args, false); }

void monitor(server::session& s, args_view args) { s.subscribe(args, true); }

void unsubscribe(server::session& s, args_view args) {
    // Not subscribed (a subscriber's commands go to its own connection): Redis answers one
    // confirmation per channel named, or a single one with a nil channel, each with a count of 0.
    char buf[16];
    const std::string kind(to_lower(args[0], buf));
    std::string& out = s.reply();
    auto confirm = [&](const std::string_view* channel) {
        resp::write_array_header(out, 3);
        resp::write_bulk(out, kind);
        if (channel != nullptr)
            resp::write_bulk(out, *channel);
        else
            resp::write_null(out);
        resp::write_integer(out, 0);
    };
    if (args.size() == 1) {
        confirm(nullptr);
        return;
    }
    for (std::size_t i = 1; i < args.size(); ++i) confirm(&args[i]);
}

}  // namespace respcache::command
