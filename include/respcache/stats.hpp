#pragma once

#include <atomic>
#include <cstdint>

namespace respcache {

// A counter written by one thread only (its owner) and read by any: a relaxed load and store, no
// read-modify-write, so the hit path never contends on a shared cache line.
class counter {
public:
    void add(std::uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void sub(std::uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
    std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

// The figures one io thread keeps; INFO and /metrics sum them over threads.
struct thread_stats {
    counter commands;             // commands processed
    counter hits;                 // GETs answered from the cache
    counter misses;               // GETs sent to the backend
    counter forwarded;            // other commands sent to the backend
    counter backend_errors;       // requests answered "backend unavailable"
    counter connections;          // clients accepted
    counter rejected_connections; // clients refused (max clients)
    counter protocol_errors;      // clients closed for malformed input
    counter pinned;               // clients holding a dedicated backend connection now
    counter in_flight;            // backend requests awaiting replies now
};

}  // namespace respcache
