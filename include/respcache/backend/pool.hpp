#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "respcache/backend/connection.hpp"

namespace respcache::backend {

// The backend connections of one io thread (see link_pool): a few shared, pipelined connections per
// protocol (the RESP3 ones made when a RESP3 client first needs one), and dedicated ones, of which those
// that come back clean are kept idle for reuse, up to a bound. Lives on one executor; not thread-safe.
class pool final : public link_pool {
public:
    // Makes each link of the pool (a cluster router instead of one connection, say).
    using link_factory = std::function<std::shared_ptr<pooled_link>(asio::any_io_executor, connection_options)>;

    // Links are connections unless `factory` makes them.
    pool(asio::any_io_executor ex, connection_options options, std::size_t shared_count, link_factory factory = {});
    ~pool() override;

    // Called for each shared link as it is made, before it starts (the worker watches them).
    void on_shared(std::function<void(std::size_t index, pooled_link& c)> f) { on_shared_ = std::move(f); }
    // Starts the shared RESP2 connections.
    void start();
    // Closes every connection; what is pending fails.
    void close();

    std::size_t shared_index(std::uint64_t client_id, resp::protocol p) const noexcept override;
    link& shared(std::size_t index) override;
    // How many shared links there can be (indexes 0 to this - 1).
    std::size_t shared_slots() const noexcept { return shared_.size(); }

    std::shared_ptr<link> acquire_dedicated(resp::protocol p) override;
    void release_dedicated(std::shared_ptr<link> l, bool clean) override;

    std::size_t dedicated_in_use() const noexcept { return dedicated_in_use_; }
    void set_timeouts(milliseconds connect_timeout, milliseconds request_timeout);

private:
    pooled_link& make_shared_link(std::size_t index);
    std::shared_ptr<pooled_link> make_link(connection_options o) const;
    connection_options options_for(resp::protocol p) const;

    asio::any_io_executor ex_;
    connection_options options_;
    std::size_t count_;                                 // shared links per protocol
    link_factory factory_;
    std::vector<std::shared_ptr<pooled_link>> shared_;  // RESP2 ones, then RESP3 ones (null until needed)
    std::vector<std::shared_ptr<link>> idle_[2];       // by protocol: RESP2, RESP3
    std::size_t dedicated_in_use_ = 0;
    bool closed_ = false;
    std::function<void(std::size_t, pooled_link&)> on_shared_;
};

}  // namespace respcache::backend
