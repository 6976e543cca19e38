#include "respcache/cache/reaper.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "fakes/manual_clock.hpp"

namespace {

using namespace std::chrono_literals;
using respcache::cache::limits;
using respcache::cache::lru_cache;
using respcache::cache::make_key;
using respcache::cache::millis;
using respcache::cache::reaper;
using respcache::fakes::manual_clock;

constexpr millis kStart = 1'000'000;

bool put(lru_cache& c, std::string_view name, millis now, millis key_expires_at = INT64_MAX) {
    const auto k = make_key(0, name);
    return c.fill(k, c.begin_fill(k), "$1\r\nv\r\n", now, key_expires_at);
}

// Polls `done` on this thread until it holds or about five seconds have passed. The wait is for the
// reaper's own thread to run; the cache's time is only moved by the manual clock.
bool eventually(const std::function<bool()>& done) {
    for (int i = 0; i < 5000; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return done();
}

}  // namespace

TEST_CASE("reaper: removes entries once the cache's clock passes their time, and only those", "[reaper]") {
    manual_clock clk(kStart);
    lru_cache c(limits{100, 0, 1000}, 4, clk);
    for (int i = 0; i < 20; ++i) REQUIRE(put(c, "soon" + std::to_string(i), kStart, kStart + 100));
    for (int i = 0; i < 5; ++i) REQUIRE(put(c, "later" + std::to_string(i), kStart));

    reaper r(c, 1ms);
    // Nothing is due yet: several passes remove nothing.
    const auto first = r.passes();
    REQUIRE(eventually([&] { return r.passes() >= first + 3; }));
    CHECK(c.stats().entries == 25);
    CHECK(c.stats().expirations == 0);

    clk.set(kStart + 100);
    REQUIRE(eventually([&] { return c.stats().entries == 5; }));
    CHECK(c.stats().expirations == 20);
    // A few passes later the rest is still there.
    const auto after = r.passes();
    REQUIRE(eventually([&] { return r.passes() >= after + 3; }));
    CHECK(c.stats().entries == 5);
    CHECK(c.contains(make_key(0, "later0"), clk.now()));

    clk.set(kStart + 1000);
    REQUIRE(eventually([&] { return c.stats().entries == 0; }));
    CHECK(c.stats().expirations == 25);
    CHECK(c.stats().bytes == 0);
    r.stop();
}

TEST_CASE("reaper: passes() counts completed passes", "[reaper]") {
    manual_clock clk;
    lru_cache c(limits{}, 1, clk);
    reaper r(c, 1ms);
    REQUIRE(eventually([&] { return r.passes() >= 5; }));
    r.stop();
    const auto stopped = r.passes();
    CHECK(stopped >= 5);
    // No pass runs after stop().
    std::this_thread::sleep_for(5ms);
    CHECK(r.passes() == stopped);
}

TEST_CASE("reaper: stop() returns without waiting for a long interval, and is idempotent", "[reaper]") {
    manual_clock clk;
    lru_cache c(limits{}, 1, clk);
    REQUIRE(put(c, "k", clk.now(), clk.now() + 1));
    clk.advance(10);
    reaper r(c, std::chrono::hours(1));
    r.stop();  // returns at once; a hang here is the failure
    CHECK(r.passes() == 0);
    // The stopped reaper did no pass, so the expired entry is still held.
    CHECK(c.stats().entries == 1);
    r.stop();
    CHECK(r.passes() == 0);
}

TEST_CASE("reaper: the destructor stops the thread even with a long interval", "[reaper]") {
    manual_clock clk;
    lru_cache c(limits{}, 1, clk);
    { reaper r(c, std::chrono::hours(1)); }
    { reaper r(c, 1ms); }
    SUCCEED("both reapers were joined");
}

TEST_CASE("reaper: set_interval takes effect from the next wake-up", "[reaper]") {
    manual_clock clk;
    lru_cache c(limits{}, 1, clk);
    reaper r(c, 1ms);
    REQUIRE(eventually([&] { return r.passes() >= 2; }));
    r.set_interval(std::chrono::hours(1));
    const auto at_change = r.passes();
    std::this_thread::sleep_for(20ms);
    // At most the wait already under way at the change completes with the old interval.
    CHECK(r.passes() <= at_change + 1);
    r.stop();
}
