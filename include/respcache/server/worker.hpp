#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "respcache/backend/pool.hpp"
#include "respcache/cluster/topology.hpp"
#include "respcache/coherence/tracker.hpp"
#include "respcache/proxy/environment.hpp"
#include "respcache/server/services.hpp"
#include "respcache/util/stats.hpp"

namespace respcache::server {

class session;

// One io thread: its io_context, its backend connections, its clients and its statistics. A client
// connection lives on one worker for its whole life. Everything here but the io_context itself is
// touched only from the worker's own thread. It is the proxy::host of its clients' cores.
class worker final : public proxy::host {
public:
    worker(services& shared, std::size_t index, backend::connection_options backend_options);
    ~worker() override;
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    boost::asio::io_context& io() noexcept { return io_; }
    std::size_t index() const noexcept { return index_; }
    services& shared() noexcept { return shared_; }
    backend::pool& pool() noexcept { return pool_; }
    thread_stats& stats() noexcept { return stats_; }
    // What a client core of this thread works with.
    proxy::environment& environment() noexcept { return env_; }

    // proxy::host
    const command::catalog* catalog() override;
    const command::cache_plan& cache_plan() override;
    command::backend_facts facts() const override { return shared_.facts(); }
    bool password_matches(std::string_view password) const override { return shared_.password_matches(password); }
    std::string proxy_info() override;
    void refresh_catalog() override { shared_.request_catalog_refresh(); }
    void post(std::function<void()> f) override;
    std::atomic<bool>& backend_busy() noexcept override { return shared_.health().busy; }
    proxy::user_links links_for(std::string_view user, std::string_view password) override;

    void attach(session* s) { sessions_.insert(s); }
    void detach(session* s) { sessions_.erase(s); }
    std::size_t session_count() const noexcept { return sessions_.size(); }
    // Asks every client to finish what is in flight and leave (own thread only).
    void stop_sessions();
    // Ends every client now, whatever it is doing (own thread only).
    void stop_sessions_now();

    // Starts the backend connections (own thread only).
    void start_backend();
    // Closes the backend connections (own thread only).
    void stop_backend();
    // New backend timeouts for the connections of this thread (own thread only).
    void apply_timeouts(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds request_timeout);

private:
    boost::asio::io_context io_{1};
    std::size_t index_;
    services& shared_;
    thread_stats stats_;
    std::shared_ptr<cluster::topology> topology_;  // a Redis Cluster backend's slots; null for one Redis
    backend::pool::link_factory link_factory();
    backend::pool pool_;
    std::vector<coherence::link_tracking> tracking_;  // one per shared connection of pool_
    // Clients logged in to Redis as another user than --backend's have links of their user's.
    struct user_pool {
        std::unique_ptr<backend::pool> pool;
        std::vector<coherence::link_tracking> tracking;
    };
    backend::connection_options backend_options_;
    std::map<std::string, user_pool, std::less<>> users_;
    proxy::environment env_;
    void refresh_plan();

    std::shared_ptr<const command::cache_plan> plan_;
    std::uint64_t catalog_version_ = 0;
    std::unordered_set<session*> sessions_;
};

}  // namespace respcache::server
