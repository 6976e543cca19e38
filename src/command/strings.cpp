#include "respcache/command/handlers.hpp"
#include "respcache/server/session.hpp"

namespace respcache::command {

void get(server::session& s, args_view args) {
    if (s.in_transaction()) {
        s.forward(args);
        return;
    }
    s.get(args);
}

}  // namespace respcache::command
