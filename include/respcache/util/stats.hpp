#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "respcache/util/hot_keys.hpp"

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

// A latency histogram with fixed buckets, written by one thread and read by any (see counter).
class latency_histogram {
public:
    // Upper bounds of the buckets, in microseconds; a last, implicit bucket holds the rest (+Inf).
    static constexpr std::array<std::uint64_t, 14> bounds_us{50, 100, 250, 500, 1000, 2500, 5000, 10000,
                                                             25000, 50000, 100000, 250000, 500000, 1000000};

    void record(std::chrono::nanoseconds d) noexcept {
        const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count()) / 1000);
        std::size_t i = 0;
        while (i < bounds_us.size() && us > bounds_us[i]) ++i;
        buckets_[i].add();
        sum_ns_.add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count())));
    }
    // Observations in bucket i (not cumulative); i == bounds_us.size() is the +Inf bucket.
    std::uint64_t bucket(std::size_t i) const noexcept { return buckets_[i].get(); }
    std::uint64_t sum_ns() const noexcept { return sum_ns_.get(); }

private:
    std::array<counter, bounds_us.size() + 1> buckets_;
    counter sum_ns_;
};

// Cached commands with figures of their own (command::stat_slot; slot 0 gathers the rest).
inline constexpr std::size_t kCachedCommandSlots = 128;

// One cached command's figures.
struct command_counts {
    counter hits;     // requests answered from the cache (an MGET: every key)
    counter misses;   // requests sent to the backend (an MGET: every key)
    counter partial;  // MGET: some keys from the cache, the others from the backend
};

// The figures one io thread keeps; INFO and /metrics sum them over threads.
struct thread_stats {
    counter commands;             // commands processed
    counter hits;                 // cache lookups that hit (a key of a cached read; an MGET looks up each)
    counter misses;               // cache lookups that missed (the key was read from the backend)
    counter shared_misses;        // misses that waited for another client's request of the same entry
    counter refreshes;            // entries read again ahead of their TTL (--refresh-ahead)
    counter stale_hits;           // hits served while the backend was unreachable (--stale-if-error)
    counter forwarded;            // other commands sent to the backend
    counter backend_errors;       // requests answered "backend unavailable"
    counter connections;          // clients accepted
    counter rejected_connections; // clients refused (max clients)
    counter protocol_errors;      // clients closed for malformed input
    counter output_limit_disconnects;  // clients closed for not reading their replies
    counter idle_disconnects;     // clients closed by --timeout
    counter auth_failures;        // AUTH refused
    counter pinned;               // clients holding a dedicated backend connection now
    counter in_flight;            // backend requests awaiting replies now
    latency_histogram hit_latency;   // from the read that brought a GET to its cached reply
    latency_histogram miss_latency;  // from the read that brought a GET to the backend's reply
    std::array<command_counts, kCachedCommandSlots> cached_commands;
    hot_keys hot;  // the keys of cached reads, sampled
};

}  // namespace respcache
