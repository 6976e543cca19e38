#include "respcache/backend/connection.hpp"

#include <algorithm>
#include <tuple>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "respcache/net/tcp_stream.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::backend {

using steady = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
constexpr milliseconds kFirstBackoff{50};
constexpr milliseconds kMaxBackoff{2000};
constexpr std::size_t kReadSize = 16 * 1024;
constexpr std::size_t kKeptWriteBytes = 1024 * 1024;
// Nothing at all arriving for this many request timeouts, with requests waiting, is a backend that has
// stopped answering: the socket is dropped and what is pending fails.
constexpr int kSilentFactor = 2;

milliseconds watchdog_tick(milliseconds timeout) {
    return std::clamp(timeout / 4, milliseconds(5), milliseconds(250));
}

std::unique_ptr<net::stream> make_stream(const connection_options& o, asio::any_io_executor ex) {
    return o.make_stream ? o.make_stream(ex) : net::make_tcp_stream(ex);
}
}  // namespace

// The replies to the log-in commands queued ahead of everything on each new socket.
class connection::handshake final : public request {
public:
    enum class step { auth, hello, select, setname, client_id };

    explicit handshake(connection& owner) : owner_(owner) {}
    void begin(std::vector<step> steps) { steps_ = std::move(steps); }

    void on_reply(std::size_t index, std::string_view bytes) override {
        const step s = steps_.at(index);
        const bool failed = !bytes.empty() && bytes[0] == '-';
        if (failed && s != step::setname && s != step::client_id) {
            // AUTH, HELLO or SELECT refused: nothing sent on this connection can be trusted to run as intended.
            std::string_view text = bytes.substr(1);
            while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
            const char* what = s == step::auth ? "AUTH failed: " : s == step::hello ? "HELLO 3 failed: " : "SELECT failed: ";
            owner_.drop_socket(what + std::string(text));
            return;
        }
        if (s == step::client_id && bytes.size() > 3 && bytes[0] == ':') {
            std::int64_t id = 0;
            if (util::parse_int64(bytes.substr(1, bytes.size() - 3), id)) owner_.backend_id_ = id;
        }
        if (index + 1 == steps_.size()) {
            owner_.state_ = link_state::ready;
            if (owner_.on_ready_) owner_.on_ready_();
        }
    }
    void on_error(std::string_view) override {}

private:
    connection& owner_;
    std::vector<step> steps_;
};

// The reply to a SELECT queued by select(). If Redis refuses it (-BUSY while a script runs, -LOADING),
// the requests sent after it ran in the previous database or not at all: each is given Redis's refusal
// instead of its reply, as Redis would have refused it too, and the next request selects again.
class connection::select_check final : public request {
public:
    explicit select_check(connection& owner) : owner_(owner) {}
    void on_reply(std::size_t, std::string_view bytes) override {
        if (bytes.empty() || bytes[0] != '-') return;
        if (!owner_.matcher_.replace_replies(this, bytes)) owner_.db_ = kUnknownDb;
    }
    void on_error(std::string_view) override {}

private:
    connection& owner_;
};

connection::connection(asio::any_io_executor ex, connection_options options)
    : ex_(ex),
      options_(std::move(options)),
      stream_(make_stream(options_, ex)),
      watchdog_(ex),
      backoff_timer_(ex),
      in_(kReadSize),
      matcher_(options_.limits),
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
    stop_delivery_ = true;
    state_ = link_state::closed;
    end_socket();
    backoff_timer_.cancel();
    fail_all(unavailable("connection closed"));
}

void connection::send(std::string_view bytes, std::uint32_t replies, request* r) {
    send(bytes, replies, r, options_.request_timeout);
}

void connection::send(std::string_view bytes, std::uint32_t replies, request* r, milliseconds timeout) {
    if (closed_ || state_ == link_state::down) {
        if (r != nullptr) r->on_error(unavailable(closed_ ? std::string("connection closed") : last_error_));
        return;
    }
    matcher_.expect(r, replies, timeout, steady::now());
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
    // Posted, so that the requests of every client served in this turn of the event loop leave in one write.
    asio::post(ex_, [self = shared_from_this()] {
        self->flush_posted_ = false;
        self->flush();
    });
}

void connection::flush() {
    if (write_in_progress_ || out_.empty() || !connected_) return;
    write_in_progress_ = true;
    writing_.swap(out_);
    stream_->write_all(asio::buffer(writing_), shared_from_this(), generation_);
}

void connection::written(net::error_code ec, std::uint64_t generation) {
    // A write for a socket that is gone no longer touches its bytes: they were reused for the next one.
    if (generation != generation_) return;
    write_in_progress_ = false;
    writing_.clear();
    if (writing_.capacity() > kKeptWriteBytes) writing_.shrink_to_fit();  // after a huge request
    if (ec) {
        drop_socket("write failed: " + ec.message());
        return;
    }
    flush();
}

void connection::end_socket() {
    if (connected_) notify_closing();
    connected_ = false;
    ++generation_;  // completions still on their way for this socket are ignored
    stream_->close();
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
    stop_delivery_ = true;
    // Called while delivering under the read mutex (a refused log-in on the invalidation channel): the
    // owner of that mutex must not be called back now; the read loop ends the socket once it unlocks.
    if (holding_read_mutex_) return;
    notify_closing();
    stream_->cancel();
    stream_->close();
}

void connection::arm_watchdog() {
    watchdog_.expires_after(watchdog_tick(options_.request_timeout));
    watchdog_.async_wait([self = shared_from_this(), gen = generation_](net::error_code ec) {
        if (ec || gen != self->generation_ || !self->connected_) return;
        const auto now = steady::now();
        // A backend silent for kSilentFactor timeouts has stopped answering; a log-in that is overdue
        // leaves a socket nothing can use. Otherwise only the overdue requests fail: the others on the
        // pipeline wait for their replies behind a slow command, as they would have in Redis.
        const int factor = self->state_ == link_state::ready ? kSilentFactor : 1;
        if (const auto silent = self->matcher_.silent(now, factor)) {
            self->drop_socket("nothing received for " + std::to_string(silent->count() * factor) + "ms");
            return;
        }
        self->matcher_.expire(now);
        if (gen == self->generation_ && self->connected_) self->arm_watchdog();
    });
}

void connection::fail_all(std::string_view reason) {
    out_.clear();
    matcher_.fail_all(reason);
}

void connection::queue_handshake() {
    std::string bytes;
    std::vector<handshake::step> steps;
    const auto& a = options_.address;
    // A named user always logs in, even with an empty password (a nopass user): never as the default one.
    if (!a.password.empty() || !a.user.empty()) {
        if (a.user.empty())
            resp::write_command(bytes, {"AUTH", a.password});
        else
            resp::write_command(bytes, {"AUTH", a.user, a.password});
        steps.push_back(handshake::step::auth);
    }
    if (options_.protocol == resp::protocol::resp3) {
        resp::write_command(bytes, {"HELLO", "3"});
        steps.push_back(handshake::step::hello);
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
    matcher_.expect_first(handshake_.get(), n, options_.request_timeout, steady::now());
}

asio::awaitable<std::string> connection::connect_once() {
    const auto& a = options_.address;
    std::string error = co_await stream_->connect(a.host, a.port, options_.connect_timeout);
    if (closed_) {
        stream_->close();
        co_return "connection closed";
    }
    if (!error.empty()) co_return error;
    // generation_ was moved when the last socket ended (end_socket): requests queued meanwhile saw the
    // value this socket has, and they go out on it.
    connected_ = true;
    closing_notified_ = false;
    stop_delivery_ = false;
    drop_reason_.clear();
    writing_.clear();  // a write still under way was for the closed socket: it writes no more
    write_in_progress_ = false;
    in_.consume(in_.size());
    matcher_.restart();
    backend_id_ = 0;
    queue_handshake();
    co_return std::string();
}

std::string connection::read_available() {
    for (;;) {
        std::size_t avail = 0;
        char* space = in_.prepare(kReadSize, avail);
        net::error_code ec;
        const std::size_t n = stream_->read_now(asio::buffer(space, avail), ec);
        if (ec == asio::error::would_block) return std::string();
        if (ec == asio::error::eof) return "connection closed by the backend";
        if (ec) return ec.message();
        in_.commit(n);
        if (std::string error = matcher_.feed(in_, stop_delivery_); !error.empty()) return error;
        if (holding_read_mutex_ && !drop_reason_.empty()) return drop_reason_;
        if (n < avail) return std::string();
    }
}

bool connection::drain_now() {
    holding_read_mutex_ = true;  // the caller holds it: nothing here may touch the socket's state
    if (options_.draining != nullptr) options_.draining->store(true, std::memory_order_seq_cst);
    const bool ok = read_available().empty();
    if (options_.draining != nullptr) options_.draining->store(false, std::memory_order_seq_cst);
    holding_read_mutex_ = false;
    return ok;
}

asio::awaitable<std::string> connection::read_by_readiness() {
    for (;;) {
        const net::error_code ec = co_await stream_->wait_readable();
        if (!drop_reason_.empty()) co_return drop_reason_;
        if (closed_) co_return std::string("connection closed");
        if (ec) co_return ec.message();
        std::string error;
        {
            std::unique_lock<std::mutex> lock;
            if (options_.read_mutex != nullptr) lock = std::unique_lock(*options_.read_mutex);
            holding_read_mutex_ = true;
            if (options_.draining != nullptr) options_.draining->store(true, std::memory_order_seq_cst);
            error = read_available();
            if (options_.draining != nullptr) options_.draining->store(false, std::memory_order_seq_cst);
            in_.shrink();
            holding_read_mutex_ = false;
        }
        matcher_.progressed(steady::now());
        if (!error.empty()) co_return error;
        if (closed_) co_return std::string("connection closed");
        if (!drop_reason_.empty()) co_return drop_reason_;
    }
}

asio::awaitable<std::string> connection::read_loop() {
    if (options_.reads_via_wait) co_return co_await read_by_readiness();
    for (;;) {
        std::size_t avail = 0;
        char* space = in_.prepare(kReadSize, avail);
        const auto [ec, n] = co_await stream_->read_some(asio::buffer(space, avail));
        if (!drop_reason_.empty()) co_return drop_reason_;
        if (ec) co_return ec == asio::error::eof ? std::string("connection closed by the backend") : ec.message();
        in_.commit(n);
        matcher_.progressed(steady::now());
        std::string error = matcher_.feed(in_, stop_delivery_);
        if (!error.empty()) co_return error;
        if (closed_) co_return std::string("connection closed");
        if (!drop_reason_.empty()) co_return drop_reason_;
        in_.shrink();
    }
}

asio::awaitable<void> connection::run() {
    auto self = shared_from_this();
    milliseconds delay{0};
    for (;;) {
        if (closed_) co_return;
        state_ = link_state::connecting;
        std::string error = co_await connect_once();
        if (closed_) co_return;
        bool was_ready = false;
        if (error.empty()) {
            arm_watchdog();
            flush();
            error = co_await read_loop();
            if (closed_) co_return;
            was_ready = state_ == link_state::ready;
        }
        last_error_ = error;
        end_socket();
        state_ = link_state::down;
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
