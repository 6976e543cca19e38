#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "respcache/cache/lru_cache.hpp"

namespace respcache::cache {

// The TTL reaper: a plain thread that wakes every `interval`, removes the cache's expired entries and
// goes back to sleep. stop() (or the destructor) wakes it at once and joins it, so shutdown never waits
// for a whole interval. The cache must outlive the reaper.
class reaper {
public:
    reaper(lru_cache& cache, std::chrono::milliseconds interval);
    ~reaper();
    reaper(const reaper&) = delete;
    reaper& operator=(const reaper&) = delete;

    // Changes the period from the next wake-up on.
    void set_interval(std::chrono::milliseconds interval);
    // Wakes the thread and waits for it to end. Idempotent.
    void stop();
    // Completed passes so far (each pass is one remove_expired over every shard).
    std::uint64_t passes() const;

private:
    void run();

    lru_cache& cache_;
    mutable std::mutex mu_;
    std::condition_variable wake_;
    std::chrono::milliseconds interval_;  // GUARDED_BY(mu_)
    bool stopping_ = false;               // GUARDED_BY(mu_)
    std::uint64_t passes_ = 0;            // GUARDED_BY(mu_)
    std::thread thread_;                  // started last, joined by stop()
};

}  // namespace respcache::cache
