#pragma once

#include <chrono>
#include <cstdint>

namespace respcache::cache {

// Milliseconds on a monotonic time line. Only differences are meaningful.
using millis = std::int64_t;

// The cache's source of time, a seam so that tests move time instead of sleeping.
class clock {
public:
    virtual ~clock() = default;
    virtual millis now() const noexcept = 0;
};

// std::chrono::steady_clock in milliseconds.
class steady_clock final : public clock {
public:
    millis now() const noexcept override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }
};

}  // namespace respcache::cache
