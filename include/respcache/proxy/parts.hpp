#pragma once

#include "respcache/proxy/client_state.hpp"
#include "respcache/proxy/environment.hpp"
#include "respcache/proxy/pending.hpp"
#include "respcache/proxy/reply_queue.hpp"

namespace respcache::proxy {

// What every part of one client's core works with: the thread's environment (which outlives the core),
// and the client's state, reply queue and completion sink (owned by the core, outliving its parts).
struct core_parts {
    environment& env;
    client_state& client;
    reply_queue& queue;
    completion_sink& sink;
};

}  // namespace respcache::proxy
