#include "respcache/coherence/tracker.hpp"

#include "respcache/backend/connection.hpp"
#include "respcache/resp/writer.hpp"

#include <vector>

namespace respcache::coherence {

bool tracker::tracking_wanted() const noexcept {
    return invalidation_ == invalidation_mode::tracking && !state_.unsupported.load(std::memory_order_relaxed);
}

bool tracker::cache_refused() const noexcept {
    return consistency_ == consistency_mode::strict && state_.unsupported.load(std::memory_order_relaxed);
}

namespace {
// Applies what has reached one channel's socket (unless `look` is false: a check that began later
// already did); true if it is live and caught up.
bool catch_up_with(tracking_state& s, bool look) {
    backend::connection* channel = s.channel.load(std::memory_order_seq_cst);
    if (channel == nullptr) return false;
    if (!look) return s.live.load(std::memory_order_seq_cst);
    // Checked after the socket: bytes taken before our look are either applied or being applied.
    if (!channel->input_waiting() && !s.draining.load(std::memory_order_seq_cst))
        return s.live.load(std::memory_order_seq_cst);
    std::lock_guard guard(s.read_mutex);
    channel = s.channel.load(std::memory_order_seq_cst);
    if (channel == nullptr || !s.live.load(std::memory_order_seq_cst)) return false;
    if (!channel->drain_now()) return false;
    return s.live.load(std::memory_order_seq_cst);
}
}  // namespace

bool tracker::catch_up(std::uint64_t mark) {
    if (!state_.live.load(std::memory_order_seq_cst)) return false;
    if (state_.stale_since_ms.load(std::memory_order_seq_cst) != 0) return false;
    const bool look = !covered(mark);
    // Numbered before any socket is looked at: a batch whose mark is below it was read before.
    const std::uint64_t n = look ? checks_.fetch_add(1, std::memory_order_seq_cst) + 1 : 0;
    const std::size_t nodes = node_count_.load(std::memory_order_acquire);
    if (nodes == 0) {
        if (!catch_up_with(state_, look)) return false;
    } else {
        for (std::size_t i = 0; i < nodes; ++i)
            if (nodes_[i]->active.load(std::memory_order_seq_cst) && !catch_up_with(*nodes_[i], look)) return false;
        if (!state_.live.load(std::memory_order_seq_cst)) return false;
    }
    if (look) {
        std::uint64_t seen = covered_.load(std::memory_order_seq_cst);
        while (seen < n && !covered_.compare_exchange_weak(seen, n, std::memory_order_seq_cst)) {
        }
    }
    return true;
}

tracking_state* tracker::add_node(std::string_view node) {
    // Never reused: a closed listener's state stays its own.
    const std::size_t n = node_count_.load(std::memory_order_relaxed);
    if (n == kMaxNodes) return nullptr;
    nodes_[n] = std::make_unique<tracking_state>();
    nodes_[n]->node = std::string(node);
    nodes_[n]->active.store(true, std::memory_order_seq_cst);
    node_count_.store(n + 1, std::memory_order_release);
    channel_changed();
    return nodes_[n].get();
}

void tracker::remove_node(tracking_state& s) {
    s.active.store(false, std::memory_order_seq_cst);
    channel_changed();
}

void tracker::channel_changed() {
    const std::size_t nodes = node_count_.load(std::memory_order_acquire);
    if (nodes == 0) return;
    bool any = false;
    bool all = true;
    for (std::size_t i = 0; i < nodes; ++i) {
        if (!nodes_[i]->active.load(std::memory_order_seq_cst)) continue;
        any = true;
        all = all && nodes_[i]->live.load(std::memory_order_seq_cst);
    }
    // As for one channel: a loss stops hits and fills before the epoch moves; a return moves the epoch
    // before they resume.
    if (!(any && all)) {
        state_.live.store(false, std::memory_order_seq_cst);
        state_.epoch.fetch_add(1, std::memory_order_acq_rel);
        return;
    }
    state_.epoch.fetch_add(1, std::memory_order_acq_rel);
    state_.redirect_id.store(1, std::memory_order_release);  // each link names its node's channel itself
    state_.live.store(true, std::memory_order_seq_cst);
}

void tracker::await_barrier(std::function<void(bool)> done) {
    const std::size_t nodes = node_count_.load(std::memory_order_acquire);
    if (nodes == 0) return state_.await_barrier(std::move(done));
    struct joint {
        std::atomic<std::size_t> left{0};
        std::atomic<bool> ok{true};
        std::function<void(bool)> done;
        std::atomic<std::uint64_t>* passed = nullptr;
    };
    auto j = std::make_shared<joint>();
    j->done = std::move(done);
    j->passed = &state_.barriers;
    std::vector<tracking_state*> active;
    for (std::size_t i = 0; i < nodes; ++i)
        if (nodes_[i]->active.load(std::memory_order_seq_cst)) active.push_back(nodes_[i].get());
    if (active.empty()) return j->done(false);
    j->left.store(active.size());
    for (tracking_state* s : active)
        s->await_barrier([j](bool ok) {
            if (!ok) j->ok.store(false);
            if (j->left.fetch_sub(1) != 1) return;
            const bool all = j->ok.load();
            if (all) j->passed->fetch_add(1, std::memory_order_relaxed);
            j->done(all);
        });
}

std::int64_t tracker::redirect_for(std::string_view node) const noexcept {
    const std::size_t nodes = node_count_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < nodes; ++i)
        if (nodes_[i]->node == node && nodes_[i]->active.load(std::memory_order_acquire) &&
            nodes_[i]->live.load(std::memory_order_acquire))
            return nodes_[i]->redirect_id.load(std::memory_order_acquire);
    return 0;
}

fill_ticket tracker::prepare_fill(link_tracking& lt, const backend::link& link, std::string& request,
                                  std::uint32_t& replies, bool known_tracked) {
    fill_ticket t;
    if (!tracking_wanted()) return t;
    t.epoch = state_.epoch.load(std::memory_order_acquire);
    t.socket = link.socket_id();
    if (broadcasting()) return t;  // the channel announces every key: nothing to ask of this link
    if (lt.epoch != t.epoch || lt.socket != t.socket) {
        const std::string rid = std::to_string(state_.redirect_id.load(std::memory_order_acquire));
        resp::write_command(request, {"CLIENT", "TRACKING", "on", "REDIRECT", rid, "OPTIN"});
        ++replies;
        lt = {t.epoch, t.socket};
        t.turned_on = true;
    } else if (known_tracked && node_count_.load(std::memory_order_acquire) == 0 &&
               state_.stale_since_ms.load(std::memory_order_acquire) == 0) {
        state_.fills_pre_tracked.fetch_add(1, std::memory_order_relaxed);
        return t;
    }
    resp::write_command(request, {"CLIENT", "CACHING", "yes"});
    ++replies;
    return t;
}

void tracker::prelude_refused(link_tracking& lt, const fill_ticket& t) noexcept {
    if (t.turned_on && lt.epoch == t.epoch && lt.socket == t.socket) lt.epoch = 0;
}

bool tracker::may_fill(const fill_ticket& t, const link_tracking& lt, const backend::link& link) const noexcept {
    if (!tracking_wanted()) return true;
    const bool live_since = t.epoch != 0 && state_.live.load(std::memory_order_acquire) &&
                            t.epoch == state_.epoch.load(std::memory_order_acquire);
    if (broadcasting()) return live_since;
    return live_since && lt.epoch == t.epoch && lt.socket == t.socket && link.socket_id() == t.socket;
}

void tracker::link_closing(link_tracking& lt, const backend::link& link) {
    // Redis tracks keys per connection: entries filled through this one will get no invalidation any
    // more. Which entries those are is not recorded, so all go, before the socket does.
    if (lt.epoch == 0 || lt.socket != link.socket_id()) return;
    lt.epoch = 0;
    if (!keep_stale()) cache_.flush_all();
    state_.losses.fetch_add(1, std::memory_order_relaxed);
    flushed();  // and so must every client that tracks what it read
}

namespace {
std::int64_t steady_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count() + 1;  // never 0
}
}  // namespace

bool tracker::keep_stale() {
    if (state_.stale_window_ms.load(std::memory_order_relaxed) <= 0 || !tracking_wanted()) return false;
    std::int64_t none = 0;
    state_.stale_since_ms.compare_exchange_strong(none, steady_ms(), std::memory_order_seq_cst);
    return true;
}

bool tracker::stale_servable() const noexcept {
    const std::int64_t since = state_.stale_since_ms.load(std::memory_order_acquire);
    return since != 0 && steady_ms() - since <= state_.stale_window_ms.load(std::memory_order_relaxed);
}

void tracker::end_stale() {
    if (state_.stale_since_ms.load(std::memory_order_seq_cst) == 0) return;
    // Flushed before the mark goes: whoever sees no mark finds no stale entry.
    cache_.flush_all();
    state_.stale_since_ms.store(0, std::memory_order_seq_cst);
}

read_gate::verdict read_gate::check(tracker& t) {
    if (!t.tracking_wanted()) return verdict::serve;
    if (state_ == state::unchecked) {
        if (t.strict_reads()) return verdict::wait_barrier;
        state_ = t.catch_up(mark_) ? state::caught_up : state::behind;
    }
    return state_ == state::caught_up ? verdict::serve : verdict::miss;
}

}  // namespace respcache::coherence
