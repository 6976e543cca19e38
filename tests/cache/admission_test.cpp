// --eviction-policy tinylfu: the frequency sketch (counts, saturation at 15, halving) and the admission
// it gives lru_cache::fill: a new entry takes the least recently used one's place only if its key was
// asked for more often.

#include <catch2/catch.hpp>

#include <string>

#include "../../src/cache/frequency_sketch.hpp"
#include "fakes/manual_clock.hpp"
#include "respcache/cache/lru_cache.hpp"

using namespace respcache;

TEST_CASE("frequency_sketch: counts each key, saturates at 15, and halves as it ages", "[cache][tinylfu]") {
    cache::frequency_sketch s;
    CHECK_FALSE(s.on());
    s.add(7);
    CHECK(s.estimate(7) == 0);  // off: counts nothing
    s.resize(64);
    REQUIRE(s.on());
    for (int i = 0; i < 5; ++i) s.add(7);
    s.add(9);
    CHECK(s.estimate(7) >= 5);
    CHECK(s.estimate(9) >= 1);
    CHECK(s.estimate(7) > s.estimate(9));
    for (int i = 0; i < 40; ++i) s.add(11);
    CHECK(s.estimate(11) == 15);
    // 10 x 64 additions in all halve every counter.
    const unsigned before = s.estimate(11);
    for (std::uint32_t i = 0; i < 640 - 46; ++i) s.add(1000 + i % 3);
    CHECK(s.estimate(11) == before / 2);
}

namespace {

struct fixture {
    fakes::manual_clock clk;
    cache::lru_cache c{cache::limits{4, 0, 300'000, 0, true}, 1, clk};

    bool read(std::string_view name) {
        std::string out;
        return c.lookup(cache::make_key(0, name), clk.now(), out);
    }
    bool put(std::string_view name) {
        const auto k = cache::make_key(0, name);
        return c.fill(k, c.begin_fill(k), "+v\r\n", clk.now());
    }
    bool has(std::string_view name) const { return c.contains(cache::make_key(0, name), clk.now()); }
};

}  // namespace

TEST_CASE("tinylfu: a rarely read key does not evict a often read one; a key read more often does",
          "[cache][tinylfu]") {
    fixture f;
    for (const char* k : {"a", "b", "c", "d"}) {
        for (int i = 0; i < 3; ++i) f.read(k);
        REQUIRE(f.put(k));  // room left: admitted whatever its count
    }
    CHECK_FALSE(f.read("z"));
    CHECK_FALSE(f.put("z"));  // read once, the LRU entry (a) thrice
    CHECK(f.c.stats().fills_not_admitted == 1);
    CHECK(f.has("a"));
    for (int i = 0; i < 4; ++i) f.read("z");
    CHECK(f.put("z"));
    CHECK_FALSE(f.has("a"));
    CHECK(f.has("z"));
    // Replacing an entry of a key already cached is never refused.
    CHECK(f.put("b"));
}

TEST_CASE("tinylfu: off by default, as plain LRU", "[cache][tinylfu]") {
    fakes::manual_clock clk;
    cache::lru_cache c{cache::limits{1, 0, 300'000}, 1, clk};
    const auto a = cache::make_key(0, "a"), b = cache::make_key(0, "b");
    std::string out;
    for (int i = 0; i < 5; ++i) c.lookup(a, clk.now(), out);
    REQUIRE(c.fill(a, c.begin_fill(a), "+v\r\n", clk.now()));
    CHECK(c.fill(b, c.begin_fill(b), "+v\r\n", clk.now()));
    CHECK(c.stats().fills_not_admitted == 0);
}
