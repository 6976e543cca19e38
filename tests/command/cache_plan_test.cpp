#include "respcache/command/cache_plan.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "fakes/redis7_catalog.hpp"

namespace {

namespace cmd = respcache::command;
using respcache::fakes::redis7_catalog;
using sv_list = std::vector<std::string_view>;

bool has(const std::vector<std::string>& names, std::string_view n) {
    return std::find(names.begin(), names.end(), n) != names.end();
}

cmd::cache_commands spec(std::string_view text) {
    std::string error;
    auto parsed = cmd::cache_commands::parse(text, error);
    INFO(error);
    REQUIRE(parsed);
    return *parsed;
}

const cmd::read_policy* policy_of(const cmd::cache_plan& plan, const sv_list& args) {
    return plan.find(plan.table()->find(args));
}

}  // namespace

TEST_CASE("cache plan: the default set is every deterministic one-key read of the backend's table", "[command][plan]") {
    const auto plan = cmd::cache_plan::build(redis7_catalog(), {});
    const auto& names = plan->names();
    for (std::string_view n : {"get", "mget", "getrange", "strlen", "exists", "hget", "hmget", "hgetall", "hkeys",
                               "hvals", "hlen", "hexists", "hstrlen", "lrange", "lindex", "llen", "lpos", "smembers",
                               "sismember", "smismember", "scard", "zrange", "zrangebyscore", "zrangebylex",
                               "zrevrange", "zscore", "zmscore", "zcard", "zrank", "zcount", "type", "xrange",
                               "xrevrange", "xlen", "bitcount", "getbit", "substr", "geopos", "geodist", "expiretime",
                               "sinter", "sunion"}) {
        INFO(n);
        CHECK(has(names, n));
    }
    // Time, randomness, cursors, metadata that changes with no write, several keys, or not a read at all.
    // SINTER and SUNION are there for their one-key form (a read of several keys is forwarded).
    for (std::string_view n : {"ttl", "pttl", "object|encoding", "object|freq", "randomkey",
                               "srandmember", "hrandfield", "zrandmember", "scan", "sscan", "hscan", "zscan", "keys",
                               "xinfo|stream", "touch", "memory|usage", "sort_ro", "lolwut", "dump", "zunion", "blpop", "getex", "getdel", "set", "lmpop", "eval_ro", "dbsize"}) {
        INFO(n);
        CHECK_FALSE(has(names, n));
    }
    CHECK(plan->caches_get());
    CHECK(plan->caches_mget());
    CHECK(plan->refused().empty());
    // A policy names where the key is: HGET's second argument, LRANGE's too, EXISTS's only when alone.
    const auto* hget = policy_of(*plan, {"HGET", "h", "f"});
    REQUIRE(hget != nullptr);
    CHECK(hget->key_index == 1);
    CHECK(policy_of(*plan, {"TTL", "k"}) == nullptr);
}

TEST_CASE("cache plan: --cache-commands narrows and widens the default set", "[command][plan]") {
    SECTION("exactly the names given") {
        const auto plan = cmd::cache_plan::build(redis7_catalog(), spec("get, HGETALL"));
        CHECK(plan->names() == std::vector<std::string>{"get", "hgetall"});
        CHECK(plan->caches_get());
        CHECK_FALSE(plan->caches_mget());
        CHECK(policy_of(*plan, {"HGET", "h", "f"}) == nullptr);
        CHECK(policy_of(*plan, {"HGETALL", "h"}) != nullptr);
    }
    SECTION("the defaults less some, plus one that is not a default") {
        const auto plan = cmd::cache_plan::build(redis7_catalog(), spec("default,-hgetall,-get,+object|encoding"));
        CHECK_FALSE(has(plan->names(), "hgetall"));
        CHECK_FALSE(plan->caches_get());
        CHECK(plan->caches_mget());
        CHECK(has(plan->names(), "object|encoding"));
        CHECK(policy_of(*plan, {"OBJECT", "ENCODING", "k"}) != nullptr);
        CHECK(has(plan->names(), "hget"));
    }
    SECTION("a name the backend does not know, a write, a blocking read or one of other keys is refused") {
        const auto plan = cmd::cache_plan::build(redis7_catalog(), spec("default,+nosuch,+set,+blpop,+sort_ro"));
        CHECK(plan->refused() == std::vector<std::string>{"nosuch", "set", "blpop", "sort_ro"});
        CHECK_FALSE(has(plan->names(), "set"));
        CHECK_FALSE(has(plan->names(), "sort_ro"));
    }
    SECTION("without the backend's table only GET and MGET can be cached") {
        const auto plan = cmd::cache_plan::build(nullptr, {});
        CHECK(plan->caches_get());
        CHECK(plan->caches_mget());
        CHECK(plan->names() == std::vector<std::string>{"get", "mget"});
    }
}

TEST_CASE("cache plan: parsing --cache-commands", "[command][plan]") {
    std::string error;
    CHECK(cmd::cache_commands::parse("default", error) == cmd::cache_commands{});
    const auto s = spec(" get ,XINFO|Stream ");
    CHECK_FALSE(s.defaults);
    CHECK(s.added == std::vector<std::string>{"get", "xinfo|stream"});
    CHECK(s.to_string() == "get,xinfo|stream");
    CHECK(spec("default,-hget,+object|encoding").to_string() == "default,+object|encoding,-hget");
    for (std::string_view bad : {"", ",", "get,,hget", "-hget", "get,-hget", "ge t", "default,+"}) {
        INFO(bad);
        CHECK_FALSE(cmd::cache_commands::parse(bad, error));
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("cache plan: a reply's variant tells apart the protocol, the command and its other arguments",
          "[command][plan]") {
    using respcache::resp::protocol;
    std::string a, b, c, d;
    cmd::reply_variant(protocol::resp2, "lrange", sv_list{"LRANGE", "l", "0", "-1"}, 1, a);
    cmd::reply_variant(protocol::resp3, "lrange", sv_list{"LRANGE", "l", "0", "-1"}, 1, b);
    cmd::reply_variant(protocol::resp2, "lrange", sv_list{"LRANGE", "l", "0", "1"}, 1, c);
    // Length prefixes keep ("ab","c") and ("a","bc") apart.
    cmd::reply_variant(protocol::resp2, "hmget", sv_list{"HMGET", "h", "ab", "c"}, 1, d);
    std::string e;
    cmd::reply_variant(protocol::resp2, "hmget", sv_list{"HMGET", "h", "a", "bc"}, 1, e);
    CHECK(a != b);
    CHECK(a != c);
    CHECK(d != e);
    std::string again;
    cmd::reply_variant(protocol::resp2, "lrange", sv_list{"lrange", "l", "0", "-1"}, 1, again);
    CHECK(again == a);  // the command's name comes from the backend's table, whatever case the client used
}

TEST_CASE("cache plan: per-command statistics slots are stable", "[command][plan]") {
    CHECK(cmd::stat_slot("get") == 1);
    CHECK(cmd::stat_slot("mget") == 2);
    const auto s = cmd::stat_slot("hgetall");
    CHECK(s > 2);
    CHECK(cmd::stat_slot("hgetall") == s);
    CHECK(cmd::stat_name(s) == "hgetall");
    CHECK(cmd::stat_name(0) == "other");
}

TEST_CASE("cache plan: an entry's read is rebuilt from its key and variant", "[command][plan]") {
    using respcache::resp::protocol;
    const auto plan = cmd::cache_plan::build(redis7_catalog(), spec("default,+object|encoding"));
    auto round_trip = [&](protocol proto, const sv_list& args, std::size_t key_index) {
        std::string variant;
        const cmd::command_info* info = plan->table()->find(args);
        REQUIRE(info != nullptr);
        cmd::reply_variant(proto, info->name, args, key_index, variant);
        return cmd::read_of_entry(*plan, args[key_index], variant);
    };
    auto lrange = round_trip(protocol::resp3, {"LRANGE", "l", "0", "-1"}, 1);
    REQUIRE(lrange);
    CHECK(lrange->proto == protocol::resp3);
    CHECK(lrange->args == std::vector<std::string>{"lrange", "l", "0", "-1"});
    auto encoding = round_trip(protocol::resp2, {"OBJECT", "ENCODING", "k"}, 2);
    REQUIRE(encoding);
    CHECK(encoding->args == std::vector<std::string>{"object", "ENCODING", "k"});
    auto get = cmd::read_of_entry(*plan, "k", "");
    REQUIRE(get);
    CHECK(get->args == std::vector<std::string>{"GET", "k"});
    // Not a variant, or a command no longer cached: nothing.
    CHECK_FALSE(cmd::read_of_entry(*plan, "k", std::string_view("\x02\x09lrange", 8)));
    CHECK_FALSE(cmd::read_of_entry(*plan, "k", std::string_view("\x07\x01x", 3)));
    const auto narrow = cmd::cache_plan::build(redis7_catalog(), spec("get"));
    std::string variant;
    cmd::reply_variant(protocol::resp2, "lrange", sv_list{"LRANGE", "l", "0", "1"}, 1, variant);
    CHECK_FALSE(cmd::read_of_entry(*narrow, "l", variant));
}
