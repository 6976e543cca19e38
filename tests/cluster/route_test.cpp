#include "respcache/cluster/merge.hpp"
#include "respcache/cluster/route.hpp"
#include "respcache/cluster/slots.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace respcache;
using namespace respcache::cluster;

namespace {
command::command_info keyed(std::string name, int first, int last, int step) {
    command::command_info i;
    i.name = std::move(name);
    i.first_key = first;
    i.last_key = last;
    i.key_step = step;
    return i;
}
std::vector<std::string_view> args(std::initializer_list<std::string_view> a) { return a; }
}  // namespace

TEST_CASE("cluster: keyed commands go to their slot; keys of two slots get CROSSSLOT", "[cluster]") {
    const auto get = keyed("get", 1, 1, 1);
    route r = plan(args({"GET", "foo"}), &get);
    CHECK(r.how == route::kind::slot);
    CHECK(r.slot == 12182);

    const auto rename = keyed("rename", 1, 2, 1);
    CHECK(plan(args({"RENAME", "{t}a", "{t}b"}), &rename).how == route::kind::slot);
    r = plan(args({"RENAME", "a", "b"}), &rename);
    CHECK(r.how == route::kind::local);
    CHECK(r.reply == kCrossSlot);

    const auto ping = keyed("ping", 0, 0, 0);
    CHECK(plan(args({"PING"}), &ping).how == route::kind::keyless);
    CHECK(plan(args({"NOSUCH", "x"}), nullptr).how == route::kind::keyless);
    CHECK(plan(args({"CLUSTER", "INFO"}), nullptr).reply == kClusterDisabled);
    CHECK(plan(args({"readonly"}), nullptr).reply == kClusterDisabled);
}

TEST_CASE("cluster: MGET, MSET and DEL split by slot, keeping which argument goes where", "[cluster]") {
    route r = plan(args({"MGET", "a", "b", "{a}x", "c"}), nullptr);
    REQUIRE(r.how == route::kind::split);
    CHECK(r.merged == merge::ordered_array);
    // a and {a}x share a slot; b and c have their own (all three differ).
    REQUIRE(key_slot("a") != key_slot("b"));
    REQUIRE(r.groups.size() == (key_slot("b") == key_slot("c") ? 2u : 3u));
    CHECK(r.groups[0].slot == key_slot("a"));
    CHECK(r.groups[0].args == std::vector<std::size_t>{1, 3});

    r = plan(args({"MSET", "a", "1", "b", "2"}), nullptr);
    REQUIRE(r.how == route::kind::split);
    CHECK(r.groups[0].args == std::vector<std::size_t>{1, 2});
    CHECK(r.groups[1].args == std::vector<std::size_t>{3, 4});

    CHECK(plan(args({"DEL", "{x}1", "{x}2"}), nullptr).how == route::kind::slot);
    CHECK(plan(args({"EXISTS", "a", "b"}), nullptr).merged == merge::sum);
    CHECK(plan(args({"DBSIZE"}), nullptr).how == route::kind::fanout);
    CHECK(plan(args({"SCRIPT", "LOAD", "return 1"}), nullptr).how == route::kind::keyless);  // unknown: no subcommand name
}

TEST_CASE("cluster: merged replies", "[cluster]") {
    const route r = plan(args({"MGET", "a", "b", "{a}x"}), nullptr);
    REQUIRE(r.groups.size() == 2);
    merge_context ctx;
    ctx.groups = &r.groups;
    ctx.values = 3;
    const std::vector<std::string> pieces = {"*2\r\n$1\r\n1\r\n$-1\r\n", "*1\r\n$1\r\n2\r\n"};
    CHECK(merge_replies(merge::ordered_array, pieces, ctx) == "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");

    CHECK(merge_replies(merge::sum, std::vector<std::string>{":1\r\n", ":2\r\n", ":0\r\n"}, {}) == ":3\r\n");
    CHECK(merge_replies(merge::sum, std::vector<std::string>{":1\r\n", "-ERR x\r\n"}, {}) == "-ERR x\r\n");
    CHECK(merge_replies(merge::all_ok, std::vector<std::string>{"+OK\r\n", "+OK\r\n"}, {}) == "+OK\r\n");
    CHECK(merge_replies(merge::concat, std::vector<std::string>{"*1\r\n$1\r\na\r\n", "*0\r\n", "*1\r\n$1\r\nb\r\n"}, {}) ==
          "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    CHECK(merge_replies(merge::any_value, std::vector<std::string>{"$-1\r\n", "$1\r\nk\r\n"}, {}) == "$1\r\nk\r\n");
    CHECK(merge_replies(merge::any_value, std::vector<std::string>{"_\r\n", "_\r\n"}, {}) == "_\r\n");

    merge_context scan;
    scan.scan_node = 1;
    scan.masters = 3;
    CHECK(merge_replies(merge::scan, std::vector<std::string>{"*2\r\n$2\r\n10\r\n*0\r\n"}, scan) ==
          "*2\r\n$2\r\n31\r\n*0\r\n");
    CHECK(merge_replies(merge::scan, std::vector<std::string>{"*2\r\n$1\r\n0\r\n*0\r\n"}, scan) ==
          "*2\r\n$1\r\n2\r\n*0\r\n");  // the next master, from its start
    scan.scan_node = 2;
    CHECK(merge_replies(merge::scan, std::vector<std::string>{"*2\r\n$1\r\n0\r\n*0\r\n"}, scan) ==
          "*2\r\n$1\r\n0\r\n*0\r\n");  // the last master's end: the end
}

TEST_CASE("cluster: the SCAN cursor names the master and its own cursor", "[cluster]") {
    auto p = decode_scan_cursor("31", 3);
    REQUIRE(p);
    CHECK(p->node == 1);
    CHECK(p->inner == "10");
    p = decode_scan_cursor("0", 3);
    REQUIRE(p);
    CHECK(p->node == 0);
    CHECK(p->inner == "0");
    // A master's cursor near 2^64 still round-trips.
    const std::string big = encode_scan_cursor("18446744073709551615", 2, 3);
    p = decode_scan_cursor(big, 3);
    REQUIRE(p);
    CHECK(p->node == 2);
    CHECK(p->inner == "18446744073709551615");
    CHECK_FALSE(decode_scan_cursor("abc", 3));
    CHECK_FALSE(decode_scan_cursor("-1", 3));
}
