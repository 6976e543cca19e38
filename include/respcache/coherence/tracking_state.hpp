#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace respcache::backend {
class connection;
}

namespace respcache::coherence {

// The shared state of the invalidation channel (Redis client tracking): written by the invalidation
// listener, read by every io thread. The rules it serves are in tracker.hpp; only coherence/ writes it.
struct tracking_state {
    // With a Redis Cluster each master has a channel, and a state, of its own: its node name ("host:port",
    // set before the state is published and never changed) and whether it is one of the channels in use.
    std::string node;
    std::atomic<bool> active{false};
    std::atomic<bool> live{false};             // subscribed to __redis__:invalidate and answering PINGs
    std::atomic<std::uint64_t> epoch{1};       // bumped whenever the channel is (re)established or lost
    std::atomic<std::int64_t> redirect_id{0};  // CLIENT ID of the channel's connection
    std::atomic<bool> unsupported{false};      // the backend has no client tracking: TTL only
    std::atomic<std::uint64_t> invalidations{0};  // invalidation messages received
    std::atomic<std::uint64_t> losses{0};         // times the cache was flushed for a lost channel or link
    std::atomic<std::uint64_t> barriers{0};       // read barriers passed (--consistency strict)
    std::atomic<std::uint64_t> fills_pre_tracked{0};  // fills sent without CLIENT CACHING yes: already tracked
    // --stale-if-error: how long entries may be served after the backend became unreachable (0: never),
    // and since when (steady clock, ms) the cache holds entries that a loss left untracked (0: none).
    std::atomic<std::int64_t> stale_window_ms{0};
    std::atomic<std::int64_t> stale_since_ms{0};

    // Catching up with the channel from any thread. `read_mutex` serializes every read of the channel's
    // socket (the listener's and the io threads'); `channel` is its connection while live (published
    // and unpublished under read_mutex, before the socket can close); `draining` is true while someone
    // holds bytes read from it but not yet applied.
    std::mutex read_mutex;
    std::atomic<backend::connection*> channel{nullptr};
    std::atomic<bool> draining{false};

    // Read barriers (--consistency strict). Redis queues a write's invalidation on the channel while it
    // runs the write, so a PING sent on the channel after a request arrived is answered after every
    // invalidation of every write acknowledged before that request: once its PONG is read, those are
    // applied. One barrier PING is in flight at a time; requests that arrive meanwhile share the next.
    // `done(true)` once passed, `done(false)` if the channel is not live or is lost first; called on
    // whichever thread reads the channel (possibly under read_mutex) or on the caller's, never under
    // barrier_mu_: it must only post.
    void await_barrier(std::function<void(bool)> done);
    // The reply to barrier `seq` was read, after everything before it on the channel was applied.
    void barrier_answered(std::uint64_t seq);
    // The channel was lost: every waiting barrier fails. Called after `live` went false.
    void barriers_failed();
    // Sends PING for barrier `seq` on the channel; set once by the listener before it goes live.
    std::function<void(std::uint64_t)> send_barrier;

private:
    std::mutex barrier_mu_;
    std::uint64_t barrier_seq_ = 0;       // GUARDED_BY(barrier_mu_): the last barrier sent
    bool barrier_in_flight_ = false;      // GUARDED_BY(barrier_mu_)
    std::vector<std::function<void(bool)>> riding_;  // GUARDED_BY(barrier_mu_): arrived before it was sent
    std::vector<std::function<void(bool)>> next_;    // GUARDED_BY(barrier_mu_): arrived after: the next one
};

}  // namespace respcache::coherence
