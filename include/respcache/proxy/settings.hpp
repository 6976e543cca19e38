#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace respcache::proxy {

// The settings a client core reads on its way: those SIGHUP may change (atomics, written by the server
// layer's reload, read relaxed by every io thread) and those fixed at start-up. Owned by the process.
struct settings {
    std::atomic<std::int64_t> request_timeout_ms{3000};
    std::atomic<std::int64_t> connect_timeout_ms{1000};
    std::atomic<std::int64_t> idle_timeout_ms{0};
    std::atomic<std::size_t> max_value_size{1024 * 1024};
    std::atomic<std::size_t> output_buffer_limit{0};
    std::atomic<std::size_t> pubsub_output_buffer_limit{32 * 1024 * 1024};
    std::atomic<std::size_t> max_clients{10000};
    std::atomic<bool> password_required{false};
    std::atomic<bool> cache_missing_keys{true};  // negative caching (--negative-caching)

    std::size_t query_buffer_limit = 1024ull * 1024 * 1024;  // client-query-buffer-limit
    std::uint32_t start_db = 0;                               // the database a new client is in

    std::chrono::milliseconds request_timeout() const noexcept {
        return std::chrono::milliseconds(request_timeout_ms.load(std::memory_order_relaxed));
    }
};

}  // namespace respcache::proxy
