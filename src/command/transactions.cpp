#include "respcache/command/handlers.hpp"
#include "respcache/server/session.hpp"

namespace respcache::command {

void multi(server::session& s, args_view args) { s.begin_transaction(args); }

void exec_or_discard(server::session& s, args_view args) { s.end_transaction(args); }

void watch(server::session& s, args_view args) { s.watch(args); }

void unwatch(server::session& s, args_view args) { s.unwatch(args); }

}  // namespace respcache::command
