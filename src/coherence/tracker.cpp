#include "respcache/coherence/tracker.hpp"

#include "respcache/backend/connection.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::coherence {

bool tracker::tracking_wanted() const noexcept {
    return invalidation_ == invalidation_mode::tracking && !state_.unsupported.load(std::memory_order_relaxed);
}

bool tracker::cache_refused() const noexcept {
    return consistency_ == consistency_mode::strict && state_.unsupported.load(std::memory_order_relaxed);
}

bool tracker::catch_up() {
    if (!state_.live.load(std::memory_order_seq_cst)) return false;
    if (state_.stale_since_ms.load(std::memory_order_seq_cst) != 0) return false;
    backend::connection* channel = state_.channel.load(std::memory_order_seq_cst);
    if (channel == nullptr) return false;
    // Checked after the socket: bytes taken before our look are either applied or being applied.
    if (!channel->input_waiting() && !state_.draining.load(std::memory_order_seq_cst))
        return state_.live.load(std::memory_order_seq_cst);
    std::lock_guard guard(state_.read_mutex);
    channel = state_.channel.load(std::memory_order_seq_cst);
    if (channel == nullptr || !state_.live.load(std::memory_order_seq_cst)) return false;
    if (!channel->drain_now()) return false;
    return state_.live.load(std::memory_order_seq_cst);
}

fill_ticket tracker::prepare_fill(link_tracking& lt, const backend::link& link, std::string& request,
                                  std::uint32_t& replies) {
    fill_ticket t;
    if (!tracking_wanted()) return t;
    t.epoch = state_.epoch.load(std::memory_order_acquire);
    t.socket = link.socket_id();
    if (lt.epoch != t.epoch || lt.socket != t.socket) {
        const std::string rid = std::to_string(state_.redirect_id.load(std::memory_order_acquire));
        resp::write_command(request, {"CLIENT", "TRACKING", "on", "REDIRECT", rid, "OPTIN"});
        ++replies;
        lt = {t.epoch, t.socket};
        t.turned_on = true;
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
    return t.epoch != 0 && lt.epoch == t.epoch && lt.socket == t.socket && link.socket_id() == t.socket &&
           state_.live.load(std::memory_order_acquire) && t.epoch == state_.epoch.load(std::memory_order_acquire);
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
        state_ = t.catch_up() ? state::caught_up : state::behind;
    }
    return state_ == state::caught_up ? verdict::serve : verdict::miss;
}

}  // namespace respcache::coherence
