#include "respcache/command/handlers/handlers.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::command {

void refuse_replication(context& c, args_view) {
    c.reply().error("ERR respcache does not relay replication: connect replicas to Redis directly");
}

void info(context& c, args_view args) {
    // The proxy's section comes with INFO, INFO default|all|everything, and INFO proxy; the backend is
    // asked only for the sections it has.
    bool with_proxy = args.size() == 1;
    bool backend_sections = args.size() == 1;
    for (std::size_t i = 1; i < args.size(); ++i) {
        char buf[16];
        const std::string_view section = util::to_lower(args[i], buf);
        if (section == "proxy") {
            with_proxy = true;
            continue;
        }
        backend_sections = true;
        if (section == "all" || section == "everything" || section == "default") with_proxy = true;
    }
    if (!backend_sections) {
        c.reply().verbatim(c.proxy_info());
        return;
    }
    c.forward_info(with_proxy);
}

}  // namespace respcache::command
