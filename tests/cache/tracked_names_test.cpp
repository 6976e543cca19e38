// lru_cache::remember_tracked: which fills may skip CLIENT CACHING yes (fill_token::tracked).

#include "respcache/cache/lru_cache.hpp"

#include <catch2/catch.hpp>

#include <string>

#include "fakes/manual_clock.hpp"

namespace {

using respcache::cache::limits;
using respcache::cache::lru_cache;
using respcache::cache::make_key;
using respcache::cache::millis;
using respcache::fakes::manual_clock;

constexpr millis kStart = 1'000'000;
const std::string kValue = "$1\r\nv\r\n";

bool put(lru_cache& c, std::uint32_t db, std::string_view name, millis now) {
    const auto k = make_key(db, name);
    return c.fill(k, c.begin_fill(k), kValue, now);
}

bool tracked(lru_cache& c, std::uint32_t db, std::string_view name) { return c.begin_fill(make_key(db, name)).tracked; }

// Built by appending: GCC 12 reports a false -Wrestrict on `"literal" + std::to_string(...)`.
std::string name(int i, std::string_view prefix = "key:") { return std::string(prefix).append(std::to_string(i)); }

}  // namespace

TEST_CASE("remember_tracked: off, no fill is known tracked, not even of a cached name", "[cache][tracked]") {
    manual_clock clk;
    lru_cache c(limits{100, 0, 1000}, 1, clk);
    REQUIRE(put(c, 0, "a", kStart));
    CHECK_FALSE(tracked(c, 0, "a"));
    c.remove_expired(kStart + 1000);
    CHECK_FALSE(tracked(c, 0, "a"));
    CHECK(c.stats().tracked_names == 0);
}

TEST_CASE("remember_tracked: a name stays known after expiry or eviction, until invalidated or flushed",
          "[cache][tracked]") {
    manual_clock clk;
    lru_cache c(limits{2, 0, 1000}, 1, clk);
    c.remember_tracked(true);
    CHECK_FALSE(tracked(c, 0, "a"));  // never filled
    REQUIRE(put(c, 0, "a", kStart));
    CHECK(tracked(c, 0, "a"));
    CHECK(tracked(c, 3, "a"));  // Redis tracks names, whatever the database
    CHECK(c.stats().tracked_names == 0);  // an entry says it: nothing is kept beside it

    SECTION("expired by the reaper") {
        CHECK(c.remove_expired(kStart + 1000) == 1);
        CHECK(c.stats().entries == 0);
        CHECK(tracked(c, 0, "a"));
        CHECK(c.stats().tracked_names == 1);
    }
    SECTION("expired at a lookup") {
        std::string out;
        CHECK_FALSE(c.lookup(make_key(0, "a"), kStart + 1000, out));
        CHECK(tracked(c, 0, "a"));
    }
    SECTION("evicted") {
        REQUIRE(put(c, 0, "b", kStart));
        REQUIRE(put(c, 0, "c", kStart));  // capacity 2: "a" goes
        CHECK(c.stats().evictions == 1);
        CHECK(tracked(c, 0, "a"));
    }
    SECTION("an invalidation ends it") {
        c.remove_expired(kStart + 1000);
        c.invalidate("a");
        CHECK_FALSE(tracked(c, 0, "a"));
        CHECK(c.stats().tracked_names == 0);
    }
    SECTION("an invalidation of the entry itself leaves nothing behind") {
        c.invalidate("a");
        CHECK_FALSE(tracked(c, 0, "a"));
        CHECK(c.stats().tracked_names == 0);
    }
    SECTION("flush_all and flush_db end every name") {
        c.remove_expired(kStart + 1000);
        REQUIRE(put(c, 1, "b", kStart + 1000));
        c.remove_expired(kStart + 2000);
        REQUIRE(c.stats().tracked_names == 2);
        c.flush_db(5);  // Redis drops its whole tracking table at any FLUSHDB
        CHECK_FALSE(tracked(c, 0, "a"));
        CHECK_FALSE(tracked(c, 1, "b"));
        CHECK(c.stats().tracked_names == 0);
    }
    SECTION("turning it off forgets") {
        c.remove_expired(kStart + 1000);
        c.remember_tracked(false);
        CHECK_FALSE(tracked(c, 0, "a"));
        CHECK(c.stats().tracked_names == 0);
    }
}

TEST_CASE("remember_tracked: a token taken while known is refused after an invalidation", "[cache][tracked]") {
    manual_clock clk;
    lru_cache c(limits{10, 0, 1000}, 1, clk);
    c.remember_tracked(true);
    REQUIRE(put(c, 0, "a", kStart));
    c.remove_expired(kStart + 1000);
    const auto k = make_key(0, "a");
    const auto token = c.begin_fill(k);
    REQUIRE(token.tracked);
    c.invalidate("a");  // Redis announced a change (so forgot the name) while the untracked read was out
    CHECK_FALSE(c.fill(k, token, kValue, kStart + 1000));
    CHECK_FALSE(tracked(c, 0, "a"));
}

TEST_CASE("remember_tracked: at most capacity names, and max_memory bounds names and entries together",
          "[cache][tracked]") {
    manual_clock clk;
    SECTION("capacity") {
        lru_cache c(limits{50, 0, 1000}, 1, clk);
        c.remember_tracked(true);
        for (int i = 0; i < 200; ++i) REQUIRE(put(c, 0, name(i), kStart));  // 150 evicted
        CHECK(c.stats().tracked_names == 50);
        c.remove_expired(kStart + 1000);  // 50 more expire
        CHECK(c.stats().tracked_names == 50);
        int known = 0;
        for (int i = 0; i < 200; ++i) known += tracked(c, 0, name(i)) ? 1 : 0;
        CHECK(known == 50);
    }
    SECTION("max_memory") {
        const std::size_t budget = 20'000;
        lru_cache c(limits{10'000, budget, 1000}, 1, clk);
        c.remember_tracked(true);
        for (int i = 0; i < 2000; ++i) {
            REQUIRE(put(c, 0, name(i), kStart));
            REQUIRE(c.stats().bytes <= budget);
        }
        // Entries come first: a full budget keeps no name of an evicted entry bigger than what it freed.
        // Once they expire, their names fill the room they left, each charged its length + 96 bytes.
        const auto full = c.stats().entries;
        CHECK(c.remove_expired(kStart + 1000) == full);
        const auto names = [&] {
            std::size_t bytes = 0;
            for (int i = 0; i < 2000; ++i)
                if (tracked(c, 0, name(i))) bytes += name(i).size() + 96;
            return bytes;
        };
        CHECK(c.stats().tracked_names > 0);
        CHECK(names() <= budget);
        // New entries take their room from the names, never the other way round.
        for (int i = 0; i < static_cast<int>(full); ++i) REQUIRE(put(c, 1, name(i, "n"), kStart + 1000));
        CHECK(c.stats().entries == full);
        CHECK(c.stats().evictions == 2000 - full);  // only the first round's
        CHECK(c.stats().bytes + names() <= budget);
    }
}
