#include "respcache/command/handlers.hpp"
#include "respcache/server/session.hpp"

namespace respcache::command {

void refuse_replication(server::session& s, args_view) {
    s.reply_error("ERR respcache does not relay replication: connect replicas to Redis directly");
}

}  // namespace respcache::command
