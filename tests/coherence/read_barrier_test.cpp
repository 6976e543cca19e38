// Read barriers of --consistency strict (tracking_state::await_barrier and friends): which waiter a
// barrier's answer releases, how waiters share barriers, and that a lost channel fails every waiter.

#include "respcache/coherence/tracking_state.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <vector>

using respcache::coherence::tracking_state;

namespace {

// A channel stand-in: records the barrier PINGs the state asks to send.
struct fixture {
    tracking_state t;
    std::vector<std::uint64_t> sent;

    fixture() {
        t.send_barrier = [this](std::uint64_t seq) { sent.push_back(seq); };
        t.live = true;
    }

    // Starts a wait; the returned slot holds the outcome once called back.
    std::optional<bool>& wait(std::vector<std::optional<bool>>& outcomes) {
        outcomes.emplace_back();
        const std::size_t i = outcomes.size() - 1;
        t.await_barrier([&outcomes, i](bool ok) { outcomes[i] = ok; });
        return outcomes[i];
    }
};

}  // namespace

TEST_CASE("read barrier: one PING per barrier, answered in order", "[read_barrier]") {
    fixture f;
    std::vector<std::optional<bool>> out;
    out.reserve(8);
    f.wait(out);
    REQUIRE(f.sent == std::vector<std::uint64_t>{1});
    CHECK(!out[0]);
    // Arrived while barrier 1 was in flight: 1 was sent before them, so they need the next one.
    f.wait(out);
    f.wait(out);
    CHECK(f.sent == std::vector<std::uint64_t>{1});
    f.t.barrier_answered(1);
    CHECK(out[0] == true);
    CHECK(!out[1]);
    CHECK(!out[2]);
    REQUIRE(f.sent == std::vector<std::uint64_t>{1, 2});  // sent at once for the two who wait
    f.t.barrier_answered(2);
    CHECK(out[1] == true);
    CHECK(out[2] == true);
    CHECK(f.sent.size() == 2);  // nobody waits: nothing more is sent
    CHECK(f.t.barriers.load() == 2);
    // Idle again: the next waiter sends a barrier of its own.
    f.wait(out);
    CHECK(f.sent == std::vector<std::uint64_t>{1, 2, 3});
}

TEST_CASE("read barrier: an answer to an older barrier releases nobody", "[read_barrier]") {
    fixture f;
    std::vector<std::optional<bool>> out;
    out.reserve(4);
    f.wait(out);
    f.t.barriers_failed();  // the channel was lost with barrier 1 in flight
    CHECK(out[0] == false);
    f.wait(out);
    REQUIRE(f.sent == std::vector<std::uint64_t>{1, 2});
    f.t.barrier_answered(1);  // barrier 1's PING, sent late on the new connection
    CHECK(!out[1]);
    f.t.barrier_answered(3);  // never sent
    CHECK(!out[1]);
    f.t.barrier_answered(2);
    CHECK(out[1] == true);
}

TEST_CASE("read barrier: a lost channel fails the in-flight and the queued waiters", "[read_barrier]") {
    fixture f;
    std::vector<std::optional<bool>> out;
    out.reserve(4);
    f.wait(out);
    f.wait(out);
    f.t.live = false;
    f.t.barriers_failed();
    CHECK(out[0] == false);
    CHECK(out[1] == false);
    // While the channel is down a waiter is answered at once, and nothing is sent.
    f.wait(out);
    CHECK(out[2] == false);
    CHECK(f.sent == std::vector<std::uint64_t>{1});
    // Back: barriers work again.
    f.t.live = true;
    f.wait(out);
    REQUIRE(f.sent == std::vector<std::uint64_t>{1, 2});
    f.t.barrier_answered(2);
    CHECK(out[3] == true);
}
