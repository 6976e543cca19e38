#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "respcache/cache/lru_cache.hpp"
#include "respcache/command/catalog.hpp"
#include "respcache/config.hpp"
#include "respcache/stats.hpp"

namespace respcache::server {

// What CLIENT LIST / CLIENT INFO show of one client, and how to end it from any thread. Created by its
// session, which writes it; read by whichever thread runs CLIENT LIST or CLIENT KILL.
struct client_info {
    std::uint64_t id = 0;
    std::string addr;    // ip:port of the client
    std::string laddr;   // ip:port it connected to
    std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
    std::atomic<std::int64_t> last_active_ms{0};  // steady clock
    std::atomic<std::uint32_t> db{0};
    std::atomic<int> multi{-1};         // commands queued in MULTI, -1 outside
    std::atomic<int> subscriptions{0};  // channels + patterns
    std::atomic<int> shard_subscriptions{0};
    std::atomic<bool> monitor{false};
    std::atomic<bool> blocked{false};
    std::atomic<std::int64_t> blocked_backend_id{0};  // CLIENT ID of the connection a blocking command waits on
    mutable std::mutex mu;
    std::string name;      // GUARDED_BY(mu)
    std::string lib_name;  // GUARDED_BY(mu)
    std::string lib_ver;   // GUARDED_BY(mu)
    std::string last_command = "NULL";  // GUARDED_BY(mu)
    std::string user = "default";       // GUARDED_BY(mu)
    bool no_evict = false;              // GUARDED_BY(mu)
    bool no_touch = false;              // GUARDED_BY(mu)
    char last_seen_[16] = {};     // the owner's copy of the last name, to skip the lock on repeats
    std::uint8_t last_seen_len_ = 0;
    // Ends the client: posts the close to the client's own thread. Set and cleared by the session under
    // `mu`; call end() from any thread.
    std::function<void()> kill;  // GUARDED_BY(mu)
    void end() const;

    // Records the command being run (for cmd= in CLIENT LIST). Cheap when it is the same as last time:
    // no lock is taken then.
    void note_command(std::string_view name);

    // The line of CLIENT LIST for this client, in Redis's format (without the trailing newline).
    std::string describe() const;
};

// Every connected client, for CLIENT LIST / KILL. Thread-safe; touched at connect, disconnect and by
// those commands only.
class client_registry {
public:
    void add(std::shared_ptr<client_info> c);
    void remove(std::uint64_t id);
    std::vector<std::shared_ptr<client_info>> snapshot() const;
    std::shared_ptr<client_info> find(std::uint64_t id) const;
    std::size_t size() const;

private:
    mutable std::mutex mu_;
    std::unordered_map<std::uint64_t, std::shared_ptr<client_info>> clients_;  // GUARDED_BY(mu_)
};

// What the proxy learned about the backend at connect time (refreshed on every reconnect).
struct backend_facts {
    std::string version;            // redis_version of INFO server; empty until known
    std::uint32_t databases = 16;   // CONFIG GET databases
    bool databases_known = false;   // CONFIG GET databases answered (it may be renamed or denied)
    bool tracking_supported = true; // Redis >= 6.0
};

// State of the invalidation channel (Redis client tracking), written by the invalidation listener and
// read by every thread before filling the cache.
struct tracking_state {
    std::atomic<bool> live{false};          // subscribed to __redis__:invalidate and answering PINGs
    std::atomic<std::uint64_t> epoch{1};    // bumped whenever the channel is (re)established or lost
    std::atomic<std::int64_t> redirect_id{0};  // CLIENT ID of the listener's connection
    std::atomic<bool> unsupported{false};   // the backend has no client tracking: TTL only
    std::atomic<std::uint64_t> invalidations{0};  // invalidation messages received
    std::atomic<std::uint64_t> losses{0};         // times the channel was lost (and the cache flushed)
    std::atomic<std::uint64_t> barriers{0};       // read barriers passed (--consistency strict)
    // Catching up with the channel from any thread. The listener publishes its socket and how to read
    // it; `read_mutex` serializes every read of it (the listener's and the io threads').
    std::mutex read_mutex;
    std::atomic<int> fd{-1};                  // the channel's socket while live (changed under read_mutex)
    std::atomic<bool> draining{false};        // someone holds bytes read from it but not yet applied
    std::function<bool(int)> drain;           // reads and applies what the socket holds (set once)

    // Applies every invalidation Redis has sent so far that has reached this host, reading the channel's
    // socket if the listener has not yet (one poll() when nothing is pending). True when the channel is
    // live and caught up: then a cache hit may be served. Redis sends a write's invalidation together
    // with the write's reply, so a request sent after a write was acknowledged finds that write's
    // invalidation here and it is applied before the request is served.
    bool catch_up();

    // Read barriers (--consistency strict). Redis queues a write's invalidation on the channel while it
    // runs the write, so a PING sent on the channel after a request arrived is answered after every
    // invalidation of every write acknowledged before that request: once its PONG is read, those are
    // applied. One barrier PING is in flight at a time; requests that arrive meanwhile share the next.
    // `done(true)` once passed, `done(false)` if the channel is not live or is lost first; called on
    // whichever thread reads the channel (possibly under read_mutex) or on the caller's, never under
    // barrier_mu_: it must only post.
    void await_barrier(std::function<void(bool)> done);
    // The reply to barrier `seq` was read, after everything before it on the channel was applied.
    void barrier_answered(std::uint64_t seq);
    // The channel was lost: every waiting barrier fails. Called after `live` went false.
    void barriers_failed();
    // Sends PING for barrier `seq` on the channel; set once by the listener before it goes live.
    std::function<void(std::uint64_t)> send_barrier;

private:
    std::mutex barrier_mu_;
    std::uint64_t barrier_seq_ = 0;       // GUARDED_BY(barrier_mu_): the last barrier sent
    bool barrier_in_flight_ = false;      // GUARDED_BY(barrier_mu_)
    std::vector<std::function<void(bool)>> riding_;  // GUARDED_BY(barrier_mu_): arrived before it was sent
    std::vector<std::function<void(bool)>> next_;    // GUARDED_BY(barrier_mu_): arrived after: the next one
};

// The settings that SIGHUP may change while running; everything else is fixed at start-up.
struct live_settings {
    std::atomic<std::int64_t> request_timeout_ms{3000};
    std::atomic<std::int64_t> connect_timeout_ms{1000};
    std::atomic<std::int64_t> idle_timeout_ms{0};
    std::atomic<std::size_t> max_value_size{1024 * 1024};
    std::atomic<std::size_t> output_buffer_limit{0};
    std::atomic<std::size_t> pubsub_output_buffer_limit{32 * 1024 * 1024};
    std::atomic<std::size_t> max_clients{10000};
    std::atomic<bool> password_required{false};
};

// How the shared backend connections are doing, summed over io threads.
struct backend_health {
    std::atomic<int> connections = 0;     // shared connections in all
    std::atomic<int> up = 0;              // of which ready now
    std::atomic<std::uint64_t> reconnects = 0;
    mutable std::mutex mu;
    std::string last_error;               // GUARDED_BY(mu)
};

// Everything the io threads share. Owned by main(); outlives every thread and session.
class services {
public:
    services(config cfg, cache::lru_cache& cache);

    const config& startup_config() const noexcept { return cfg_; }
    cache::lru_cache& cache() noexcept { return cache_; }
    live_settings& live() noexcept { return live_; }
    backend_health& health() noexcept { return health_; }

    // Applies what a reloaded configuration may change while running: cache limits, timeouts, limits,
    // password, log level. The caller has checked the configuration.
    void apply_live(const config& cfg);
    // Whether `password` is the one clients must give, compared in constant time. False when none is set.
    bool password_matches(std::string_view password) const;
    // Ready to serve: every shared backend connection is up, and the invalidation channel is live (when
    // tracking is wanted). `why` says what is missing.
    bool ready(std::string& why) const;
    tracking_state& tracking() noexcept { return tracking_; }
    client_registry& clients() noexcept { return clients_; }

    // Whether a fill may be inserted for a reply read on a connection that enabled tracking for
    // `connection_epoch` (0: it did not). In ttl mode, or against a backend without tracking: always.
    bool fill_allowed(std::uint64_t connection_epoch) const noexcept;
    // Whether cache-filling reads must carry CLIENT TRACKING / CLIENT CACHING.
    bool tracking_wanted() const noexcept;
    // Whether hits wait for a read barrier first (--consistency strict, with tracking in use).
    bool strict_reads() const noexcept { return cfg_.consistency == consistency_mode::strict && tracking_wanted(); }
    // --consistency strict against a backend without client tracking: the promise cannot be kept, so
    // nothing is served from the cache (every GET goes to the backend).
    bool cache_refused() const noexcept {
        return cfg_.consistency == consistency_mode::strict && tracking_.unsupported.load(std::memory_order_relaxed);
    }

    // The backend's command table. Each thread keeps its own copy and refreshes it when the version moves.
    void publish_catalog(std::shared_ptr<const command::catalog> c);
    std::shared_ptr<const command::catalog> catalog() const;
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
    const config cfg_;
    cache::lru_cache& cache_;
    live_settings live_;
    backend_health health_;
    std::string password_;  // GUARDED_BY(mu_)
    std::function<void()> refresher_;  // set once before the io threads start
    tracking_state tracking_;
    client_registry clients_;
    mutable std::mutex mu_;
    std::shared_ptr<const command::catalog> catalog_;  // GUARDED_BY(mu_)
    backend_facts facts_;                              // GUARDED_BY(mu_)
    std::vector<const thread_stats*> stats_;           // GUARDED_BY(mu_)
    std::atomic<std::uint64_t> catalog_version_{0};
    std::atomic<std::size_t> connected_clients_{0};
    std::atomic<std::uint64_t> next_client_id_{1};
    const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace respcache::server
