#pragma once

#include <chrono>
#include <optional>

#include "respcache/command/catalog.hpp"
#include "respcache/command/table.hpp"

namespace respcache::command {

// Whether `args` may block in Redis (BLPOP and kin, XREAD/XREADGROUP with BLOCK, WAIT, WAITAOF, any
// command the backend flags blocking), so that it needs a backend connection of its own. `info` is the
// backend's description of it (nullptr when unknown).
bool may_block(args_view args, const command_info* info);

// SCRIPT KILL and FUNCTION KILL. They must reach Redis while a script holds a shared connection (Redis
// reads nothing more from the connection running the script, so what follows it there waits): they go on
// a connection of their own.
bool interrupts_script(args_view args);

// How long Redis itself may keep `args` blocked plus `slack`; nullopt when it may block for ever (a
// timeout of 0) or is not a blocking command with a timeout argument.
std::optional<std::chrono::milliseconds> blocking_timeout(args_view args, std::chrono::milliseconds slack);

}  // namespace respcache::command
