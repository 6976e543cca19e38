// coherence::tracker in front of a Redis Cluster: one channel state per master, aggregated. The cache
// may be read and filled only while every active master's channel is live; the aggregate epoch moves
// with any channel's change; a read barrier passes only when every master's has.

#include "respcache/coherence/tracker.hpp"

#include <catch2/catch.hpp>

#include <vector>

#include "fakes/manual_clock.hpp"
#include "respcache/cache/lru_cache.hpp"

using namespace respcache;

namespace {

struct fixture {
    fakes::manual_clock clk;
    cache::lru_cache cache{cache::limits{16, 0, 300'000}, 1, clk};
    coherence::tracker t{cache, coherence::invalidation_mode::tracking, coherence::consistency_mode::strict};

    // What a listener does when its channel goes live or is lost.
    void go_live(coherence::tracking_state& s, std::int64_t id) {
        s.redirect_id.store(id);
        s.epoch.fetch_add(1);
        s.live.store(true);
        t.channel_changed();
    }
    void lose(coherence::tracking_state& s) {
        s.live.store(false);
        t.channel_changed();
        s.epoch.fetch_add(1);
        s.barriers_failed();
    }
};

}  // namespace

TEST_CASE("cluster coherence: live only while every master's channel is", "[coherence][cluster]") {
    fixture f;
    CHECK_FALSE(f.t.clustered());
    coherence::tracking_state* a = f.t.add_node("127.0.0.1:7000");
    coherence::tracking_state* b = f.t.add_node("127.0.0.1:7001");
    REQUIRE(a != nullptr);
    REQUIRE(b != nullptr);
    CHECK(f.t.clustered());
    CHECK(a->node == "127.0.0.1:7000");
    CHECK_FALSE(f.t.live());

    f.go_live(*a, 11);
    CHECK_FALSE(f.t.live());  // b's channel is not live yet
    CHECK(f.t.redirect_for("127.0.0.1:7000") == 11);
    CHECK(f.t.redirect_for("127.0.0.1:7001") == 0);
    const auto before = f.t.state().epoch.load();
    f.go_live(*b, 12);
    CHECK(f.t.live());
    CHECK(f.t.state().epoch.load() > before);

    // One master's loss stops the whole cache and moves the epoch: a fill tracked before is refused.
    const auto live_epoch = f.t.state().epoch.load();
    f.lose(*a);
    CHECK_FALSE(f.t.live());
    CHECK(f.t.state().epoch.load() > live_epoch);
    CHECK(f.t.redirect_for("127.0.0.1:7000") == 0);
    f.go_live(*a, 13);
    CHECK(f.t.live());

    // A master that leaves no longer counts; one that joins must be live first.
    f.t.remove_node(*b);
    CHECK(f.t.live());
    CHECK(f.t.redirect_for("127.0.0.1:7001") == 0);
    coherence::tracking_state* c = f.t.add_node("127.0.0.1:7002");
    REQUIRE(c != nullptr);
    CHECK_FALSE(f.t.live());
    f.go_live(*c, 14);
    CHECK(f.t.live());
    f.t.remove_node(*a);
    f.t.remove_node(*c);
    CHECK_FALSE(f.t.live());  // no channel at all
}

TEST_CASE("cluster coherence: a read barrier passes once every master's has", "[coherence][cluster]") {
    fixture f;
    coherence::tracking_state* a = f.t.add_node("a:1");
    coherence::tracking_state* b = f.t.add_node("b:1");
    std::vector<std::uint64_t> sent_a, sent_b;
    a->send_barrier = [&](std::uint64_t seq) { sent_a.push_back(seq); };
    b->send_barrier = [&](std::uint64_t seq) { sent_b.push_back(seq); };
    f.go_live(*a, 1);
    f.go_live(*b, 2);

    std::vector<bool> results;
    f.t.await_barrier([&](bool ok) { results.push_back(ok); });
    REQUIRE(sent_a.size() == 1);
    REQUIRE(sent_b.size() == 1);
    a->barrier_answered(sent_a[0]);
    CHECK(results.empty());  // b's PONG has not come
    b->barrier_answered(sent_b[0]);
    CHECK(results == std::vector<bool>{true});
    CHECK(f.t.state().barriers.load() == 1);

    // One master's channel lost while the barrier waits: it fails.
    f.t.await_barrier([&](bool ok) { results.push_back(ok); });
    REQUIRE(sent_a.size() == 2);
    a->barrier_answered(sent_a[1]);
    f.lose(*b);
    CHECK(results == std::vector<bool>{true, false});
}
