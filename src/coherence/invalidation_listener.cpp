#include "respcache/coherence/invalidation_listener.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

#include <boost/asio/post.hpp>

#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/log.hpp"

namespace respcache::coherence {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {
constexpr std::string_view kChannel = "__redis__:invalidate";
constexpr std::string_view kBarrierPrefix = "respcache-barrier:";  // PING argument of a read barrier

steady_clock::rep now_ticks() { return steady_clock::now().time_since_epoch().count(); }
}  // namespace

invalidation_listener::invalidation_listener(boost::asio::any_io_executor ex, backend::connection_options options,
                                             tracker& coherence, tracking_state& own, timing times)
    : tracker_(coherence),
      state_(own),
      ping_timer_(ex),
      retry_timer_(ex),
      timing_(times),
      retry_delay_(times.first_retry) {
    options.client_name = "respcache-invalidation";
    auto& t = state_;
    options.reads_via_wait = true;
    options.read_mutex = &t.read_mutex;
    options.draining = &t.draining;
    conn_ = std::make_shared<backend::connection>(ex, std::move(options));
    // A barrier's PING goes out on the listener's thread. Only the weak reference is kept: a PING lost to
    // a reconnect or shutdown leaves its waiters to barriers_failed().
    t.send_barrier = [ex, weak = std::weak_ptr<backend::connection>(conn_)](std::uint64_t seq) {
        boost::asio::post(ex, [weak, seq] {
            auto conn = weak.lock();
            if (!conn) return;
            std::string bytes;
            resp::write_command(bytes, {"PING", std::string(kBarrierPrefix) + std::to_string(seq)});
            conn->send(bytes, 1, nullptr);
        });
    };
    conn_->on_ready([this] { logged_in(); });
    conn_->on_closing([this] { lost("connection closing"); });
    conn_->on_down([this](std::string_view why) { lost(why); });
}

invalidation_listener::~invalidation_listener() { close(); }

void invalidation_listener::start() {
    conn_->start();
    arm_ping();
}

void invalidation_listener::close() {
    if (phase_ == phase::closed) return;
    phase_ = phase::closed;
    ping_timer_.cancel();
    retry_timer_.cancel();
    conn_->close();
    lost("shutting down");
}

void invalidation_listener::logged_in() {
    if (phase_ == phase::closed) return;
    if (conn_->backend_id() == 0) {
        refused("CLIENT ID", "no id");  // the log-in's CLIENT ID was refused (busy, loading...)
        return;
    }
    phase_ = phase::subscribing;
    conn_->set_stream_sink(this);
    awaiting_tracking_ = tracker_.broadcasting();
    if (!awaiting_tracking_) return subscribe();
    // Before SUBSCRIBE (a RESP2 subscriber may not send it), on its own (a refusal leaves no reply
    // behind), and redirected to this connection itself: Redis announces every write of every key here,
    // so no data link need track anything.
    std::string bytes;
    resp::write_command(bytes, {"CLIENT", "TRACKING", "on", "REDIRECT", std::to_string(conn_->backend_id()), "BCAST"});
    conn_->send(bytes, 1, nullptr);
    last_heard_ = now_ticks();
}

void invalidation_listener::subscribe() {
    std::string bytes;
    resp::write_command(bytes, {"SUBSCRIBE", kChannel});
    conn_->send(bytes, 1, nullptr);
    last_heard_ = now_ticks();
}

void invalidation_listener::go_live() {
    auto& t = state_;
    last_heard_ = now_ticks();
    t.redirect_id.store(conn_->backend_id(), std::memory_order_release);
    // Published before `live`, so that whoever sees the channel live can catch up with it. No lock: this
    // runs while the listener reads the channel (under read_mutex), and only it reads the channel until
    // it is live.
    t.channel.store(conn_.get(), std::memory_order_seq_cst);
    tracker_.end_stale();
    t.epoch.fetch_add(1, std::memory_order_acq_rel);
    t.live.store(true, std::memory_order_seq_cst);
    tracker_.channel_changed();
    phase_ = phase::live;
    retry_delay_ = timing_.first_retry;
    tracker_.flushed();  // what clients cached while it was down was not tracked
    if (t.node.empty()) {
        log::info("invalidation channel live", {{"redirect_id", conn_->backend_id()}});
        return;
    }
    log::info("invalidation channel live", {{"redirect_id", conn_->backend_id()}, {"node", t.node}});
    if (tracker_.live()) log::info("invalidation channels live: one per master, the cache serves and fills");
}

void invalidation_listener::refused(std::string_view what, std::string_view reply) {
    // Redis is busy (a script), loading, or otherwise not taking the channel now: start afresh after a
    // pause, on a new socket, so that nothing of the refused attempt lingers.
    phase_ = phase::backing_off;
    conn_->set_stream_sink(nullptr);
    std::string text(reply);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    log::limited("invalidation-refused", spdlog::level::warn, "invalidation channel refused by the backend; retrying",
                 {{"command", what}, {"reply", text}, {"retry_ms", static_cast<std::int64_t>(retry_delay_.count())}});
    retry_timer_.expires_after(retry_delay_);
    retry_delay_ = std::min(retry_delay_ * 2, timing_.max_retry);
    retry_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || phase_ != phase::backing_off) return;
        conn_->reset("invalidation channel refused");
    });
}

void invalidation_listener::lost(std::string_view why) {
    auto& t = state_;
    {
        // Before the socket goes (so before its descriptor can be reused): no io thread reads it again.
        std::lock_guard guard(t.read_mutex);
        t.channel.store(nullptr, std::memory_order_seq_cst);
    }
    // Order matters: stop hits and fills first, then empty the cache, so nothing from before the loss survives.
    const bool was_live = t.live.exchange(false, std::memory_order_seq_cst);
    tracker_.channel_changed();
    t.epoch.fetch_add(1, std::memory_order_acq_rel);
    t.barriers_failed();
    if (phase_ != phase::closed && phase_ != phase::backing_off) phase_ = phase::connecting;
    if (!was_live) return;
    tracker_.state().losses.fetch_add(1, std::memory_order_relaxed);
    const bool kept = phase_ != phase::closed && tracker_.keep_stale();
    if (!kept) tracker_.cache().flush_all();
    tracker_.flushed();
    if (phase_ == phase::closed) return;
    const char* what = kept ? "invalidation channel lost: cache kept for --stale-if-error, filling paused until it is back"
                            : "invalidation channel lost: cache flushed, filling paused until it is back";
    if (t.node.empty())
        log::warn(what, {{"reason", std::string(why)}});
    else
        log::warn(what, {{"reason", std::string(why)}, {"node", t.node}});
}

void invalidation_listener::on_stream_reply(std::string_view bytes) {
    if (phase_ == phase::subscribing && std::exchange(awaiting_tracking_, false)) {
        if (!resp::is_ok(bytes)) return refused("CLIENT TRACKING", resp::is_error(bytes) ? bytes.substr(1) : bytes);
        return subscribe();
    }
    if (resp::is_error(bytes)) {
        // While live an error answers a PING (Redis busy): no PONG, which the ping timer judges.
        if (phase_ == phase::subscribing) refused("SUBSCRIBE", bytes.substr(1));
        return;
    }
    auto items = resp::array_elements(bytes);
    if (!items || items->empty()) return;
    auto kind = resp::string_value((*items)[0]);
    if (!kind) return;
    if (*kind == "message" && items->size() == 3) {
        apply_message((*items)[2]);
    } else if (*kind == "pong") {
        pong(items->size() == 2 ? (*items)[1] : std::string_view());
    } else if (*kind == "subscribe" && phase_ == phase::subscribing) {
        go_live();  // only the listener's own thread reads the channel until it is live
    }
}

void invalidation_listener::apply_message(std::string_view payload) {
    tracker_.state().invalidations.fetch_add(1, std::memory_order_relaxed);
    auto keys = resp::array_elements(payload);
    if (!keys) {
        // A nil invalidation: the server flushed (FLUSHALL / FLUSHDB) or dropped its tracking table.
        tracker_.cache().flush_all();
        flush_heard_ = true;
        return;
    }
    std::vector<std::string_view> names;
    names.reserve(keys->size());
    for (auto k : *keys)
        if (auto name = resp::string_value(k)) {
            tracker_.cache().invalidate(*name);
            names.push_back(*name);
        }
    tracker_.invalidated(names);
}

void invalidation_listener::pong(std::string_view argument) {
    last_heard_ = now_ticks();
    auto arg = resp::string_value(argument);
    if (!arg || !arg->starts_with(kBarrierPrefix)) return;
    std::uint64_t seq = 0;
    const auto digits = arg->substr(kBarrierPrefix.size());
    if (std::from_chars(digits.data(), digits.data() + digits.size(), seq).ec == std::errc())
        state_.barrier_answered(seq);
}

void invalidation_listener::on_stream_error(std::string_view reason) { lost(reason); }

void invalidation_listener::on_stream_batch_end() {
    if (!flush_heard_) return;
    flush_heard_ = false;
    tracker_.flushed();
}

void invalidation_listener::arm_ping() {
    ping_timer_.expires_after(timing_.ping_interval);
    ping_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || phase_ == phase::closed) return;
        ping_tick();
        arm_ping();
    });
}

void invalidation_listener::ping_tick() {
    if (phase_ != phase::live && phase_ != phase::subscribing) return;
    const auto silent = steady_clock::now() - steady_clock::time_point(steady_clock::duration(last_heard_.load()));
    if (silent > timing_.ping_timeout + timing_.ping_interval) {
        const bool was_live = phase_ == phase::live;
        lost("no PONG within " + std::to_string(timing_.ping_timeout.count()) + "ms");
        conn_->reset(was_live ? "invalidation channel silent" : "no reply to SUBSCRIBE");
        return;
    }
    if (phase_ != phase::live) return;
    std::string bytes;
    resp::write_command(bytes, {"PING"});
    conn_->send(bytes, 1, nullptr);
}

}  // namespace respcache::coherence
