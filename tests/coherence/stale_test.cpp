// --stale-if-error in coherence::tracker: a loss keeps the entries only when a window is set and
// tracking is in use; they are servable only inside the window, and end_stale flushes them before the
// mark goes.

#include "respcache/coherence/tracker.hpp"

#include <catch2/catch.hpp>

#include <string>

#include "fakes/manual_clock.hpp"
#include "respcache/cache/lru_cache.hpp"

using namespace respcache;

namespace {

struct fixture {
    fakes::manual_clock clk;
    cache::lru_cache cache{cache::limits{16, 0, 300'000}, 1, clk};
    coherence::tracker t{cache, coherence::invalidation_mode::tracking, coherence::consistency_mode::bounded};

    void put(std::string_view name) {
        const auto k = cache::make_key(0, name);
        REQUIRE(cache.fill(k, cache.begin_fill(k), "+v\r\n", clk.now()));
    }
    bool has(std::string_view name) const { return cache.contains(cache::make_key(0, name), clk.now()); }
};

}  // namespace

TEST_CASE("stale: without a window a loss is a flush, as before", "[coherence][stale]") {
    fixture f;
    CHECK_FALSE(f.t.keep_stale());
    CHECK_FALSE(f.t.stale_servable());
    CHECK(f.t.state().stale_since_ms.load() == 0);
}

TEST_CASE("stale: with a window the entries stay, servable only as stale, until end_stale flushes them",
          "[coherence][stale]") {
    fixture f;
    f.t.state().stale_window_ms = 60'000;
    f.put("k");
    CHECK(f.t.keep_stale());
    CHECK(f.t.keep_stale());  // a second loss keeps the first one's time
    CHECK(f.has("k"));
    CHECK(f.t.stale_servable());
    f.t.end_stale();
    CHECK_FALSE(f.has("k"));
    CHECK_FALSE(f.t.stale_servable());
    CHECK(f.t.state().stale_since_ms.load() == 0);
}

TEST_CASE("stale: the window closes", "[coherence][stale]") {
    fixture f;
    f.t.state().stale_window_ms = 1;  // the steady clock moves past it
    CHECK(f.t.keep_stale());
    const auto since = f.t.state().stale_since_ms.load();
    f.t.state().stale_since_ms = since - 10;
    CHECK_FALSE(f.t.stale_servable());
}

TEST_CASE("stale: never with --invalidation ttl, whose entries are not flushed at a loss anyway",
          "[coherence][stale]") {
    fakes::manual_clock clk;
    cache::lru_cache cache{cache::limits{16, 0, 300'000}, 1, clk};
    coherence::tracker t{cache, coherence::invalidation_mode::ttl, coherence::consistency_mode::bounded};
    t.state().stale_window_ms = 60'000;
    CHECK_FALSE(t.keep_stale());
}
