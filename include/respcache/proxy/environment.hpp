#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/backend/link.hpp"
#include "respcache/cache/lru_cache.hpp"
#include "respcache/coherence/tracker.hpp"
#include "respcache/command/cache_plan.hpp"
#include "respcache/command/catalog.hpp"
#include "respcache/command/client_info.hpp"
#include "respcache/command/context.hpp"
#include "respcache/proxy/settings.hpp"
#include "respcache/util/stats.hpp"

namespace respcache::proxy {

class tracking_table;

// The backend links of the clients logged in to Redis as one user, on one io thread: a pool whose
// connections log in as that user, with coherence's record of each shared one.
struct user_links {
    backend::link_pool* links = nullptr;  // nullptr: the proxy's own (environment::links)
    std::vector<coherence::link_tracking>* tracking = nullptr;
};

// What a client core asks of the process and of its io thread beyond plain data. Implemented by the
// server layer's worker; by a fake in the tests.
class host {
public:
    virtual ~host() = default;
    // The backend's command table as this thread last saw it; nullptr while Redis was never reached.
    virtual const command::catalog* catalog() = 0;
    // The reads served through the cache, made of that table and --cache-commands. Never nullptr.
    virtual const command::cache_plan& cache_plan() = 0;
    virtual command::backend_facts facts() const = 0;
    // Whether `password` is the one --requirepass asks for (constant time).
    virtual bool password_matches(std::string_view password) const = 0;
    // INFO's "# Proxy" section.
    virtual std::string proxy_info() = 0;
    // The command table may have changed (MODULE LOAD/UNLOAD): learn it again.
    virtual void refresh_catalog() = 0;
    // Runs `f` later on this thread (for answers that arrive on other threads).
    virtual void post(std::function<void()> f) = 0;
    // Whether the last reply forwarded from Redis was -BUSY (a script or function running past
    // busy-reply-threshold). While it is set, PING goes to Redis. Shared by every io thread.
    virtual std::atomic<bool>& backend_busy() noexcept = 0;
    // The links for clients that Redis accepted as `user` with `password`: the proxy's own (both null)
    // when that is the user of --backend; else this thread's pool for the user, made for its first client
    // (with the password that client gave) and kept while the thread runs.
    virtual user_links links_for(std::string_view user, std::string_view password) = 0;
};

// Everything a client core works with, owned by the process or by its io thread, all outliving the core.
struct environment {
    proxy::host& host;
    proxy::settings& settings;
    cache::lru_cache& cache;
    coherence::tracker& coherence;
    backend::link_pool& links;
    std::vector<coherence::link_tracking>& tracking;  // one per shared link of this thread, by index
    command::client_registry& clients;
    proxy::tracking_table& client_tracking;  // CLIENT TRACKING of every client of the process
    thread_stats& stats;
};

}  // namespace respcache::proxy
