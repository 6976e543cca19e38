#pragma once

#include <cstddef>
#include <memory>
#include <unordered_set>

#include <boost/asio/io_context.hpp>

#include "respcache/backend/pool.hpp"
#include "respcache/server/services.hpp"
#include "respcache/stats.hpp"

namespace respcache::server {

class session;
class catalog_loader;

// One io thread: its io_context, its backend connections, its sessions and its statistics. A client
// connection lives on one worker for its whole life. Everything here but the io_context itself is
// touched only from the worker's own thread.
class worker {
public:
    worker(services& shared, std::size_t index, backend::connection_options backend_options);
    ~worker();
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    boost::asio::io_context& io() noexcept { return io_; }
    std::size_t index() const noexcept { return index_; }
    services& shared() noexcept { return shared_; }
    backend::pool& pool() noexcept { return pool_; }
    thread_stats& stats() noexcept { return stats_; }

    // The backend's command table as this thread last saw it (refreshed when services publishes a new
    // one). nullptr while the backend has never been reached.
    const command::catalog* catalog();

    // The loader of the command table, on the worker that runs it (nullptr elsewhere).
    void set_catalog_loader(catalog_loader* l) noexcept { loader_ = l; }
    catalog_loader* loader() noexcept { return loader_; }

    void attach(session* s) { sessions_.insert(s); }
    void detach(session* s) { sessions_.erase(s); }
    std::size_t session_count() const noexcept { return sessions_.size(); }
    // Asks every session to finish what is in flight and leave (own thread only).
    void stop_sessions();
    // Ends every session now, whatever it is doing (own thread only).
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
    backend::pool pool_;
    std::shared_ptr<const command::catalog> catalog_;
    std::uint64_t catalog_version_ = 0;
    catalog_loader* loader_ = nullptr;
    std::unordered_set<session*> sessions_;
};

}  // namespace respcache::server
