#include "respcache/command/effects.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fakes/manual_clock.hpp"
#include "fakes/redis7_catalog.hpp"

namespace {

using respcache::cache::hash_name;
using respcache::cache::limits;
using respcache::cache::lru_cache;
using respcache::cache::make_key;
using respcache::cache::millis;
using respcache::command::cache_effect;
using respcache::command::catalog;
using respcache::command::command_info;
using respcache::command::effect_of;
using respcache::command::owned_effect;
using respcache::fakes::manual_clock;
using respcache::fakes::redis7_catalog;

using sv_list = std::vector<std::string_view>;
using db_list = std::vector<std::uint32_t>;

const command_info* info_for(const sv_list& args) { return redis7_catalog()->find(args); }

// The effect of `args` in `db` as the session computes it: with the backend's description of the command.
cache_effect effect(const sv_list& args, std::uint32_t db = 0) {
    const command_info* info = info_for(args);
    INFO("command: " << args.at(0));
    REQUIRE(info != nullptr);
    return effect_of(info, args, db);
}

constexpr millis kNow = 1'000'000;

}  // namespace

TEST_CASE("effects: what each kind of command changes", "[command][effects]") {
    struct row {
        sv_list args;
        std::uint32_t db;
        sv_list keys;
        db_list dbs;
        bool all;
    };
    const row rows[] = {
        // Read-only commands change nothing.
        {{"GET", "k"}, 0, {}, {}, false},
        {{"MGET", "a", "b"}, 0, {}, {}, false},
        {{"XREAD", "STREAMS", "s", "0"}, 0, {}, {}, false},
        {{"OBJECT", "ENCODING", "k"}, 0, {}, {}, false},
        {{"SORT_RO", "k", "BY", "w_*"}, 0, {}, {}, false},
        {{"EVAL_RO", "return 1", "1", "k"}, 0, {}, {}, false},
        // Writes change their keys, by name (every database).
        {{"SET", "k", "v"}, 0, {"k"}, {}, false},
        {{"set", "k", "v", "EX", "10"}, 4, {"k"}, {}, false},
        {{"DEL", "k1", "k2"}, 0, {"k1", "k2"}, {}, false},
        {{"MSET", "a", "1", "b", "2"}, 0, {"a", "b"}, {}, false},
        {{"RENAME", "a", "b"}, 0, {"a", "b"}, {}, false},
        {{"LMOVE", "src", "dst", "LEFT", "RIGHT"}, 0, {"src", "dst"}, {}, false},
        {{"COPY", "src", "dst", "DB", "1"}, 0, {"src", "dst"}, {}, false},
        {{"ZUNIONSTORE", "dest", "2", "a", "b", "WEIGHTS", "1", "2"}, 0, {"dest", "a", "b"}, {}, false},
        {{"GEORADIUS", "g", "15", "37", "200", "km", "STORE", "x"}, 0, {"g", "x"}, {}, false},
        {{"EVAL", "return 1", "2", "k1", "k2", "arg"}, 0, {"k1", "k2"}, {}, false},
        {{"FCALL", "fn", "1", "k1", "arg"}, 0, {"k1"}, {}, false},
        {{"BLPOP", "a", "b", "0"}, 0, {"a", "b"}, {}, false},
        // A write with no keys changes nothing the cache holds.
        {{"PUBLISH", "ch", "msg"}, 0, {}, {}, false},
        {{"CLIENT", "LIST"}, 0, {}, {}, false},
        // Whole databases.
        {{"FLUSHDB"}, 3, {}, {3}, false},
        {{"flushdb", "ASYNC"}, 0, {}, {0}, false},
        {{"FLUSHALL"}, 5, {}, {}, true},
        // A user's permissions change: everything cached for users Redis judged before goes.
        {{"ACL", "SETUSER", "reader", "~other:*"}, 0, {}, {}, true},
        {{"acl", "deluser", "reader"}, 0, {}, {}, true},
        {{"ACL", "LOAD"}, 0, {}, {}, true},
        {{"ACL", "WHOAMI"}, 0, {}, {}, false},
        {{"flushall", "SYNC"}, 0, {}, {}, true},
        {{"SWAPDB", "1", "2"}, 0, {}, {1, 2}, false},
        {{"swapdb", "0", "15"}, 7, {}, {0, 15}, false},
        {{"SWAPDB", "x", "2"}, 0, {}, {}, true},    // cannot tell which: everything
        {{"SWAPDB", "-1", "2"}, 0, {}, {}, true},
        {{"SWAPDB", "1"}, 0, {}, {}, true},
        {{"SWAPDB", "1", "2", "3"}, 0, {}, {}, true},
        // SORT writes only with STORE.
        {{"SORT", "k"}, 0, {}, {}, false},
        {{"SORT", "k", "BY", "w_*", "GET", "#", "LIMIT", "0", "10"}, 0, {}, {}, false},
        {{"SORT", "k", "STORE", "dst"}, 0, {"dst"}, {}, false},
        {{"sort", "k", "BY", "w_*", "GET", "#", "store", "dst"}, 2, {"dst"}, {}, false},
        // Keys that cannot all be found: the whole database.
        {{"MIGRATE", "host", "6379", "key", "0", "5000"}, 1, {"key"}, {1}, false},
        {{"EVAL", "return 1", "3", "k1"}, 2, {"k1"}, {2}, false},
        {{"EVAL", "return 1", "x", "k1"}, 2, {}, {2}, false},
    };
    for (const auto& r : rows) {
        CAPTURE(r.args.front(), r.args.size(), r.db);
        const cache_effect e = effect(r.args, r.db);
        CHECK(e.keys == r.keys);
        CHECK(e.dbs == r.dbs);
        CHECK(e.all == r.all);
        CHECK(e.empty() == (r.keys.empty() && r.dbs.empty() && !r.all));
    }
}

TEST_CASE("effects: MIGRATE ... KEYS changes its keys and, its spec being incomplete, its database",
          "[command][effects]") {
    const cache_effect e = effect({"MIGRATE", "host", "6379", "", "0", "5000", "KEYS", "k1", "k2"}, 6);
    REQUIRE(e.keys.size() >= 2);
    CHECK(e.keys[e.keys.size() - 2] == "k1");
    CHECK(e.keys[e.keys.size() - 1] == "k2");
    CHECK(e.dbs == db_list{6});
    CHECK_FALSE(e.all);
}

TEST_CASE("effects: an unknown command changes its whole database", "[command][effects]") {
    const sv_list args = {"NOSUCHWRITE", "k", "v"};
    REQUIRE(info_for(args) == nullptr);
    const cache_effect e = effect_of(nullptr, args, 9);
    CHECK(e.keys.empty());
    CHECK(e.dbs == db_list{9});
    CHECK_FALSE(e.all);
    // Even a read, when the table is unknown.
    CHECK(effect_of(nullptr, sv_list{"GET", "k"}, 0).dbs == db_list{0});
    // But the whole-database commands are known by name without a table.
    CHECK(effect_of(nullptr, sv_list{"FLUSHALL"}, 0).all);
    CHECK(effect_of(nullptr, sv_list{"FLUSHDB"}, 4).dbs == db_list{4});
    CHECK(effect_of(nullptr, sv_list{"SWAPDB", "3", "4"}, 0).dbs == db_list{3, 4});
    // No arguments at all: nothing.
    CHECK(effect_of(nullptr, sv_list{}, 0).empty());
}

TEST_CASE("effects: keys are views into the command's arguments", "[command][effects]") {
    const sv_list args = {"DEL", "k1", "k2"};
    const cache_effect e = effect(args);
    REQUIRE(e.keys.size() == 2);
    CHECK(e.keys[0].data() == args[1].data());
    CHECK(e.keys[1].data() == args[2].data());
}

TEST_CASE("effects: scripts from a Redis without key specs follow numkeys", "[command][effects]") {
    // A Redis 6 style entry for EVAL and FCALL: no key specs, movable keys.
    auto entry = [](std::string_view name) {
        return "*7\r\n$" + std::to_string(name.size()) + "\r\n" + std::string(name) +
               "\r\n:-3\r\n*2\r\n+noscript\r\n+movablekeys\r\n:0\r\n:0\r\n:0\r\n*0\r\n";
    };
    const auto cat = catalog::from_reply("*3\r\n" + entry("eval") + entry("evalsha") + entry("fcall"));
    REQUIRE(cat != nullptr);
    struct row {
        sv_list args;
        sv_list keys;
        db_list dbs;
    };
    const row rows[] = {
        {{"EVAL", "s", "2", "k1", "k2", "a"}, {"k1", "k2"}, {}},
        {{"evalsha", "sha", "1", "k1"}, {"k1"}, {}},
        {{"FCALL", "f", "0", "a"}, {}, {}},
        {{"EVAL", "s", "3", "k1"}, {}, {1}},
        {{"EVAL", "s", "-1", "k1"}, {}, {1}},
        {{"EVAL", "s", "x"}, {}, {1}},
        {{"EVAL", "s"}, {}, {1}},
    };
    for (const auto& r : rows) {
        CAPTURE(r.args.front(), r.args.size());
        const command_info* info = cat->find(r.args);
        REQUIRE(info != nullptr);
        const cache_effect e = effect_of(info, r.args, 1);
        CHECK(e.keys == r.keys);
        CHECK(e.dbs == r.dbs);
        CHECK_FALSE(e.all);
    }
}

static std::vector<std::string> keys_of(const owned_effect& e) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < e.key_count(); ++i) out.emplace_back(e.key(i));
    return out;
}

TEST_CASE("effects: owned_effect keeps its own copies and accumulates", "[command][effects]") {
    owned_effect acc;
    CHECK(acc.empty());
    {
        std::vector<std::string> storage = {"DEL", "alpha", "beta"};
        const sv_list args(storage.begin(), storage.end());
        acc.add(effect(args));
        storage.assign(3, std::string(32, '#'));  // the request buffer is reused
    }
    CHECK(keys_of(acc) == std::vector<std::string>{"alpha", "beta"});
    CHECK(acc.hashes == std::vector<std::uint64_t>{hash_name("alpha"), hash_name("beta")});
    CHECK(acc.dbs.empty());
    CHECK_FALSE(acc.all);
    CHECK_FALSE(acc.empty());

    acc.add(effect({"FLUSHDB"}, 2));
    acc.add(effect({"SWAPDB", "2", "3"}));
    CHECK(acc.dbs == db_list{2, 3});  // no duplicates
    CHECK_FALSE(acc.all);

    owned_effect other;
    other.add(effect({"SET", "gamma", "v"}));
    other.add(effect({"FLUSHDB"}, 3));
    other.add(effect({"FLUSHDB"}, 4));
    acc.add(other);
    CHECK(keys_of(acc) == std::vector<std::string>{"alpha", "beta", "gamma"});
    CHECK(acc.hashes.size() == 3);
    CHECK(acc.hashes[2] == hash_name("gamma"));
    CHECK(acc.dbs == db_list{2, 3, 4});
    CHECK_FALSE(acc.all);

    acc.add(effect({"FLUSHALL"}));
    CHECK(acc.all);

    acc.clear();
    CHECK(acc.empty());
    CHECK(acc.key_count() == 0);
    CHECK(acc.hashes.empty());
    CHECK(acc.dbs.empty());
    CHECK_FALSE(acc.all);
}

TEST_CASE("effects: owned_effect::touches", "[command][effects]") {
    owned_effect keys_only;
    keys_only.add(effect({"DEL", "a", "b"}));
    CHECK(keys_only.touches(make_key(0, "a")));
    CHECK(keys_only.touches(make_key(7, "a")));  // by name, in every database
    CHECK(keys_only.touches(make_key(3, "b")));
    CHECK_FALSE(keys_only.touches(make_key(0, "c")));
    CHECK_FALSE(keys_only.touches(make_key(0, "A")));
    CHECK_FALSE(keys_only.touches(make_key(0, "ab")));

    owned_effect one_db;
    one_db.add(effect({"FLUSHDB"}, 2));
    CHECK(one_db.touches(make_key(2, "anything")));
    CHECK_FALSE(one_db.touches(make_key(1, "anything")));

    owned_effect everything;
    everything.add(effect({"FLUSHALL"}));
    CHECK(everything.touches(make_key(0, "x")));
    CHECK(everything.touches(make_key(15, "y")));

    const owned_effect nothing;
    CHECK_FALSE(nothing.touches(make_key(0, "a")));
}

TEST_CASE("effects: owned_effect::apply removes what it touches from a real cache", "[command][effects]") {
    manual_clock clk;
    lru_cache cache(limits{256, 0, 60'000}, 4, clk);
    const char* names[] = {"a", "b", "c"};
    auto fill_all = [&] {
        for (std::uint32_t db = 0; db < 3; ++db)
            for (const char* n : names) {
                const auto k = make_key(db, n);
                REQUIRE(cache.fill(k, cache.begin_fill(k), "$1\r\nv\r\n", kNow));
            }
    };
    auto held = [&] {
        std::vector<std::string> out;
        for (std::uint32_t db = 0; db < 3; ++db)
            for (const char* n : names)
                if (cache.contains(make_key(db, n), kNow)) out.push_back(std::to_string(db) + n);
        return out;
    };
    fill_all();

    SECTION("keys: by name in every database") {
        owned_effect e;
        e.add(effect({"DEL", "a", "c"}, 1));
        e.apply(cache);
        CHECK(held() == std::vector<std::string>{"0b", "1b", "2b"});
        CHECK(cache.stats().invalidations == 6);
    }
    SECTION("databases") {
        owned_effect e;
        e.add(effect({"SWAPDB", "0", "2"}));
        e.apply(cache);
        CHECK(held() == std::vector<std::string>{"1a", "1b", "1c"});
    }
    SECTION("keys and databases together") {
        owned_effect e;
        e.add(effect({"SET", "b", "v"}));
        e.add(effect({"FLUSHDB"}, 0));
        e.apply(cache);
        CHECK(held() == std::vector<std::string>{"1a", "1c", "2a", "2c"});
    }
    SECTION("everything") {
        owned_effect e;
        e.add(effect({"SET", "b", "v"}));
        e.add(effect({"FLUSHALL"}));
        e.apply(cache);
        CHECK(held().empty());
        CHECK(cache.stats().entries == 0);
    }
    SECTION("nothing") {
        owned_effect e;
        e.add(effect({"GET", "a"}));
        REQUIRE(e.empty());
        e.apply(cache);
        CHECK(held().size() == 9);
    }
}

TEST_CASE("effects: applying an effect fails the fills in flight for what it touches", "[command][effects]") {
    manual_clock clk;
    lru_cache cache(limits{256, 0, 60'000}, 1, clk);
    struct row {
        sv_list write;
        std::uint32_t write_db;
        std::uint32_t fill_db;
        const char* fill_name;
        bool inserted;
    };
    const row rows[] = {
        {{"SET", "k", "v"}, 0, 0, "k", false},
        {{"SET", "k", "v"}, 0, 3, "k", false},       // same name in another database
        {{"DEL", "x", "k"}, 1, 1, "k", false},
        {{"FLUSHDB"}, 2, 2, "k", false},
        {{"FLUSHALL"}, 0, 5, "k", false},
        {{"SWAPDB", "0", "1"}, 0, 1, "k", false},
        {{"GET", "k"}, 0, 0, "k", true},             // a read changes nothing
        {{"SORT", "k"}, 0, 0, "k", true},            // SORT without STORE is a read
        {{"SORT", "src", "STORE", "k"}, 0, 0, "k", false},
    };
    for (const auto& r : rows) {
        CAPTURE(r.write.front(), r.write.size(), r.fill_db);
        cache.flush_all();
        const auto k = make_key(r.fill_db, r.fill_name);
        const auto token = cache.begin_fill(k);  // a GET miss is in flight
        owned_effect e;
        e.add(effect(r.write, r.write_db));
        e.apply(cache);  // the write is acknowledged
        CHECK(cache.fill(k, token, "$3\r\nold\r\n", kNow) == r.inserted);
        CHECK(cache.contains(k, kNow) == r.inserted);
    }
}
