#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "respcache/backend/connection.hpp"

namespace respcache::backend {

// The backend connections of one io thread: a few shared, pipelined connections that every session of
// the thread multiplexes its requests onto, and dedicated connections that one session holds alone while
// its state requires it (MULTI/WATCH, blocking commands, subscriptions, MONITOR). Dedicated connections
// that come back clean are kept idle for reuse, up to a bound. Lives on one executor; not thread-safe.
class pool {
public:
    pool(asio::any_io_executor ex, connection_options options, std::size_t shared_count);
    ~pool();

    // Starts the shared connections.
    void start();
    // Closes every connection; what is pending fails.
    void close();

    // The shared connection for a session: the same one for a given `session_id`, so that a session's
    // requests stay in order on one pipeline.
    connection& shared_for(std::uint64_t session_id) const;
    const std::vector<std::shared_ptr<connection>>& shared() const noexcept { return shared_; }

    // A connection for one session alone: an idle one if any is ready, else a new one (still connecting,
    // requests queue until it is up or fails).
    std::shared_ptr<connection> acquire_dedicated();
    // Gives a dedicated connection back. `clean` means its backend-side state is as acquire_dedicated
    // found it (no MULTI, WATCH, subscription or MONITOR, nothing pending); others are closed.
    void release_dedicated(std::shared_ptr<connection> c, bool clean);

    std::size_t dedicated_in_use() const noexcept { return dedicated_in_use_; }
    void set_timeouts(milliseconds connect_timeout, milliseconds request_timeout);

private:
    asio::any_io_executor ex_;
    connection_options options_;
    std::vector<std::shared_ptr<connection>> shared_;
    std::vector<std::shared_ptr<connection>> idle_;
    std::size_t dedicated_in_use_ = 0;
    bool closed_ = false;
};

}  // namespace respcache::backend
