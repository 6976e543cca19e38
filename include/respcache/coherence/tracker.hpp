#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "respcache/backend/link.hpp"
#include "respcache/cache/lru_cache.hpp"
#include "respcache/coherence/tracking_state.hpp"

// Coherence: how respcache's cache stays true to Redis. Everything that decides whether an entry may be
// inserted or served lives in coherence/. The invariants, each holding at every moment:
//
//  1. Read your writes. A write forwarded through the proxy invalidates its keys when it is sent and
//     again when its reply arrives, before that reply reaches the client; a cached read pipelined behind
//     an unanswered write of the same key bypasses the cache (proxy::forwarder keeps those writes).
//  2. The fill race. A fill carries the cache::fill_token taken before its request was sent; any
//     invalidation or flush of the key since makes the cache refuse it (cache::lru_cache, invariant 4).
//  3. Tracked fills only. With tracking in use, an entry is inserted only if its read was tracked under
//     the current channel epoch and the channel is live (tracker::may_fill). With --tracking-mode optin
//     the read was sent on a shared link that has CLIENT TRACKING on (OPTIN, then CLIENT CACHING yes
//     before the read) for that epoch and the same socket; with bcast the channel's own connection has
//     CLIENT TRACKING on ... BCAST, so Redis announces every write of every key to it and a read needs no
//     prelude. The epoch moves whenever the channel is established or lost, so a read tracked under an
//     earlier channel, whose invalidations may have gone nowhere, is never inserted.
//  4. No silent window. When the channel is lost (its connection closes, or a PING goes unanswered past
//     the timeout) `live` goes false first, then the epoch moves, then the cache is flushed: nothing is
//     served or inserted until the channel is subscribed again. When a shared link with tracking on
//     closes, Redis forgets what it tracked for it, so the cache is flushed (and the clients that track
//     keys themselves are sent a flush) before the socket goes. The one, opt-in, exception is
//     --stale-if-error: the entries are kept but marked stale, never served as hits while the mark is
//     set, except to a client whose way to Redis is down, within the window; they are flushed before
//     the mark goes (keep_stale, end_stale).
//  5. Caught up before a hit. Before a batch of requests is served from the cache, the io thread applies
//     every invalidation that has reached the channel's socket (tracker::catch_up); with --consistency
//     strict it first passes a read barrier (tracking_state::await_barrier).
//  6. The channel always comes back: the invalidation listener retries, with backoff, whatever Redis
//     refuses while it is busy or loading, and reconnects whenever its socket is lost.
namespace respcache::coherence {

enum class invalidation_mode { tracking, ttl };
enum class consistency_mode { bounded, strict };
// How Redis tracks for the channel (--tracking-mode). optin: the keys each fill read, on the data link
// that read them (Redis remembers each one); bcast: every key, announced at every write (Redis remembers
// nothing, every write sends a message).
enum class tracking_mode { optin, bcast };

// What coherence knows of one shared data link: whether CLIENT TRACKING is on for it. One per shared
// link of an io thread, touched on that thread only.
struct link_tracking {
    std::uint64_t epoch = 0;   // the channel epoch tracking was turned on for; 0: it is not on
    std::uint64_t socket = 0;  // the link's socket_id() then
};

// What a cache-filling read was sent under, checked when its reply comes (tracker::may_fill).
struct fill_ticket {
    std::uint64_t epoch = 0;   // the channel epoch the read was tracked under (0: no tracking in use)
    std::uint64_t socket = 0;  // the link's socket_id() when it was sent
    bool turned_on = false;    // the request began with CLIENT TRACKING on
};

// The rules above, for every io thread. Thread-safe; owned by the process, outlives every thread.
class tracker {
public:
    tracker(cache::lru_cache& cache, invalidation_mode invalidation, consistency_mode consistency,
            tracking_mode mode = tracking_mode::optin)
        : cache_(cache), invalidation_(invalidation), consistency_(consistency), mode_(mode) {}

    cache::lru_cache& cache() noexcept { return cache_; }
    tracking_state& state() noexcept { return state_; }
    const tracking_state& state() const noexcept { return state_; }
    invalidation_mode invalidation() const noexcept { return invalidation_; }
    consistency_mode consistency() const noexcept { return consistency_; }
    tracking_mode mode() const noexcept { return mode_; }
    // Whether the channel's connection itself turns tracking on, in broadcasting mode.
    bool broadcasting() const noexcept { return mode_ == tracking_mode::bcast; }

    // ---- A Redis Cluster: one channel per master ----
    // Each master's channel has a state of its own; this tracker's state() is then their aggregate: live
    // while every active channel is (and there is one), its epoch moving whenever any of them changes,
    // so that a fill tracked under a channel since lost or re-established is never inserted. catch_up()
    // reads every channel. Nodes are added and removed on the listeners' thread only.
    static constexpr std::size_t kMaxNodes = 256;
    // A new state for the channel of master `node`; nullptr once kMaxNodes have been made (a channel
    // closed and made again takes a new one).
    tracking_state* add_node(std::string_view node);
    void remove_node(tracking_state& s);
    // A channel's `live` changed (or a node was added or removed): recomputes the aggregate. Called by
    // the listener after its own state's `live` went false, before the cache is flushed, and after it went
    // true.
    void channel_changed();
    // A read barrier (--consistency strict): on the one channel, or on every master's, passed when all
    // are (done(true)) or failed when any fails (done(false)). See tracking_state::await_barrier.
    void await_barrier(std::function<void(bool)> done);
    // The CLIENT ID of master `node`'s channel, 0 when it has none live.
    std::int64_t redirect_for(std::string_view node) const noexcept;
    bool clustered() const noexcept { return node_count_.load(std::memory_order_acquire) > 0; }

    // The backend has (or lacks, Redis < 6) client tracking; learned at connect time.
    void set_supported(bool supported) noexcept { state_.unsupported.store(!supported, std::memory_order_release); }
    // Whether cache-filling reads must be tracked (tracking mode, against a backend that can).
    bool tracking_wanted() const noexcept;
    // Whether hits wait for a read barrier first (--consistency strict, with tracking in use).
    bool strict_reads() const noexcept { return consistency_ == consistency_mode::strict && tracking_wanted(); }
    // --consistency strict against a backend without tracking: the promise cannot be kept, so nothing is
    // served from the cache.
    bool cache_refused() const noexcept;
    bool live() const noexcept { return state_.live.load(std::memory_order_acquire); }

    // Applies every invalidation that has reached this host, reading the channel's socket if the
    // listener has not yet (one poll when nothing is pending). True when the channel is live and caught
    // up: then a hit may be served. Any thread. `mark` is catch_up_mark() taken when the batch's bytes
    // were read: a check that began after that and found the cache caught up covers the batch too (an
    // invalidation that reached the socket before those bytes was applied by it), so then no socket is
    // looked at again (only whether the channels are still live).
    bool catch_up(std::uint64_t mark);
    std::uint64_t catch_up_mark() const noexcept { return checks_.load(std::memory_order_seq_cst); }
    // Whether a check that began after `mark` was taken has found the cache caught up.
    bool covered(std::uint64_t mark) const noexcept { return covered_.load(std::memory_order_seq_cst) > mark; }

    // Appends to `request` what makes a read on `link` tracked (CLIENT TRACKING on ... OPTIN once per
    // epoch and socket, then CLIENT CACHING yes) and counts those commands' replies into `replies`.
    // Nothing when tracking is not in use, or in bcast mode (where every read is). `known_tracked`: the
    // cache knows Redis tracks the key's name for it already (cache::fill_token::tracked); then, on a link
    // already tracking, with one channel and no --stale-if-error window open, CLIENT CACHING yes is left
    // out: Redis keeps a tracked name until it announces its change, and the read's reply is inserted
    // only if no such announcement was applied since the cache knew (invariant 6).
    fill_ticket prepare_fill(link_tracking& lt, const backend::link& link, std::string& request, std::uint32_t& replies,
                             bool known_tracked = false);
    // A reply to those commands was an error: tracking is not on (it is tried again on the next fill).
    void prelude_refused(link_tracking& lt, const fill_ticket& t) noexcept;
    // Whether the reply of a read sent under `t` may be inserted (invariant 3).
    bool may_fill(const fill_ticket& t, const link_tracking& lt, const backend::link& link) const noexcept;
    // A shared link's socket is about to close: if it had tracking on, flush (invariant 4).
    void link_closing(link_tracking& lt, const backend::link& link);

    // --stale-if-error. At a loss that would flush the cache: true if the entries are kept instead,
    // marked stale (never served as hits again, see catch_up, until a flush). stale_servable: whether a
    // client whose link to the backend is not up may be served them now. end_stale: the backend is
    // reachable again: the stale entries go (before the channel goes live, before a link serves again).
    bool keep_stale();
    bool stale_servable() const noexcept;
    void end_stale();

    // Told of every invalidation the channel brings (its keys; none with `flush`: everything), and of
    // each loss and return of the channel (as a flush): what clients that track keys themselves must
    // hear of. Called on whichever thread reads the channel; must not block. Set before the channel starts.
    using observer = std::function<void(std::span<const std::string_view> keys, bool flush)>;
    void observe(observer f) { observer_ = std::move(f); }
    // The channel's listener: keys invalidated (after the cache dropped them), or a flush.
    void invalidated(std::span<const std::string_view> keys) const {
        if (observer_) observer_(keys, false);
    }
    void flushed() const {
        if (observer_) observer_({}, true);
    }

private:
    cache::lru_cache& cache_;
    const invalidation_mode invalidation_;
    const consistency_mode consistency_;
    const tracking_mode mode_;
    tracking_state state_;
    observer observer_;
    // Published by node_count_ (release): an entry below it is never moved or freed.
    std::array<std::unique_ptr<tracking_state>, kMaxNodes> nodes_;
    std::atomic<std::size_t> node_count_{0};
    // Catch-up checks begun (each takes the next number), and the highest number of one that found every
    // channel caught up (see catch_up).
    std::atomic<std::uint64_t> checks_{0};
    std::atomic<std::uint64_t> covered_{0};
};

// Whether the requests of one client's current batch may be served from the cache (invariant 5). Per
// client, on its thread; new_batch(tracker::catch_up_mark()) whenever more of its bytes are read.
class read_gate {
public:
    enum class verdict {
        serve,         // look in the cache
        miss,          // behind the channel (or it is down): read Redis
        wait_barrier,  // strict: pass a read barrier first, then ask again
    };

    void new_batch(std::uint64_t mark) noexcept {
        state_ = state::unchecked;
        mark_ = mark;
    }
    verdict check(tracker& t);
    // Whether the batch still needs a look at the channel's socket of its own: no check covers it yet.
    bool needs_check(const tracker& t) const noexcept { return state_ == state::unchecked && !t.covered(mark_); }
    // A read barrier was answered (ok) or failed.
    void barrier_done(bool ok) noexcept { state_ = ok ? state::caught_up : state::behind; }

private:
    enum class state : std::uint8_t { unchecked, caught_up, behind };
    state state_ = state::unchecked;
    std::uint64_t mark_ = 0;
};

}  // namespace respcache::coherence
