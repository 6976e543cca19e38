#include "respcache/server/invalidation_listener.hpp"

#include <charconv>

#include <boost/asio/post.hpp>

#include "respcache/log.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::server {

namespace {
constexpr std::string_view kChannel = "__redis__:invalidate";
constexpr std::string_view kBarrierPrefix = "respcache-barrier:";  // PING argument of a read barrier
}

invalidation_listener::invalidation_listener(backend::asio::any_io_executor ex, backend::connection_options options,
                                             services& shared, std::chrono::milliseconds ping_interval,
                                             std::chrono::milliseconds ping_timeout)
    : services_(shared), ping_timer_(ex), ping_interval_(ping_interval), ping_timeout_(ping_timeout) {
    options.client_name = "respcache-invalidation";
    auto& t = services_.tracking();
    options.reads_via_wait = true;
    options.read_mutex = &t.read_mutex;
    options.draining = &t.draining;
    conn_ = std::make_shared<backend::connection>(ex, std::move(options));
    t.drain = [conn = conn_.get()](int fd) { return conn->drain_now(fd); };
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
    conn_->on_ready([this] { subscribe(); });
    // Before the socket goes away (so before its descriptor number can be reused), unpublish it and stop
    // every hit; the mutex waits for any io thread still reading it.
    conn_->on_closing([this] {
        {
            std::lock_guard guard(services_.tracking().read_mutex);
            services_.tracking().fd.store(-1, std::memory_order_seq_cst);  // no more hits from here on
        }
        lost("connection closing");
    });
    conn_->on_down([this](std::string_view why) { lost(why); });
}

invalidation_listener::~invalidation_listener() { close(); }

void invalidation_listener::start() {
    conn_->start();
    arm_ping();
}

void invalidation_listener::close() {
    if (closed_) return;
    closed_ = true;
    ping_timer_.cancel();
    conn_->close();
    lost("shutting down");
}

void invalidation_listener::subscribe() {
    conn_->set_stream_sink(this);
    std::string bytes;
    resp::write_command(bytes, {"SUBSCRIBE", kChannel});
    conn_->send(bytes, 1, nullptr);
    last_pong_ = std::chrono::steady_clock::now().time_since_epoch().count();
}

void invalidation_listener::on_stream_reply(std::string_view bytes) {
    auto items = resp::array_elements(bytes);
    if (!items || items->empty()) return;
    auto kind = resp::string_value((*items)[0]);
    if (!kind) return;
    auto& t = services_.tracking();
    if (*kind == "message" && items->size() == 3) {
        t.invalidations.fetch_add(1, std::memory_order_relaxed);
        auto keys = resp::array_elements((*items)[2]);
        if (!keys) {
            // A nil invalidation: the server flushed (FLUSHALL / FLUSHDB) or dropped its tracking table.
            services_.cache().flush_all();
            return;
        }
        for (auto k : *keys)
            if (auto name = resp::string_value(k)) services_.cache().invalidate(*name);
    } else if (*kind == "pong") {
        last_pong_ = std::chrono::steady_clock::now().time_since_epoch().count();
        if (items->size() == 2)
            if (auto arg = resp::string_value((*items)[1]); arg && arg->starts_with(kBarrierPrefix)) {
                std::uint64_t seq = 0;
                const auto digits = arg->substr(kBarrierPrefix.size());
                if (std::from_chars(digits.data(), digits.data() + digits.size(), seq).ec == std::errc())
                    t.barrier_answered(seq);
            }
    } else if (*kind == "subscribe") {
        // Only the listener's own thread reads the channel until it is live.
        last_pong_ = std::chrono::steady_clock::now().time_since_epoch().count();
        t.redirect_id.store(conn_->backend_id(), std::memory_order_release);
        t.fd.store(conn_->native_handle(), std::memory_order_seq_cst);
        t.epoch.fetch_add(1, std::memory_order_acq_rel);
        t.live.store(true, std::memory_order_seq_cst);
        log::info("invalidation channel live", {{"redirect_id", conn_->backend_id()}});
    }
}

void invalidation_listener::on_stream_error(std::string_view reason) { lost(reason); }

void invalidation_listener::lost(std::string_view why) {
    auto& t = services_.tracking();
    // Order matters: stop fills first, then empty the cache, so nothing from before the loss survives.
    const bool was_live = t.live.exchange(false, std::memory_order_seq_cst);
    t.fd.store(-1, std::memory_order_seq_cst);
    t.epoch.fetch_add(1, std::memory_order_acq_rel);
    t.barriers_failed();
    if (was_live) {
        t.losses.fetch_add(1, std::memory_order_relaxed);
        services_.cache().flush_all();
        if (!closed_)
            log::warn("invalidation channel lost: cache flushed, filling paused until it is back",
                      {{"reason", std::string(why)}});
    }
}

void invalidation_listener::arm_ping() {
    ping_timer_.expires_after(ping_interval_);
    ping_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || closed_) return;
        if (services_.tracking().live.load(std::memory_order_acquire)) {
            const auto silent = std::chrono::steady_clock::now() -
                                std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(last_pong_.load()));
            if (silent > ping_timeout_ + ping_interval_) {
                lost("no PONG within " + std::to_string(ping_timeout_.count()) + "ms");
                conn_->reset("invalidation channel silent");
            } else {
                std::string bytes;
                resp::write_command(bytes, {"PING"});
                conn_->send(bytes, 1, nullptr);
            }
        }
        arm_ping();
    });
}

}  // namespace respcache::server
