#pragma once

#include <string>

#include "respcache/command/table.hpp"

// The handlers of the commands respcache answers or routes itself, grouped by family. Each is a row of
// the command table (src/command/table.cpp); arity has been checked before it runs.
namespace respcache::command {

// src/command/connection.cpp
void ping(server::session& s, args_view args);
void echo(server::session& s, args_view args);
void quit(server::session& s, args_view args);
void select(server::session& s, args_view args);
void auth(server::session& s, args_view args);
void hello(server::session& s, args_view args);
void reset(server::session& s, args_view args);
void client(server::session& s, args_view args);
// The RESP2 map HELLO answers with, for this client.
std::string hello_reply(server::session& s);

// src/command/strings.cpp
void get(server::session& s, args_view args);

// src/command/transactions.cpp
void multi(server::session& s, args_view args);
void exec_or_discard(server::session& s, args_view args);
void watch(server::session& s, args_view args);
void unwatch(server::session& s, args_view args);

// src/command/pubsub.cpp
void subscribe(server::session& s, args_view args);
void unsubscribe(server::session& s, args_view args);
void monitor(server::session& s, args_view args);

// src/command/server.cpp
void refuse_replication(server::session& s, args_view args);
void info(server::session& s, args_view args);

}  // namespace respcache::command
