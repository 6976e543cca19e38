#include "respcache/command/handlers/handlers.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::command {

void multi(context& c, args_view) { c.multi(); }

void exec_or_discard(context& c, args_view args) {
    if (util::iequals(args[0], "exec"))
        c.exec();
    else
        c.discard();
}

void watch(context& c, args_view) { c.watch(); }

void unwatch(context& c, args_view) { c.unwatch(); }

}  // namespace respcache::command
