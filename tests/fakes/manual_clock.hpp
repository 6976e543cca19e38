#pragma once

#include <atomic>

#include "respcache/cache/clock.hpp"

namespace respcache::fakes {

using cache::millis;

// A clock that only moves when told to; safe to read from several threads.
class manual_clock final : public cache::clock {
public:
    explicit manual_clock(millis start = 1'000'000) : now_(start) {}
    millis now() const noexcept override { return now_.load(std::memory_order_acquire); }
    void advance(millis by) noexcept { now_.fetch_add(by, std::memory_order_acq_rel); }
    void set(millis to) noexcept { now_.store(to, std::memory_order_release); }

private:
    std::atomic<millis> now_;
};

}  // namespace respcache::fakes
