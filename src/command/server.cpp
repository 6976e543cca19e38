#include "respcache/command/catalog.hpp"
#include "respcache/command/handlers.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/server/report.hpp"
#include "respcache/server/session.hpp"

namespace respcache::command {

void refuse_replication(server::session& s, args_view) {
    s.reply_error("ERR respcache does not relay replication: connect replicas to Redis directly");
}

void info(server::session& s, args_view args) {
    // The proxy's section comes with INFO, INFO default|all|everything, and INFO proxy; the backend is
    // asked only for the sections it has.
    bool with_proxy = args.size() == 1;
    bool backend_sections = args.size() == 1;
    for (std::size_t i = 1; i < args.size(); ++i) {
        char buf[16];
        const std::string_view section = to_lower(args[i], buf);
        if (section == "proxy") {
            with_proxy = true;
            continue;
        }
        backend_sections = true;
        if (section == "all" || section == "everything" || section == "default") with_proxy = true;
    }
    if (!backend_sections) {
        resp::write_bulk(s.reply(), server::proxy_info_section(s.shared()));
        return;
    }
    s.forward_info(args, with_proxy);
}

}  // namespace respcache::command
