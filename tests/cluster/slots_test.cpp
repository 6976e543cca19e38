#include "respcache/cluster/slots.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace respcache::cluster;

TEST_CASE("cluster: key_slot agrees with CLUSTER KEYSLOT, hash tags included", "[cluster]") {
    // Values from a redis-server 7 with cluster-enabled yes.
    CHECK(key_slot("foo") == 12182);
    CHECK(key_slot("somekey") == 11058);
    CHECK(key_slot("hello") == 866);
    CHECK(key_slot("123456789") == 12739);
    CHECK(key_slot("") == 0);
    CHECK(key_slot("{user1000}.following") == 3443);
    CHECK(key_slot("{user1000}.followers") == 3443);
    CHECK(key_slot("foo{}{bar}") == 8363);     // an empty tag: the whole key
    CHECK(key_slot("foo{{bar}}zap") == 4015);  // the tag is "{bar"
    CHECK(key_slot("foo{bar}{zap}") == 5061);  // the first tag only: "bar"
    CHECK(key_slot("foo{bar}{zap}") == key_slot("bar"));
}

TEST_CASE("cluster: a CLUSTER SLOTS reply makes a map whose masters are in name order", "[cluster]") {
    // Two masters listed out of name order, one with replicas, one with an unknown address.
    const std::string reply =
        "*2\r\n"
        "*4\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nr1\r\n"
        "*3\r\n:8192\r\n:16383\r\n*3\r\n$0\r\n\r\n:7000\r\n$2\r\nm2\r\n";
    auto m = slot_map::from_cluster_slots(reply, "10.1.1.1");
    REQUIRE(m);
    REQUIRE(m->masters().size() == 2);
    CHECK(m->masters()[0].name() == "10.1.1.1:7000");  // the empty address is the answering node's host
    CHECK(m->masters()[1].name() == "127.0.0.1:7001");
    CHECK(m->owner(0) == 1);
    CHECK(m->owner(8191) == 1);
    CHECK(m->owner(8192) == 0);
    CHECK(m->owner(16383) == 0);
    CHECK(m->complete());

    m->assign(5, {"127.0.0.2", 7005});
    CHECK(m->owner(5) == 2);
    CHECK(m->index_of({"127.0.0.2", 7005}) == 2);

    CHECK_FALSE(slot_map::from_cluster_slots("-ERR This instance has cluster support disabled\r\n", "h"));
    CHECK_FALSE(slot_map::from_cluster_slots("*1\r\n*3\r\n:10\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n", "h"));  // first > last
    auto partial = slot_map::from_cluster_slots("*1\r\n*3\r\n:0\r\n:99\r\n*2\r\n$1\r\nh\r\n:1\r\n", "h");
    REQUIRE(partial);
    CHECK_FALSE(partial->complete());
    CHECK(partial->owner(100) == kNoNode);
}

TEST_CASE("cluster: MOVED and ASK are read, other errors are not redirections", "[cluster]") {
    auto moved = parse_redirect("-MOVED 3999 127.0.0.1:6381\r\n");
    REQUIRE(moved);
    CHECK_FALSE(moved->ask);
    CHECK(moved->slot == 3999);
    CHECK(moved->node.name() == "127.0.0.1:6381");
    auto ask = parse_redirect("-ASK 12 [::1]:7000\r\n");
    REQUIRE(ask);
    CHECK(ask->ask);
    CHECK(ask->node.host == "::1");
    auto unknown_host = parse_redirect("-MOVED 1 :7002\r\n");
    REQUIRE(unknown_host);
    CHECK(unknown_host->node.host.empty());
    CHECK_FALSE(parse_redirect("-ERR MOVED 1 h:1\r\n"));
    CHECK_FALSE(parse_redirect("-MOVED 16384 h:1\r\n"));
    CHECK_FALSE(parse_redirect("-MOVED 1 h\r\n"));
    CHECK_FALSE(parse_redirect("+OK\r\n"));
}
