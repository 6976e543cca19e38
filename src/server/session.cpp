#include "respcache/server/session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "respcache/server/worker.hpp"
#include "respcache/util/log.hpp"

namespace respcache::server {

using namespace std::chrono;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
using next = proxy::client_core::next;

namespace {
constexpr std::size_t kReadSize = 16 * 1024;
constexpr std::size_t kKeptWriteBytes = 1024 * 1024;  // a write buffer grown past this is released after use

std::shared_ptr<command::client_info> new_client(services& shared, const net::stream& s) {
    auto info = std::make_shared<command::client_info>();
    info->id = shared.next_client_id();
    info->addr = s.peer_address();
    info->laddr = s.local_address();
    return info;
}
}  // namespace

session::session(worker& owner, std::unique_ptr<net::stream> stream)
    : owner_(owner),
      stream_(std::move(stream)),
      info_(new_client(owner.shared(), *stream_)),
      core_(owner.environment(), info_, [this] { wake(); }),
      wake_(stream_->get_executor()),
      idle_(stream_->get_executor()) {}

session::~session() = default;

void session::wake() noexcept {
    woken_ = true;
    wake_.cancel();
}

void session::close() {
    core_.client_gone();
    stream_->cancel();
    wake();
}

void session::stop_when_idle() {
    core_.stop();
    if (reading_) stream_->cancel();
}

void session::enter_registry() {
    std::weak_ptr<session> weak = shared_from_this();
    auto& io = owner_.io();
    {
        std::lock_guard guard(info_->mu);
        info_->kill = [weak, &io] {
            asio::post(io, [weak] {
                if (auto s = weak.lock()) s->close();
            });
        };
        info_->inbox = [weak, &io](command::tracking_message m) {
            asio::post(io, [weak, m = std::move(m)] {
                if (auto s = weak.lock()) {
                    s->core_.deliver_tracking(m);
                    s->start_write();  // it may arrive while the session waits for the client's bytes
                }
            });
        };
    }
    owner_.attach(this);
    owner_.stats().connections.add();
    owner_.shared().clients().add(info_);
}

void session::leave_registry() {
    owner_.shared().clients().remove(info_->id);
    {
        std::lock_guard guard(info_->mu);
        info_->kill = nullptr;
        info_->inbox = nullptr;
    }
    owner_.detach(this);
    owner_.shared().connected_clients().fetch_sub(1, std::memory_order_relaxed);
}

asio::awaitable<void> session::run() {
    auto self = shared_from_this();
    enter_registry();
    try {
        co_await serve();
        co_await finish();
    } catch (const std::exception& e) {
        log::error("session failed", {{"client", info_->id}, {"error", e.what()}});
    }
    leave_registry();
}

asio::awaitable<void> session::serve() {
    for (;;) {
        const next n = core_.advance();
        start_write();
        switch (n) {
            case next::read:
                co_await read_input();
                // Yields once (when the thread has other clients): those whose bytes are ready read them
                // now, and the first cached read after that catches up for all (tracker::catch_up's mark).
                if (owner_.session_count() > 1 && core_.catch_up_pending())
                    co_await asio::post(stream_->get_executor(), asio::use_awaitable);
                break;
            case next::read_now:
                read_available();
                break;
            case next::wait:
                co_await wait(false);
                break;
            case next::watch:
                co_await wait(true);
                break;
            case next::proceed:
                break;
            case next::close:
                co_return;
        }
    }
}

// Writes what is queued (unless the client is cut off), lets go of every backend link, and waits for
// every request in flight: the core may not go while a link still holds one of them.
asio::awaitable<void> session::finish() {
    if (core_.replies().discarding()) {
        stream_->shutdown();  // a write blocked on a client that does not read ends now
    } else {
        start_write();
        while (write_in_progress_ && !core_.replies().discarding()) co_await wait(false);
    }
    core_.release_links();
    while (core_.outstanding() > 0) co_await wait(false);
    stream_->shutdown();
    stream_->close();
}

void session::take_input(std::size_t n) {
    core_.input().commit(n);
    core_.bytes_arrived();
}

// Reads the client's next bytes into the core: the idle timeout applies; the end of the stream, an
// error or the timeout finish the client once what is queued is written.
asio::awaitable<void> session::read_input() {
    using namespace asio::experimental::awaitable_operators;
    io_buffer& in = core_.input();
    in.shrink();
    const std::int64_t idle_ms = owner_.shared().settings().idle_timeout_ms.load(std::memory_order_relaxed);
    std::size_t avail = 0;
    reading_ = true;
    if (idle_ms <= 0) {
        char* space = in.prepare(kReadSize, avail);
        const auto [ec, n] = co_await stream_->read_some(asio::buffer(space, avail));
        reading_ = false;
        if (ec == asio::error::operation_aborted) co_return;  // close() or stop: advance() decides
        if (ec) co_return core_.finish();
        co_return take_input(n);
    }
    for (;;) {
        idle_.expires_after(milliseconds(idle_ms));
        auto r = co_await (stream_->wait_readable() || idle_.async_wait(use_tuple));
        if (r.index() == 1) {
            reading_ = false;
            owner_.stats().idle_disconnects.add();
            co_return core_.finish();
        }
        const net::error_code ec = std::get<0>(r);
        if (ec) {
            reading_ = false;
            if (ec != asio::error::operation_aborted) core_.finish();
            co_return;
        }
        net::error_code rec;
        char* space = in.prepare(kReadSize, avail);
        const std::size_t n = stream_->read_now(asio::buffer(space, avail), rec);
        if (rec == asio::error::would_block) continue;
        reading_ = false;
        if (rec) co_return core_.finish();
        co_return take_input(n);
    }
}

// Draining: what the socket holds now is served; when it holds nothing more, the client is done.
void session::read_available() {
    std::size_t avail = 0;
    char* space = core_.input().prepare(kReadSize, avail);
    net::error_code ec;
    const std::size_t n = stream_->read_now(asio::buffer(space, avail), ec);
    if (ec || n == 0) return core_.finish();
    take_input(n);
}

// Waits for wake(); with `watch_input`, also takes the client's bytes as they arrive (a blocked client
// that leaves must release its link at once, and a subscriber's commands go on).
asio::awaitable<void> session::wait(bool watch_input) {
    using namespace asio::experimental::awaitable_operators;
    if (woken_) {
        woken_ = false;
        co_return;
    }
    wake_.expires_at(steady_clock::time_point::max());
    if (!watch_input) {
        co_await wake_.async_wait(use_tuple);
        woken_ = false;
        co_return;
    }
    auto r = co_await (wake_.async_wait(use_tuple) || stream_->wait_readable());
    woken_ = false;
    if (r.index() == 0) co_return;
    const net::error_code ec = std::get<1>(r);
    std::size_t avail = 0;
    char* space = core_.input().prepare(kReadSize, avail);
    net::error_code rec = ec;
    const std::size_t n = ec ? 0 : stream_->read_now(asio::buffer(space, avail), rec);
    if (rec == asio::error::would_block) co_return;
    if (rec) co_return core_.client_gone();
    take_input(n);
}

void session::start_write() {
    proxy::reply_queue& q = core_.replies();
    if (write_in_progress_ || q.output().empty() || q.discarding()) return;
    write_in_progress_ = true;
    q.take_output(write_buf_);
    // One write at a time, running alongside reading and processing; it continues with whatever
    // accumulated meanwhile.
    stream_->write_all(asio::buffer(write_buf_), shared_from_this(), 0);
}

void session::written(net::error_code ec, std::uint64_t) {
    write_in_progress_ = false;
    core_.replies().written();
    if (ec) {
        core_.client_gone();
    } else {
        if (write_buf_.capacity() > kKeptWriteBytes) std::string().swap(write_buf_);
        start_write();
    }
    wake();
}

}  // namespace respcache::server
