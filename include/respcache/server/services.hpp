#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "respcache/cache/lru_cache.hpp"
#include "respcache/cluster/topology.hpp"
#include "respcache/coherence/tracker.hpp"
#include "respcache/command/cache_plan.hpp"
#include "respcache/command/catalog.hpp"
#include "respcache/command/client_info.hpp"
#include "respcache/command/context.hpp"
#include "respcache/config/config.hpp"
#include "respcache/proxy/settings.hpp"
#include "respcache/proxy/tracking_table.hpp"
#include "respcache/util/stats.hpp"

namespace respcache::server {

using command::backend_facts;

// How the shared backend connections are doing, summed over io threads.
struct backend_health {
    std::atomic<int> connections = 0;     // shared connections in all
    std::atomic<int> up = 0;              // of which ready now
    std::atomic<std::uint64_t> reconnects = 0;
    // Redis's last forwarded reply was -BUSY (see proxy::host::backend_busy).
    alignas(64) std::atomic<bool> busy = false;
    mutable std::mutex mu;
    std::string last_error;               // GUARDED_BY(mu)
};

// Everything the io threads share. Owned by main(); outlives every thread and client.
class services {
public:
    services(config cfg, cache::lru_cache& cache);

    const config& startup_config() const noexcept { return cfg_; }
    cache::lru_cache& cache() noexcept { return cache_; }
    proxy::settings& settings() noexcept { return settings_; }
    backend_health& health() noexcept { return health_; }
    coherence::tracker& coherence() noexcept { return coherence_; }
    coherence::tracking_state& tracking() noexcept { return coherence_.state(); }
    command::client_registry& clients() noexcept { return clients_; }
    proxy::tracking_table& client_tracking() noexcept { return client_tracking_; }
    // A Redis Cluster backend's figures (all zero for one Redis).
    cluster::counters& cluster_counters() noexcept { return cluster_counters_; }

    // Applies what a reloaded configuration may change while running: cache limits, timeouts, limits,
    // password. The caller has checked the configuration.
    void apply_live(const config& cfg);
    // Whether `password` is the one clients must give, compared in constant time. False when none is set.
    bool password_matches(std::string_view password) const;
    // Ready to serve: every shared backend connection is up, and the invalidation channel is live (when
    // tracking is wanted). `why` says what is missing.
    bool ready(std::string& why) const;
    // The same but for the warm start: the backend and the invalidation channel are up.
    bool backend_ready(std::string& why) const;
    // A warm start is fetching the saved reads: not ready until it is done (or has given up).
    void set_warming(bool on) noexcept { warming_.store(on, std::memory_order_release); }

    // The backend's command table, and the cache plan made of it and --cache-commands (which owns it).
    // Each thread keeps its own copy and refreshes it when the version moves.
    void publish_catalog(std::shared_ptr<const command::catalog> c);
    std::shared_ptr<const command::cache_plan> plan() const;
    std::uint64_t catalog_version() const noexcept { return catalog_version_.load(std::memory_order_acquire); }

    // Asks for the command table to be learned again (after MODULE LOAD / UNLOAD). Safe from any thread.
    void set_catalog_refresher(std::function<void()> f) { refresher_ = std::move(f); }
    void request_catalog_refresh() const {
        if (refresher_) refresher_();
    }

    void set_backend_facts(backend_facts f);
    backend_facts facts() const;

    // Per-thread statistics, registered by each io thread before it serves.
    void register_stats(const thread_stats* s);
    std::vector<const thread_stats*> all_stats() const;

    std::atomic<std::size_t>& connected_clients() noexcept { return connected_clients_; }
    std::uint64_t next_client_id() noexcept { return next_client_id_.fetch_add(1, std::memory_order_relaxed); }
    std::chrono::steady_clock::time_point started() const noexcept { return started_; }

private:
    void rebuild_plan();  // mu_ held

    const config cfg_;
    cache::lru_cache& cache_;
    proxy::settings settings_;
    backend_health health_;
    std::string password_;  // GUARDED_BY(mu_)
    std::atomic<bool> warming_{false};
    std::function<void()> refresher_;  // set once before the io threads start
    coherence::tracker coherence_;
    command::client_registry clients_;
    proxy::tracking_table client_tracking_{clients_};
    cluster::counters cluster_counters_;
    mutable std::mutex mu_;
    std::shared_ptr<const command::catalog> catalog_;  // GUARDED_BY(mu_)
    command::cache_commands cache_commands_;           // GUARDED_BY(mu_)
    std::shared_ptr<const command::cache_plan> plan_;  // GUARDED_BY(mu_)
    backend_facts facts_;                              // GUARDED_BY(mu_)
    std::vector<const thread_stats*> stats_;           // GUARDED_BY(mu_)
    std::atomic<std::uint64_t> catalog_version_{0};
    std::atomic<std::size_t> connected_clients_{0};
    std::atomic<std::uint64_t> next_client_id_{1};
    const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace respcache::server
