#include "respcache/command/handlers/handlers.hpp"

namespace respcache::command {

void read_through(context& c, args_view args) { c.read_through(args); }

}  // namespace respcache::command
