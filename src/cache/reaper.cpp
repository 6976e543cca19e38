#include "respcache/cache/reaper.hpp"

namespace respcache::cache {

reaper::reaper(lru_cache& cache, std::chrono::milliseconds interval)
    : cache_(cache), interval_(interval), thread_([this] { run(); }) {}

reaper::~reaper() { stop(); }

void reaper::set_interval(std::chrono::milliseconds interval) {
    std::lock_guard guard(mu_);
    interval_ = interval;
}

void reaper::stop() {
    {
        std::lock_guard guard(mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::uint64_t reaper::passes() const {
    std::lock_guard guard(mu_);
    return passes_;
}

void reaper::run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
        if (wake_.wait_for(lock, interval_, [this] { return stopping_; })) break;
        lock.unlock();
        cache_.remove_expired(cache_.time_source().now());
        lock.lock();
        ++passes_;
    }
}

}  // namespace respcache::cache
