#pragma once

#include <string>

#include "respcache/command/context.hpp"

// The handlers of the commands respcache answers or routes itself, grouped by family. Each is a row of
// the command table (src/command/table.cpp); arity has been checked before it runs.
namespace respcache::command {

// src/command/handlers/connection.cpp
void ping(context& c, args_view args);
void echo(context& c, args_view args);
void quit(context& c, args_view args);
void select(context& c, args_view args);
void auth(context& c, args_view args);
void hello(context& c, args_view args);
void reset(context& c, args_view args);
// The map HELLO answers with, for this client, written to `out`.
void hello_reply(context& c, resp::reply_builder& out);

// src/command/handlers/client.cpp
void client(context& c, args_view args);

// src/command/handlers/tracking.cpp: CLIENT TRACKING, CACHING, GETREDIR, TRACKINGINFO
void client_tracking(context& c, args_view args);
void client_caching(context& c, args_view args);
void client_getredir(context& c, args_view args);
void client_trackinginfo(context& c, args_view args);

// src/command/handlers/strings.cpp: every row with a read policy.
void read_through(context& c, args_view args);

// src/command/handlers/transactions.cpp
void multi(context& c, args_view args);
void exec_or_discard(context& c, args_view args);
void watch(context& c, args_view args);
void unwatch(context& c, args_view args);

// src/command/handlers/pubsub.cpp
void subscribe(context& c, args_view args);
void unsubscribe(context& c, args_view args);
void monitor(context& c, args_view args);

// src/command/handlers/server.cpp
void refuse_replication(context& c, args_view args);
void info(context& c, args_view args);

}  // namespace respcache::command
