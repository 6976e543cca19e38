#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "respcache/backend/connection.hpp"

namespace respcache::backend {

// The backend connections of one io thread (see link_pool): a few shared, pipelined connections, and
// dedicated ones, of which those that come back clean are kept idle for reuse, up to a bound. Lives on
// one executor; not thread-safe.
class pool final : public link_pool {
public:
    pool(asio::any_io_executor ex, connection_options options, std::size_t shared_count);
    ~pool() override;

    // Starts the shared connections.
    void start();
    // Closes every connection; what is pending fails.
    void close();

    std::size_t shared_index(std::uint64_t client_id) const noexcept override { return client_id % shared_.size(); }
    link& shared(std::size_t index) override { return *shared_[index]; }
    const std::vector<std::shared_ptr<connection>>& shared_connections() const noexcept { return shared_; }

    std::shared_ptr<link> acquire_dedicated() override;
    void release_dedicated(std::shared_ptr<link> l, bool clean) override;

    std::size_t dedicated_in_use() const noexcept { return dedicated_in_use_; }
    void set_timeouts(milliseconds connect_timeout, milliseconds request_timeout);

private:
    asio::any_io_executor ex_;
    connection_options options_;
    std::vector<std::shared_ptr<connection>> shared_;
    std::vector<std::shared_ptr<link>> idle_;
    std::size_t dedicated_in_use_ = 0;
    bool closed_ = false;
};

}  // namespace respcache::backend
