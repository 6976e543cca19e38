#include "respcache/backend/connection.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "respcache/resp/parser.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::backend {

using steady = std::chrono::steady_clock;
using asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string unavailable(std::string_view detail) { return "backend unavailable: " + std::string(detail); }

namespace {
constexpr milliseconds kFirstBackoff{50};
constexpr milliseconds kMaxBackoff{2000};
constexpr std::size_t kReadSize = 16 * 1024;
constexpr std::size_t kKeptWriteBytes = 1024 * 1024;

milliseconds watchdog_tick(milliseconds timeout) {
    return std::clamp(timeout / 4, milliseconds(5), milliseconds(250));
}
}  // namespace

// The replies to the log-in commands queued ahead of everything on each new socket.
class connection::handshake final : public request {
public:
    enum class step { auth, select, setname, client_id };

    explicit handshake(connection& owner) : owner_(owner) {}
    void begin(std::vector<step> steps) { steps_ = std::move(steps); }

    void on_reply(std::size_t index, std::string_view bytes) override {
        const step s = steps_.at(index);
        const bool failed = !bytes.empty() && bytes[0] == '-';
        if (failed && (s == step::auth || s == step::select)) {
            // AUTH or SELECT refused: nothing sent on this connection can be trusted to run as intended.
            std::string_view text = bytes.substr(1);
            while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
            owner_.drop_socket(std::string(s == step::auth ? "AUTH failed: " : "SELECT failed: ") + std::string(text));
            return;
        }
        if (s == step::client_id && bytes.size() > 3 && bytes[0] == ':') {
            std::int64_t id = 0;
            if (resp::detail::parse_int64(bytes.substr(1, bytes.size() - 3), id)) owner_.backend_id_ = id;
        }
        if (index + 1 == steps_.size()) {
            owner_.state_ = connection_state::ready;
            if (owner_.on_ready_) owner_.on_ready_();
        }
    }
    void on_error(std::string_view) override {}

private:
    connection& owner_;
    std::vector<step> steps_;
};

// The reply to a SELECT queued by select(): if Redis refuses it, what follows would run in an unknown
// database, so the socket is ended (its pending requests fail) and the next one starts afresh.
class connection::select_check final : public request {
public:
    explicit select_check(connection& owner) : owner_(owner) {}
    void on_reply(std::size_t, std::string_view bytes) override {
        if (!bytes.empty() && bytes[0] == '-') owner_.drop_socket("SELECT refused by the backend");
    }
    void on_error(std::string_view) override {}

private:
    connection& owner_;
};

connection::connection(asio::any_io_executor ex, connection_options options)
    : ex_(ex),
      options_(std::move(options)),
      socket_(ex),
      watchdog_(ex),
      backoff_timer_(ex),
      writing_(std::make_shared<std::string>()),
      in_(kReadSize),
      framer_(options_.limits),
      db_(options_.address.db),
      handshake_(std::make_unique<handshake>(*this)),
      select_check_(std::make_unique<select_check>(*this)),
      jitter_(std::random_device{}()) {}

connection::~connection() = default;

void connection::start() {
    asio::co_spawn(ex_, [self = shared_from_this()] { return self->run(); }, asio::detached);
}

void connection::close() {
    if (closed_) return;
    closed_ = true;
    state_ = connection_state::closed;
    end_socket();
    backoff_timer_.cancel();
    fail_all(unavailable("connection closed"));
}

void connection::send(std::string_view bytes, std::uint32_t replies, request* r) {
    send(bytes, replies, r, options_.request_timeout);
}

void connection::send(std::string_view bytes, std::uint32_t replies, request* r, milliseconds timeout) {
    if (closed_ || state_ == connection_state::down) {
        if (r != nullptr) r->on_error(unavailable(closed_ ? std::string("connection closed") : last_error_));
        return;
    }
    if (sink_ == nullptr) {
        // In stream mode replies are not matched to requests, so nothing is queued to wait for them.
        const auto now = steady::now();
        if (pending_.empty()) last_progress_ = now;
        pending_.push_back({r, replies, 0, now, timeout});
    }
    out_.append(bytes);
    schedule_flush();
}

void connection::reset(std::string reason) { drop_socket(std::move(reason)); }

void connection::set_request_timeout(milliseconds timeout) noexcept { options_.request_timeout = timeout; }

void connection::select(std::uint32_t db) {
    if (db == db_) return;
    std::string cmd;
    const std::string n = std::to_string(db);
    resp::write_command(cmd, {"SELECT", n});
    db_ = db;
    send(cmd, 1, select_check_.get());
}

void connection::schedule_flush() {
    if (flush_posted_ || write_in_progress_ || !connected_) return;
    flush_posted_ = true;
    // Posted, so that the requests of every session served in this turn of the event loop leave in one write.
    asio::post(ex_, [self = shared_from_this()] {
        self->flush_posted_ = false;
        self->flush();
    });
}

void connection::flush() {
    if (write_in_progress_ || out_.empty() || !connected_) return;
    write_in_progress_ = true;
    writing_->swap(out_);
    asio::async_write(socket_, asio::buffer(*writing_),
                      [self = shared_from_this(), buf = writing_, gen = generation_](boost::system::error_code ec, std::size_t) {
                          if (gen != self->generation_) return;  // the socket this was for is gone
                          self->write_in_progress_ = false;
                          buf->clear();
                          if (buf->capacity() > kKeptWriteBytes) buf->shrink_to_fit();  // after a huge request
                          if (ec) {
                              self->drop_socket("write failed: " + ec.message());
                              return;
                          }
                          self->flush();
                      });
}

void connection::end_socket() {
    if (connected_) notify_closing();
    connected_ = false;
    ++generation_;  // completions still on their way for this socket are ignored
    boost::system::error_code ignored;
    socket_.close(ignored);
    watchdog_.cancel();
}

void connection::notify_closing() {
    if (closing_notified_) return;
    closing_notified_ = true;
    if (on_closing_) on_closing_();
}

void connection::drop_socket(std::string reason) {
    if (!connected_) return;
    if (drop_reason_.empty()) drop_reason_ = std::move(reason);
    // Called while delivering under the read mutex (a refused log-in on the invalidation channel): the
    // owner of that mutex must not be called back now; the read loop ends the socket once it unlocks.
    if (holding_read_mutex_) return;
    notify_closing();
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    socket_.close(ignored);
}

void connection::arm_watchdog() {
    watchdog_.expires_after(watchdog_tick(options_.request_timeout));
    watchdog_.async_wait([self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
        if (ec || gen != self->generation_ || !self->connected_) return;
        if (!self->pending_.empty()) {
            const pending& front = self->pending_.front();
            if (front.timeout != milliseconds::max()) {
                const auto since = std::max(front.sent, self->last_progress_);
                if (steady::now() - since > front.timeout) {
                    self->drop_socket("no reply within " + std::to_string(front.timeout.count()) + "ms");
                    return;
                }
            }
        }
        self->arm_watchdog();
    });
}

void connection::deliver(std::string_view bytes) {
    // Requests sent before stream mode began (the log-in, a SELECT) keep their replies; everything
    // after goes to the sink.
    if (pending_.empty() && sink_ != nullptr) {
        sink_->on_stream_reply(bytes);
        return;
    }
    if (pending_.empty()) {
        drop_socket("a reply nobody asked for");
        return;
    }
    pending& front = pending_.front();
    request* target = front.target;
    const std::size_t index = front.next_index++;
    if (--front.remaining == 0) pending_.pop_front();
    if (target != nullptr) target->on_reply(index, bytes);
}

void connection::fail_all(std::string_view reason) {
    std::deque<pending> failed;
    failed.swap(pending_);
    out_.clear();
    for (auto& p : failed)
        if (p.target != nullptr) p.target->on_error(reason);
    if (sink_ != nullptr) sink_->on_stream_error(reason);
}

void connection::queue_handshake() {
    std::string bytes;
    std::vector<handshake::step> steps;
    const auto& a = options_.address;
    if (!a.password.empty()) {
        if (a.user.empty())
            resp::write_command(bytes, {"AUTH", a.password});
        else
            resp::write_command(bytes, {"AUTH", a.user, a.password});
        steps.push_back(handshake::step::auth);
    }
    if (a.db != 0) {
        const std::string n = std::to_string(a.db);
        resp::write_command(bytes, {"SELECT", n});
        steps.push_back(handshake::step::select);
    }
    if (!options_.client_name.empty()) {
        resp::write_command(bytes, {"CLIENT", "SETNAME", options_.client_name});
        steps.push_back(handshake::step::setname);
    }
    resp::write_command(bytes, {"CLIENT", "ID"});
    steps.push_back(handshake::step::client_id);
    const auto n = static_cast<std::uint32_t>(steps.size());
    handshake_->begin(std::move(steps));
    out_.insert(0, bytes);
    const auto now = steady::now();
    pending_.push_front({handshake_.get(), n, 0, now, options_.request_timeout});
    last_progress_ = now;
}

asio::awaitable<std::string> connection::connect_once() {
    using namespace asio::experimental::awaitable_operators;
    tcp::resolver resolver(ex_);
    asio::steady_timer timer(ex_);
    timer.expires_after(options_.connect_timeout);
    const std::string timeout_text = "timed out connecting after " + std::to_string(options_.connect_timeout.count()) + "ms";
    auto resolved = co_await (resolver.async_resolve(options_.address.host, std::to_string(options_.address.port), use_tuple) ||
                              timer.async_wait(use_tuple));
    if (resolved.index() == 1) co_return timeout_text;
    auto [rec, endpoints] = std::get<0>(resolved);
    if (rec) co_return "cannot resolve " + options_.address.host + ": " + rec.message();
    tcp::socket sock(ex_);
    auto connected = co_await (asio::async_connect(sock, endpoints, use_tuple) || timer.async_wait(use_tuple));
    if (connected.index() == 1) co_return timeout_text;
    auto [cec, endpoint] = std::get<0>(connected);
    (void)endpoint;
    if (cec) co_return cec.message();
    boost::system::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    sock.set_option(asio::socket_base::keep_alive(true), ignored);
    if (closed_) co_return "connection closed";

    socket_ = std::move(sock);
    ++generation_;
    connected_ = true;
    closing_notified_ = false;
    drop_reason_.clear();
    if (write_in_progress_) writing_ = std::make_shared<std::string>();  // the old write keeps its buffer
    write_in_progress_ = false;
    in_.consume(in_.size());
    framer_.reset();
    backend_id_ = 0;
    tracking_epoch = 0;
    queue_handshake();
    co_return std::string();
}

std::string connection::read_available(int fd) {
    for (;;) {
        std::size_t avail = 0;
        char* space = in_.prepare(kReadSize, avail);
        const ssize_t n = ::recv(fd, space, avail, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return std::string();
            if (errno == EINTR) continue;
            return std::strerror(errno);
        }
        if (n == 0) return "connection closed by the backend";
        in_.commit(static_cast<std::size_t>(n));
        for (;;) {
            const resp::frame_result fr = framer_.next(in_.readable());
            if (fr.status == resp::frame_status::need_more) break;
            if (fr.status == resp::frame_status::error) return "protocol error: " + framer_.error_text();
            deliver(in_.readable().substr(0, fr.length));
            in_.consume(fr.length);
            if (holding_read_mutex_ && !drop_reason_.empty()) return drop_reason_;
        }
        if (static_cast<std::size_t>(n) < avail) return std::string();
    }
}

bool connection::drain_now(int fd) {
    holding_read_mutex_ = true;  // the caller holds it: nothing here may touch the socket object
    if (options_.draining != nullptr) options_.draining->store(true, std::memory_order_seq_cst);
    const bool ok = read_available(fd).empty();
    if (options_.draining != nullptr) options_.draining->store(false, std::memory_order_seq_cst);
    holding_read_mutex_ = false;
    return ok;
}

asio::awaitable<std::string> connection::read_loop() {
    for (;;) {
        if (options_.reads_via_wait) {
            auto [ec] = co_await socket_.async_wait(asio::ip::tcp::socket::wait_read, use_tuple);
            if (!drop_reason_.empty()) co_return drop_reason_;
            if (closed_) co_return std::string("connection closed");
            if (ec) co_return ec.message();
            std::string error;
            {
                std::unique_lock<std::mutex> lock;
                if (options_.read_mutex != nullptr) lock = std::unique_lock(*options_.read_mutex);
                holding_read_mutex_ = true;
                if (options_.draining != nullptr) options_.draining->store(true, std::memory_order_seq_cst);
                error = read_available(static_cast<int>(socket_.native_handle()));
                if (options_.draining != nullptr) options_.draining->store(false, std::memory_order_seq_cst);
                in_.shrink();
                holding_read_mutex_ = false;
            }
            last_progress_ = steady::now();
            if (!error.empty()) co_return error;
            if (closed_) co_return std::string("connection closed");
            if (!drop_reason_.empty()) co_return drop_reason_;
            continue;
        }
        std::size_t avail = 0;
        char* space = in_.prepare(kReadSize, avail);
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(space, avail), use_tuple);
        if (!drop_reason_.empty()) co_return drop_reason_;
        if (ec) co_return ec == asio::error::eof ? std::string("connection closed by the backend") : ec.message();
        in_.commit(n);
        last_progress_ = steady::now();
        for (;;) {
            const resp::frame_result fr = framer_.next(in_.readable());
            if (fr.status == resp::frame_status::need_more) break;
            if (fr.status == resp::frame_status::error) co_return "protocol error: " + framer_.error_text();
            deliver(in_.readable().substr(0, fr.length));
            in_.consume(fr.length);
            if (closed_) co_return std::string("connection closed");
            if (!drop_reason_.empty()) co_return drop_reason_;
        }
        in_.shrink();
    }
}

asio::awaitable<void> connection::run() {
    auto self = shared_from_this();
    milliseconds delay{0};
    for (;;) {
        if (closed_) co_return;
        state_ = connection_state::connecting;
        std::string error = co_await connect_once();
        if (closed_) co_return;
        bool was_ready = false;
        if (error.empty()) {
            arm_watchdog();
            flush();
            error = co_await read_loop();
            if (closed_) co_return;
            was_ready = state_ == connection_state::ready;
        }
        last_error_ = error;
        end_socket();
        state_ = connection_state::down;
        db_ = options_.address.db;
        fail_all(unavailable(error));
        if (on_down_) on_down_(error);
        if (closed_ || !options_.reconnect) co_return;
        // A connection that was working is retried at once; failed attempts back off exponentially, each
        // wait drawn uniformly from [delay/2, delay] so that many proxies do not retry in lock step.
        delay = was_ready ? milliseconds(0) : std::min(delay == milliseconds(0) ? kFirstBackoff : delay * 2, kMaxBackoff);
        if (delay.count() > 0) {
            std::uniform_int_distribution<std::int64_t> pick(delay.count() / 2, delay.count());
            backoff_timer_.expires_after(milliseconds(pick(jitter_)));
            co_await backoff_timer_.async_wait(use_tuple);
        }
        ++reconnects_;
    }
}

}  // namespace respcache::backend
