#include "respcache/cache/lru_cache.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fakes/manual_clock.hpp"

namespace {

using respcache::cache::counters;
using respcache::cache::entry_charge;
using respcache::cache::limits;
using respcache::cache::lru_cache;
using respcache::cache::make_key;
using respcache::cache::millis;
using respcache::fakes::manual_clock;

constexpr millis kStart = 1'000'000;

// Built by appending: GCC 12 reports a false -Wrestrict on `cat({"literal", std::to_string(...)})`.
std::string cat(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (auto p : parts) out.append(p);
    return out;
}

std::string bulk(std::string_view v) { return cat({"$", std::to_string(v.size()), "\r\n", v, "\r\n"}); }

// A fill announced and completed at once, as a miss with no concurrent write would do it.
bool put(lru_cache& c, std::uint32_t db, std::string_view name, std::string_view reply, millis now,
         millis key_expires_at = INT64_MAX) {
    const auto k = make_key(db, name);
    return c.fill(k, c.begin_fill(k), reply, now, key_expires_at);
}

std::optional<std::string> get(lru_cache& c, std::uint32_t db, std::string_view name, millis now) {
    std::string out;
    if (!c.lookup(make_key(db, name), now, out)) return std::nullopt;
    return out;
}

bool has(const lru_cache& c, std::uint32_t db, std::string_view name, millis now) {
    return c.contains(make_key(db, name), now);
}

limits lim(std::size_t capacity, std::size_t max_memory = 0, millis ttl = 300'000) {
    return limits{capacity, max_memory, ttl};
}

}  // namespace

TEST_CASE("lru_cache: a miss returns false and leaves out untouched", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(16), 1, clk);
    std::string out = "+prefix\r\n";
    CHECK_FALSE(c.lookup(make_key(0, "absent"), kStart, out));
    CHECK(out == "+prefix\r\n");
    CHECK_FALSE(has(c, 0, "absent", kStart));
    CHECK(c.stats().entries == 0);
}

TEST_CASE("lru_cache: a hit appends the exact encoded reply after what out holds", "[cache]") {
    const std::vector<std::string> replies = {
        bulk(""),
        bulk("bar"),
        bulk(std::string("a\0b\r\nc", 6)),
        bulk(std::string(4000, 'x')),
    };
    for (const auto& reply : replies) {
        CAPTURE(reply.size());
        manual_clock clk;
        lru_cache c(lim(16), 1, clk);
        REQUIRE(put(c, 0, "k", reply, kStart));
        std::string out = "+OK\r\n";
        REQUIRE(c.lookup(make_key(0, "k"), kStart, out));
        CHECK(out == "+OK\r\n" + reply);
        // A second lookup appends again.
        REQUIRE(c.lookup(make_key(0, "k"), kStart, out));
        CHECK(out == "+OK\r\n" + reply + reply);
    }
}

TEST_CASE("lru_cache: the database number is part of the key", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(16), 1, clk);
    REQUIRE(put(c, 0, "k", bulk("zero"), kStart));
    REQUIRE(put(c, 1, "k", bulk("one"), kStart));
    CHECK(get(c, 0, "k", kStart) == bulk("zero"));
    CHECK(get(c, 1, "k", kStart) == bulk("one"));
    CHECK_FALSE(get(c, 2, "k", kStart));
    CHECK(c.stats().entries == 2);
}

TEST_CASE("lru_cache: at capacity the least recently used entry is evicted", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(3), 1, clk);
    REQUIRE(put(c, 0, "a", bulk("A"), kStart));
    REQUIRE(put(c, 0, "b", bulk("B"), kStart));
    REQUIRE(put(c, 0, "c", bulk("C"), kStart));

    SECTION("without lookups, insertion order decides") {
        REQUIRE(put(c, 0, "d", bulk("D"), kStart));
        CHECK_FALSE(has(c, 0, "a", kStart));
        CHECK(has(c, 0, "b", kStart));
        CHECK(has(c, 0, "c", kStart));
        CHECK(has(c, 0, "d", kStart));
        REQUIRE(put(c, 0, "e", bulk("E"), kStart));
        CHECK_FALSE(has(c, 0, "b", kStart));
        CHECK(c.stats().evictions == 2);
        CHECK(c.stats().entries == 3);
    }
    SECTION("a lookup refreshes recency") {
        REQUIRE(get(c, 0, "a", kStart));  // order now a, c, b (most to least recent)
        REQUIRE(put(c, 0, "d", bulk("D"), kStart));
        CHECK(has(c, 0, "a", kStart));
        CHECK_FALSE(has(c, 0, "b", kStart));
        CHECK(has(c, 0, "c", kStart));
        CHECK(has(c, 0, "d", kStart));
        CHECK(c.stats().evictions == 1);
    }
    SECTION("contains does not refresh recency") {
        REQUIRE(has(c, 0, "a", kStart));
        REQUIRE(put(c, 0, "d", bulk("D"), kStart));
        CHECK_FALSE(has(c, 0, "a", kStart));
        CHECK(has(c, 0, "b", kStart));
    }
    SECTION("refilling an existing key makes it most recent without an eviction") {
        REQUIRE(put(c, 0, "a", bulk("A2"), kStart));
        CHECK(c.stats().evictions == 0);
        REQUIRE(put(c, 0, "d", bulk("D"), kStart));
        CHECK(get(c, 0, "a", kStart) == bulk("A2"));
        CHECK_FALSE(has(c, 0, "b", kStart));
    }
}

TEST_CASE("lru_cache: a lookup of a large reply, copied outside the lock, refreshes recency too", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(2), 1, clk);
    const std::string big = bulk(std::string(8192, 'b'));
    REQUIRE(put(c, 0, "a", big, kStart));
    REQUIRE(put(c, 0, "b", big, kStart));
    std::string out;  // no room reserved: the copy happens after the lock is released
    REQUIRE(c.lookup(make_key(0, "a"), kStart, out));
    CHECK(out == big);
    REQUIRE(put(c, 0, "c", big, kStart));
    CHECK(has(c, 0, "a", kStart));
    CHECK_FALSE(has(c, 0, "b", kStart));
}

TEST_CASE("lru_cache: max_memory bounds the sum of entry charges", "[cache]") {
    manual_clock clk;
    const std::string reply = bulk(std::string(100, 'v'));
    const std::size_t charge = entry_charge(2, reply.size());
    REQUIRE(charge > reply.size());  // bookkeeping is charged too
    lru_cache c(lim(1000, 3 * charge), 1, clk);

    REQUIRE(put(c, 0, "k1", reply, kStart));
    REQUIRE(put(c, 0, "k2", reply, kStart));
    REQUIRE(put(c, 0, "k3", reply, kStart));
    CHECK(c.stats().entries == 3);
    CHECK(c.stats().bytes == 3 * charge);
    CHECK(c.stats().evictions == 0);

    REQUIRE(put(c, 0, "k4", reply, kStart));
    CHECK(c.stats().entries == 3);
    CHECK(c.stats().bytes == 3 * charge);
    CHECK(c.stats().evictions == 1);
    CHECK_FALSE(has(c, 0, "k1", kStart));

    // A bigger entry pushes out as many of the oldest as it needs.
    const std::string big = bulk(std::string(100 + charge, 'w'));
    REQUIRE(put(c, 0, "k5", big, kStart));
    CHECK(c.stats().entries == 2);
    CHECK(c.stats().bytes == charge + entry_charge(2, big.size()));
    CHECK_FALSE(has(c, 0, "k2", kStart));
    CHECK_FALSE(has(c, 0, "k3", kStart));
    CHECK(has(c, 0, "k4", kStart));
    CHECK(c.stats().evictions == 3);

    // An entry that alone is over the bound is refused and evicts nothing.
    const std::string huge = bulk(std::string(3 * charge, 'h'));
    CHECK_FALSE(put(c, 0, "k6", huge, kStart));
    CHECK(c.stats().entries == 2);
    CHECK(has(c, 0, "k4", kStart));
    CHECK(has(c, 0, "k5", kStart));
    CHECK(c.stats().evictions == 3);
}

TEST_CASE("lru_cache: entry_charge grows with the name and the reply", "[cache]") {
    CHECK(entry_charge(1, 10) == entry_charge(0, 10) + 1);
    CHECK(entry_charge(1, 10) == entry_charge(1, 0) + 10);
    CHECK(entry_charge(0, 0) > 0);
}

TEST_CASE("lru_cache: capacity 0 disables the cache", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(0), 1, clk);
    CHECK_FALSE(c.enabled());
    CHECK_FALSE(put(c, 0, "k", bulk("v"), kStart));
    CHECK_FALSE(get(c, 0, "k", kStart));
    CHECK(c.stats().entries == 0);
    CHECK(c.stats().bytes == 0);

    c.set_limits(lim(4));
    CHECK(c.enabled());
    CHECK(put(c, 0, "k", bulk("v"), kStart));
    CHECK(get(c, 0, "k", kStart) == bulk("v"));

    c.set_limits(lim(0));
    CHECK_FALSE(c.enabled());
    CHECK(c.stats().entries == 0);
    CHECK_FALSE(get(c, 0, "k", kStart));
}

TEST_CASE("lru_cache: an entry expires exactly at insertion + ttl and reads do not extend it", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(16, 0, 1000), 1, clk);
    REQUIRE(put(c, 0, "k", bulk("v"), kStart));

    CHECK(get(c, 0, "k", kStart + 500) == bulk("v"));
    CHECK(get(c, 0, "k", kStart + 999) == bulk("v"));
    CHECK(has(c, 0, "k", kStart + 999));
    CHECK_FALSE(has(c, 0, "k", kStart + 1000));
    CHECK(c.stats().entries == 1);  // contains() does not remove

    std::string out = "keep";
    CHECK_FALSE(c.lookup(make_key(0, "k"), kStart + 1000, out));
    CHECK(out == "keep");
    const counters s = c.stats();
    CHECK(s.entries == 0);
    CHECK(s.bytes == 0);
    CHECK(s.expirations == 1);
    // Gone for good, even at an earlier time.
    CHECK_FALSE(get(c, 0, "k", kStart));
}

TEST_CASE("lru_cache: the key's own expiry caps the entry's life", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(16, 0, 1000), 1, clk);

    SECTION("earlier than the ttl") {
        REQUIRE(put(c, 0, "k", bulk("v"), kStart, kStart + 100));
        CHECK(has(c, 0, "k", kStart + 99));
        CHECK_FALSE(get(c, 0, "k", kStart + 100));
        CHECK(c.stats().expirations == 1);
    }
    SECTION("later than the ttl: the ttl wins") {
        REQUIRE(put(c, 0, "k", bulk("v"), kStart, kStart + 5000));
        CHECK(has(c, 0, "k", kStart + 999));
        CHECK_FALSE(has(c, 0, "k", kStart + 1000));
    }
    SECTION("already expired: not inserted") {
        CHECK_FALSE(put(c, 0, "k", bulk("v"), kStart, kStart));
        CHECK_FALSE(put(c, 0, "k", bulk("v"), kStart, kStart - 1));
        CHECK(c.stats().entries == 0);
    }
}

TEST_CASE("lru_cache: remove_expired removes and counts exactly what is due", "[cache]") {
    manual_clock clk;
    const std::size_t shards = GENERATE(1, 4);
    lru_cache c(lim(10'000, 0, 1000), shards, clk);
    // 3000 entries due at kStart+1000 (more than one reaping batch), 10 due later.
    for (int i = 0; i < 3000; ++i) REQUIRE(put(c, 0, cat({"early", std::to_string(i)}), bulk("v"), kStart));
    for (int i = 0; i < 10; ++i) REQUIRE(put(c, 0, cat({"late", std::to_string(i)}), bulk("v"), kStart + 500));

    CHECK(c.remove_expired(kStart + 999) == 0);
    CHECK(c.stats().entries == 3010);
    CHECK(c.remove_expired(kStart + 1000) == 3000);
    CHECK(c.stats().entries == 10);
    CHECK(c.stats().expirations == 3000);
    CHECK(c.stats().bytes == 10 * entry_charge(5, bulk("v").size()));
    CHECK(c.remove_expired(kStart + 1000) == 0);
    CHECK(has(c, 0, "late0", kStart + 1000));
    CHECK(c.remove_expired(kStart + 1500) == 10);
    CHECK(c.stats().entries == 0);
    CHECK(c.stats().bytes == 0);
    CHECK(c.stats().expirations == 3010);
}

TEST_CASE("lru_cache: expiry order is by time, not by insertion", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(100, 0, 10'000), 1, clk);
    // Inserted in a scrambled order of expiry times.
    const int due[] = {50, 10, 90, 30, 70, 20, 80, 40, 60, 100};
    for (int d : due) REQUIRE(put(c, 0, cat({"k", std::to_string(d)}), bulk("v"), kStart, kStart + d));
    for (int t = 10; t <= 100; t += 10) {
        CAPTURE(t);
        CHECK(c.remove_expired(kStart + t) == 1);
        CHECK_FALSE(has(c, 0, cat({"k", std::to_string(t)}), kStart));
        CHECK(c.stats().entries == static_cast<std::uint64_t>(10 - t / 10));
    }
}

TEST_CASE("lru_cache: invalidate removes the name in every database and nothing else", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(64), GENERATE(1, 8), clk);
    for (std::uint32_t db : {0u, 1u, 15u}) {
        REQUIRE(put(c, db, "k", bulk("v"), kStart));
        REQUIRE(put(c, db, "other", bulk("o"), kStart));
        REQUIRE(put(c, db, "k2", bulk("v2"), kStart));
    }
    c.invalidate("k");
    for (std::uint32_t db : {0u, 1u, 15u}) {
        CAPTURE(db);
        CHECK_FALSE(has(c, db, "k", kStart));
        CHECK(get(c, db, "other", kStart) == bulk("o"));
        CHECK(get(c, db, "k2", kStart) == bulk("v2"));
    }
    CHECK(c.stats().invalidations == 3);
    CHECK(c.stats().entries == 6);
    c.invalidate("never-cached");
    CHECK(c.stats().invalidations == 3);
    CHECK(c.stats().entries == 6);
}

TEST_CASE("lru_cache: flush_db removes only that database; flush_all removes everything", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(256), GENERATE(1, 4), clk);
    for (std::uint32_t db = 0; db < 3; ++db)
        for (int i = 0; i < 20; ++i) REQUIRE(put(c, db, cat({"k", std::to_string(i)}), bulk("v"), kStart));
    REQUIRE(c.stats().entries == 60);

    c.flush_db(1);
    for (int i = 0; i < 20; ++i) {
        const std::string name = cat({"k", std::to_string(i)});
        CHECK(has(c, 0, name, kStart));
        CHECK_FALSE(has(c, 1, name, kStart));
        CHECK(has(c, 2, name, kStart));
    }
    CHECK(c.stats().entries == 40);
    CHECK(c.stats().invalidations == 20);

    c.flush_db(7);  // an empty database
    CHECK(c.stats().entries == 40);

    c.flush_all();
    CHECK(c.stats().entries == 0);
    CHECK(c.stats().bytes == 0);
    CHECK(c.stats().invalidations == 60);
    CHECK_FALSE(has(c, 0, "k0", kStart));
}

TEST_CASE("lru_cache: a fill announced before an invalidation of its key is refused", "[cache]") {
    struct race {
        const char* what;
        void (*between)(lru_cache&);
        bool inserted;
    };
    const race races[] = {
        {"nothing in between", [](lru_cache&) {}, true},
        {"invalidate the key", [](lru_cache& c) { c.invalidate("k"); }, false},
        {"flush_db of the key's db", [](lru_cache& c) { c.flush_db(2); }, false},
        {"flush_all", [](lru_cache& c) { c.flush_all(); }, false},
        {"a lookup and a fill of another key", [](lru_cache& c) {
             std::string out;
             c.lookup(make_key(2, "other"), kStart, out);
             put(c, 2, "other", bulk("o"), kStart);
         }, true},
    };
    for (const auto& r : races) {
        CAPTURE(r.what);
        manual_clock clk;
        lru_cache c(lim(16), 1, clk);
        const auto k = make_key(2, "k");
        const auto token = c.begin_fill(k);
        r.between(c);
        CHECK(c.fill(k, token, bulk("old"), kStart) == r.inserted);
        CHECK(has(c, 2, "k", kStart) == r.inserted);
        CHECK(c.stats().fills_dropped == (r.inserted ? 0u : 1u));
    }
}

TEST_CASE("lru_cache: the fill race is decided by name across databases, and tokens taken later are fine",
          "[cache]") {
    manual_clock clk;
    lru_cache c(lim(16), 1, clk);
    const auto k0 = make_key(0, "k");
    const auto k5 = make_key(5, "k");

    // A write of "k" seen through any database (client tracking reports names only) fails the fill.
    const auto token = c.begin_fill(k5);
    c.invalidate("k");
    CHECK_FALSE(c.fill(k5, token, bulk("old"), kStart));

    // A fill announced after the invalidation is accepted.
    CHECK(c.fill(k5, c.begin_fill(k5), bulk("new"), kStart));
    CHECK(get(c, 5, "k", kStart) == bulk("new"));

    // Invalidation while an entry is held both removes it and fails the in-flight fill of another db.
    const auto token0 = c.begin_fill(k0);
    c.invalidate("k");
    CHECK_FALSE(has(c, 5, "k", kStart));
    CHECK_FALSE(c.fill(k0, token0, bulk("old"), kStart));
    CHECK(c.stats().fills_dropped == 2);
    CHECK(c.stats().entries == 0);

    // A token is good for one key only as long as nothing moved: reusing a stale one keeps failing.
    CHECK_FALSE(c.fill(k0, token0, bulk("old"), kStart));
    CHECK(c.stats().fills_dropped == 3);
}

TEST_CASE("lru_cache: a fill replaces the entry of the same key", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(16, 0, 1000), 1, clk);
    REQUIRE(put(c, 0, "k", bulk("first"), kStart));
    REQUIRE(put(c, 0, "k", bulk("second, longer"), kStart + 600));
    CHECK(get(c, 0, "k", kStart + 600) == bulk("second, longer"));
    const counters s = c.stats();
    CHECK(s.entries == 1);
    CHECK(s.bytes == entry_charge(1, bulk("second, longer").size()));
    CHECK(s.evictions == 0);
    CHECK(s.invalidations == 0);
    // The replacement carries its own expiry.
    CHECK(has(c, 0, "k", kStart + 1599));
    CHECK_FALSE(has(c, 0, "k", kStart + 1600));
    // And the old entry's expiry left with it.
    CHECK(c.remove_expired(kStart + 1000) == 0);
}

TEST_CASE("lru_cache: set_limits applies at once", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(10, 0, 1000), 1, clk);
    for (int i = 0; i < 10; ++i) REQUIRE(put(c, 0, cat({"k", std::to_string(i)}), bulk("v"), kStart));
    REQUIRE(get(c, 0, "k0", kStart));  // k0 becomes the most recent

    SECTION("a smaller capacity evicts the least recently used") {
        c.set_limits(lim(4, 0, 1000));
        CHECK(c.stats().entries == 4);
        CHECK(c.stats().evictions == 6);
        for (const char* kept : {"k0", "k9", "k8", "k7"}) CHECK(has(c, 0, kept, kStart));
        CHECK_FALSE(has(c, 0, "k1", kStart));
        CHECK_FALSE(has(c, 0, "k6", kStart));
        CHECK(c.current_limits().capacity == 4);
    }
    SECTION("a smaller max_memory evicts the least recently used") {
        const std::size_t charge = entry_charge(2, bulk("v").size());
        c.set_limits(lim(10, 3 * charge + charge / 2, 1000));
        CHECK(c.stats().entries == 3);
        CHECK(c.stats().bytes == 3 * charge);
        for (const char* kept : {"k0", "k9", "k8"}) CHECK(has(c, 0, kept, kStart));
        CHECK(c.current_limits().max_memory == 3 * charge + charge / 2);
    }
    SECTION("a shorter ttl applies to later fills, and to entries already held from the change on") {
        REQUIRE(clk.now() == kStart);
        c.set_limits(lim(10, 0, 50));
        CHECK(has(c, 0, "k1", kStart + 49));
        CHECK_FALSE(has(c, 0, "k1", kStart + 50));
        CHECK(c.remove_expired(kStart + 50) == 10);
        REQUIRE(put(c, 0, "fresh", bulk("v"), kStart + 100));
        CHECK(has(c, 0, "fresh", kStart + 149));
        CHECK_FALSE(has(c, 0, "fresh", kStart + 150));
        CHECK(c.current_limits().ttl == 50);
    }
    SECTION("a larger capacity keeps everything") {
        c.set_limits(lim(100, 0, 1000));
        CHECK(c.stats().entries == 10);
        CHECK(c.stats().evictions == 0);
        for (int i = 10; i < 100; ++i) REQUIRE(put(c, 0, cat({"k", std::to_string(i)}), bulk("v"), kStart));
        CHECK(c.stats().entries == 100);
    }
}

TEST_CASE("lru_cache: stats counts each kind of removal separately", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(2, 0, 1000), 1, clk);
    REQUIRE(put(c, 0, "a", bulk("1"), kStart));
    REQUIRE(put(c, 0, "b", bulk("22"), kStart));
    REQUIRE(put(c, 0, "c", bulk("333"), kStart + 10));  // evicts a
    c.invalidate("b");
    const auto token = c.begin_fill(make_key(0, "d"));
    c.invalidate("d");
    CHECK_FALSE(c.fill(make_key(0, "d"), token, bulk("4"), kStart));
    CHECK(c.stats().entries == 1);
    CHECK(c.stats().bytes == entry_charge(1, bulk("333").size()));
    CHECK(c.remove_expired(kStart + 1010) == 1);

    const counters s = c.stats();
    CHECK(s.entries == 0);
    CHECK(s.bytes == 0);
    CHECK(s.evictions == 1);
    CHECK(s.invalidations == 1);
    CHECK(s.expirations == 1);
    CHECK(s.fills_dropped == 1);
}

TEST_CASE("lru_cache: large replies and outputs without spare capacity are copied whole", "[cache]") {
    const std::size_t sizes[] = {0, 1, 15, 4090, 4096, 4097, 10'000, 1 << 20};
    for (std::size_t size : sizes) {
        CAPTURE(size);
        manual_clock clk;
        lru_cache c(lim(16), 1, clk);
        std::string value(size, '\0');
        for (std::size_t i = 0; i < size; ++i) value[i] = static_cast<char>('a' + i % 26);
        const std::string reply = bulk(value);
        REQUIRE(put(c, 0, "k", reply, kStart));

        // Reserved room: the reply fits in what out already has.
        std::string roomy;
        roomy.reserve(reply.size() + 16);
        REQUIRE(c.lookup(make_key(0, "k"), kStart, roomy));
        CHECK(roomy == reply);

        // No spare capacity at all.
        std::string full = "prefix";
        full.resize(full.capacity(), '#');
        REQUIRE(full.size() == full.capacity());
        const std::string before = full;
        REQUIRE(c.lookup(make_key(0, "k"), kStart, full));
        CHECK(full == before + reply);

        // The entry is still whole after being read outside the lock.
        CHECK(get(c, 0, "k", kStart) == reply);
    }
}

TEST_CASE("lru_cache: a large entry read while it is invalidated is still returned whole", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(16), 1, clk);
    const std::string reply = bulk(std::string(64 * 1024, 'z'));
    for (int round = 0; round < 50; ++round) {
        REQUIRE(put(c, 0, "k", reply, kStart));
        std::atomic<bool> go{false};
        std::thread inv([&] {
            while (!go.load()) {
            }
            c.invalidate("k");
        });
        std::string out;
        go.store(true);
        const bool hit = c.lookup(make_key(0, "k"), kStart, out);
        inv.join();
        if (hit) CHECK(out == reply);
        else CHECK(out.empty());
        CHECK_FALSE(has(c, 0, "k", kStart));
    }
}

TEST_CASE("lru_cache: auto_shards picks a power of two with at least 256 entries a shard, at most 16",
          "[cache]") {
    const std::pair<std::size_t, std::size_t> rows[] = {
        {0, 1},    {1, 1},    {255, 1},   {511, 1},   {512, 2},          {1023, 2},
        {1024, 4}, {2047, 4}, {2048, 8},  {4095, 8},  {4096, 16},        {1'000'000, 16},
        {SIZE_MAX, 16},
    };
    for (auto [capacity, shards] : rows) {
        CAPTURE(capacity);
        CHECK(lru_cache::auto_shards(capacity) == shards);
    }
}

TEST_CASE("lru_cache: the shard count is rounded up to a power of two", "[cache]") {
    const std::pair<std::size_t, std::size_t> rows[] = {
        {1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {9, 16}, {16, 16}, {17, 32}, {1000, 1024},
    };
    manual_clock clk;
    for (auto [asked, got] : rows) {
        CAPTURE(asked);
        lru_cache c(lim(4096), asked, clk);
        CHECK(c.shard_count() == got);
    }
    lru_cache automatic(lim(1024), 0, clk);
    CHECK(automatic.shard_count() == lru_cache::auto_shards(1024));
}

TEST_CASE("lru_cache: with several shards the total stays within capacity and max_memory", "[cache]") {
    manual_clock clk;
    const std::string reply = bulk("value");
    const std::size_t charge = entry_charge(6, reply.size());  // every name below has 6 bytes
    lru_cache c(lim(40, 25 * charge), 8, clk);
    for (int i = 0; i < 2000; ++i) {
        put(c, static_cast<std::uint32_t>(i % 3), cat({"k", std::to_string(10000 + i)}), reply, kStart);
        const counters s = c.stats();
        REQUIRE(s.entries <= 40);
        REQUIRE(s.bytes <= 25 * charge);
        REQUIRE(s.bytes == s.entries * charge);
    }
    CHECK(c.stats().entries > 0);
}

TEST_CASE("lru_cache: the time source is the clock the cache was built with", "[cache]") {
    manual_clock clk(42);
    lru_cache c(lim(4), 1, clk);
    CHECK(c.time_source().now() == 42);
    clk.advance(8);
    CHECK(c.time_source().now() == 50);
}

namespace {

// The value a test thread inserts for (db, name): it names the key it belongs to and a version.
std::string versioned(std::uint32_t db, std::string_view name, std::uint64_t version) {
    return bulk(cat({std::to_string(db), "/", name, "/", std::to_string(version)}));
}

// The version inside `reply` if it is a value inserted for (db, name), else nullopt.
std::optional<std::uint64_t> version_of(std::string_view reply, std::uint32_t db, std::string_view name) {
    const std::string body = cat({std::to_string(db), "/", name, "/"});
    const auto header_end = reply.find("\r\n");
    if (header_end == std::string_view::npos || reply.size() < 2 || reply.substr(reply.size() - 2) != "\r\n")
        return std::nullopt;
    const std::string_view value = reply.substr(header_end + 2, reply.size() - header_end - 4);
    if (reply.substr(0, header_end) != cat({"$", std::to_string(value.size())})) return std::nullopt;
    if (value.substr(0, body.size()) != body) return std::nullopt;
    std::uint64_t v = 0;
    for (char ch : value.substr(body.size())) {
        if (ch < '0' || ch > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(ch - '0');
    }
    return v;
}

}  // namespace

TEST_CASE("lru_cache: concurrent lookups, fills, invalidations and expiry keep the invariants", "[cache]") {
    constexpr int kThreads = 4;
    constexpr int kOpsPerThread = 20'000;
    constexpr int kNames = 48;
    constexpr std::uint32_t kDbs = 3;
    constexpr std::size_t kCapacity = 64;

    manual_clock clk;
    const std::size_t max_memory = 40 * entry_charge(8, 40);
    lru_cache c(lim(kCapacity, max_memory, 200), 4, clk);

    std::vector<std::string> names;
    for (int i = 0; i < kNames; ++i) names.push_back(cat({"key:", std::to_string(i)}));
    // The backend: one version per name (a write bumps it; all databases share it for simplicity).
    std::vector<std::atomic<std::uint64_t>> backend(kNames);

    std::atomic<int> bad_values{0};
    std::atomic<int> stale_after_write{0};
    std::atomic<std::uint64_t> hits{0};

    auto worker = [&](int id) {
        std::uint64_t rng = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(id + 1);
        auto next = [&rng] {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            return rng;
        };
        std::string out;
        for (int op = 0; op < kOpsPerThread; ++op) {
            const std::uint64_t r = next();
            const int n = static_cast<int>(r % kNames);
            const auto db = static_cast<std::uint32_t>((r >> 8) % kDbs);
            const auto k = make_key(db, names[n]);
            const millis now = clk.now();
            switch ((r >> 16) % 100) {
                case 0:
                    clk.advance(7);
                    break;
                case 1:
                    c.remove_expired(now);
                    break;
                case 2:
                    c.flush_db(db);
                    break;
                default:
                    if ((r >> 16) % 100 < 15) {
                        // A write through the proxy: the backend changes, then the key is invalidated; after
                        // that no lookup may return an older version.
                        const std::uint64_t written = backend[n].fetch_add(1) + 1;
                        c.invalidate(names[n]);
                        out.clear();
                        if (c.lookup(k, clk.now(), out)) {
                            const auto v = version_of(out, db, names[n]);
                            if (!v) ++bad_values;
                            else if (*v < written) ++stale_after_write;
                        }
                    } else if ((r >> 16) % 100 < 55) {
                        // A miss and its fill, with the backend read between begin_fill and fill.
                        const auto token = c.begin_fill(k);
                        const std::uint64_t v = backend[n].load();
                        c.fill(k, token, versioned(db, names[n], v), now,
                               (r >> 24) % 4 == 0 ? now + static_cast<millis>((r >> 32) % 300) : INT64_MAX);
                    } else {
                        out.clear();
                        if ((r >> 40) % 2 == 0) out.shrink_to_fit();
                        if (c.lookup(k, now, out)) {
                            ++hits;
                            const auto v = version_of(out, db, names[n]);
                            if (!v || *v > backend[n].load()) ++bad_values;
                        }
                    }
            }
        }
    };

    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
    for (auto& t : threads) t.join();

    CHECK(bad_values.load() == 0);
    CHECK(stale_after_write.load() == 0);
    CHECK(hits.load() > 0);

    const counters s = c.stats();
    CHECK(s.entries <= kCapacity);
    CHECK(s.bytes <= max_memory);

    // Quiescent: after removing what is due, every held entry is visible, and the byte count is exactly
    // the sum of their charges.
    const millis now = clk.now();
    c.remove_expired(now);
    const counters q = c.stats();
    std::uint64_t visible = 0;
    std::uint64_t charged = 0;
    for (std::uint32_t db = 0; db < kDbs; ++db) {
        for (int n = 0; n < kNames; ++n) {
            std::string out;
            if (!c.lookup(make_key(db, names[n]), now, out)) continue;
            ++visible;
            charged += entry_charge(names[n].size(), out.size());
            const auto v = version_of(out, db, names[n]);
            REQUIRE(v);
            CHECK(*v <= backend[n].load());
        }
    }
    CHECK(visible == q.entries);
    CHECK(charged == q.bytes);
}

TEST_CASE("lru_cache: variants of one name are entries of their own, invalidated together", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(64), 1, clk);
    const std::string hget_f("\x02hget\x01f", 7), hgetall("\x02hgetall", 8), hgetall3("\x03hgetall", 8);
    auto put_variant = [&](std::uint32_t db, std::string_view name, std::string_view variant, std::string_view reply) {
        const auto k = make_key(db, name, variant);
        return c.fill(k, c.begin_fill(k), reply, kStart);
    };
    auto get_variant = [&](std::uint32_t db, std::string_view name, std::string_view variant) {
        std::string out;
        return c.lookup(make_key(db, name, variant), kStart, out) ? std::optional<std::string>(out) : std::nullopt;
    };
    const std::string all2 = "*2\r\n$1\r\nf\r\n$1\r\nv\r\n", all3 = "%1\r\n$1\r\nf\r\n$1\r\nv\r\n";
    REQUIRE(put(c, 0, "h", bulk("get"), kStart));
    REQUIRE(put_variant(0, "h", hget_f, bulk("v")));
    REQUIRE(put_variant(0, "h", hgetall, all2));
    REQUIRE(put_variant(0, "h", hgetall3, all3));
    REQUIRE(put_variant(1, "h", hget_f, bulk("db1")));
    REQUIRE(put_variant(0, "other", hget_f, bulk("o")));
    CHECK(get(c, 0, "h", kStart) == bulk("get"));
    CHECK(get_variant(0, "h", hget_f) == bulk("v"));
    CHECK(get_variant(0, "h", hgetall) == all2);
    CHECK(get_variant(0, "h", hgetall3) == all3);
    CHECK(get_variant(0, "h", "\x02hget\x01g") == std::nullopt);  // another field
    CHECK(c.stats().entries == 6);
    CHECK(c.stats().bytes == entry_charge(1, bulk("get").size()) + entry_charge(1, bulk("v").size(), 7) +
                                 entry_charge(1, all2.size(), 8) + entry_charge(1, all3.size(), 8) + entry_charge(1, bulk("db1").size(), 7) +
                                 entry_charge(5, bulk("o").size(), 7));
    // One invalidation of the name removes every variant in every database, and nothing else.
    c.invalidate("h");
    CHECK(c.stats().entries == 1);
    CHECK(c.stats().invalidations == 5);
    CHECK(get_variant(0, "other", hget_f) == bulk("o"));
    // A fill of any variant begun before the invalidation is refused.
    const auto k = make_key(0, "h", hgetall);
    const auto token = c.begin_fill(k);
    c.invalidate("h");
    CHECK_FALSE(c.fill(k, token, "*0\r\n", kStart));
}

TEST_CASE("lru_cache: databases above 255 and variants over 64 KB are never cached", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(64), 1, clk);
    CHECK(put(c, 255, "k", bulk("v"), kStart));
    CHECK_FALSE(put(c, 256, "k", bulk("v"), kStart));
    CHECK_FALSE(has(c, 256, "k", kStart));
    const std::string huge(65536, 'x');
    const auto k = make_key(0, "k", huge);
    CHECK_FALSE(c.fill(k, c.begin_fill(k), bulk("v"), kStart));
    CHECK(c.stats().entries == 1);
}

TEST_CASE("lru_cache: refresh_ahead asks once for a refresh of a hit late in its entry's life", "[cache]") {
    manual_clock clk;
    limits l = lim(64, 0, 10'000);
    l.refresh_ahead = 0.8;  // the last 2 s of a 10 s life
    lru_cache c(l, 1, clk);
    REQUIRE(put(c, 0, "k", bulk("v"), kStart));
    REQUIRE(put(c, 0, "bound", bulk("v"), kStart, kStart + 9'000));  // expires with its key
    std::string out;
    bool refresh = false;
    REQUIRE(c.lookup(make_key(0, "k"), kStart + 7'999, out, &refresh));
    CHECK_FALSE(refresh);
    REQUIRE(c.lookup(make_key(0, "k"), kStart + 8'001, out, &refresh));
    CHECK(refresh);
    refresh = false;
    REQUIRE(c.lookup(make_key(0, "k"), kStart + 8'500, out, &refresh));
    CHECK_FALSE(refresh);  // asked already
    REQUIRE(c.lookup(make_key(0, "bound"), kStart + 8'500, out, &refresh));
    CHECK_FALSE(refresh);  // a refresh would not outlive the key
    // The refresh's fill replaces the entry, which may be refreshed again late in its new life.
    REQUIRE(put(c, 0, "k", bulk("w"), kStart + 8'600));
    REQUIRE(c.lookup(make_key(0, "k"), kStart + 16'700, out, &refresh));
    CHECK(refresh);
    // Off (0): never.
    l.refresh_ahead = 0;
    c.set_limits(l);
    REQUIRE(put(c, 0, "k", bulk("v"), kStart + 20'000));
    refresh = false;
    REQUIRE(c.lookup(make_key(0, "k"), kStart + 29'999, out, &refresh));
    CHECK_FALSE(refresh);
}

TEST_CASE("lru_cache: of concurrent misses of one entry one leads, the others wait for its reply", "[cache][shared]") {
    manual_clock clk;
    lru_cache c({16, 0, 60'000}, 1, clk);
    const auto k = make_key(0, "k");
    int calls = 0;
    std::string got;
    lru_cache::fill_waiter w1 = [&](const std::shared_ptr<const std::string>& r, bool ok) {
        ++calls;
        got = *r;
        CHECK(ok);
    };
    lru_cache::fill_waiter w2 = w1;
    respcache::cache::fill_token t;
    std::uint64_t id = 0;
    CHECK_FALSE(c.join_or_lead(k, w1, t, id));  // leads
    CHECK(id != 0);
    respcache::cache::fill_token t2;
    std::uint64_t id2 = 0;
    CHECK(c.join_or_lead(k, w2, t2, id2));  // waits
    c.end_fill(k, id, "$1\r\nv\r\n", true);
    CHECK(calls == 1);
    CHECK(got == "$1\r\nv\r\n");
    // After an invalidation a miss never waits for a fill that began before it.
    lru_cache::fill_waiter w3 = w1;
    CHECK_FALSE(c.join_or_lead(k, w3, t, id));
    c.invalidate("k");
    lru_cache::fill_waiter w4 = w1;
    std::uint64_t id4 = 0;
    CHECK_FALSE(c.join_or_lead(k, w4, t2, id4));
    CHECK(c.fill(k, t, "$1\r\nx\r\n", 0) == false);  // the first fill's token is stale
    c.end_fill(k, id, "$1\r\nx\r\n", true);  // a later fill took over: nothing to call
    CHECK(calls == 1);
}

TEST_CASE("lru_cache: prefetch is a hint that changes nothing a lookup or an eviction sees", "[cache]") {
    manual_clock clk;
    lru_cache c(lim(2), 1, clk);
    c.prefetch(make_key(0, "nothing yet"));  // an empty index
    REQUIRE(put(c, 0, "old", bulk("1"), kStart));
    REQUIRE(put(c, 0, "new", bulk("2"), kStart));
    // Not a use: the least recently used entry stays the one to go.
    c.prefetch(make_key(0, "old"));
    c.prefetch(make_key(0, "absent"));
    c.prefetch(make_key(1, "old"));
    c.prefetch(make_key(0, std::string(70'000, 'k')));  // a name too long to cache
    REQUIRE(put(c, 0, "third", bulk("3"), kStart));
    CHECK_FALSE(has(c, 0, "old", kStart));
    CHECK(get(c, 0, "new", kStart) == bulk("2"));
    // An entry removed since: its memory may be freed, and prefetching it is still harmless.
    c.invalidate("new", make_key(0, "new").hash);
    c.prefetch(make_key(0, "new"));
    CHECK_FALSE(get(c, 0, "new", kStart));
    CHECK(get(c, 0, "third", kStart) == bulk("3"));
    const auto st = c.stats();
    CHECK(st.entries == 1);
    CHECK(st.evictions == 1);
    CHECK(st.invalidations == 1);
}
