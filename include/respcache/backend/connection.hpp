#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "respcache/config.hpp"
#include "respcache/io_buffer.hpp"
#include "respcache/resp/limits.hpp"
#include "respcache/resp/reply_framer.hpp"

namespace respcache::backend {

namespace asio = boost::asio;

// The receiver of the replies to one request sent on a connection. The sender owns it and must keep it
// alive until it has seen its last reply or on_error: the connection guarantees exactly one of
//   - on_reply for every index 0..replies-1, in order, or
//   - on_reply for a prefix of them, then on_error once.
// Callbacks run on the connection's executor and may call back into the connection.
class request {
public:
    virtual ~request() = default;
    // `bytes` is one complete RESP reply, valid only during the call.
    virtual void on_reply(std::size_t index, std::string_view bytes) = 0;
    // The connection failed before the remaining replies arrived. `reason` is one line, such as
    // "backend unavailable: Connection refused".
    virtual void on_error(std::string_view reason) = 0;
};

// Receives every reply of a connection in stream mode, where replies are not matched to requests
// (subscribers, MONITOR, the invalidation channel).
class stream_sink {
public:
    virtual ~stream_sink() = default;
    virtual void on_stream_reply(std::string_view bytes) = 0;
    virtual void on_stream_error(std::string_view reason) = 0;
};

struct connection_options {
    backend_address address;
    milliseconds connect_timeout{1000};
    milliseconds request_timeout{3000};
    resp::limits limits;
    std::string client_name = "respcache";
    bool reconnect = true;  // false: a connection that fails stays down (dedicated connections)
    // Read by waiting for readability and then reading with recv(), holding `read_mutex` (if set) from
    // the read until every complete reply in it has been delivered, with `draining` (if set) true
    // meanwhile. Other threads may then read and deliver too, with drain_now(), under the same mutex:
    // the invalidation channel, which every io thread catches up with before serving hits.
    bool reads_via_wait = false;
    std::mutex* read_mutex = nullptr;
    std::atomic<bool>* draining = nullptr;
};

enum class connection_state {
    connecting,  // a connect attempt (and its handshake) is under way: requests are queued
    ready,       // handshake done
    down,        // the last attempt failed; requests fail at once until the next attempt
    closed,      // close() was called
};

// One TCP connection to Redis, pipelined: requests are written as they come, batched into as few writes
// as possible, and replies are matched to requests in FIFO order. It connects (with a timeout), logs in
// (AUTH, SELECT, CLIENT SETNAME, CLIENT ID) and, when it loses the backend, fails what is pending and
// reconnects with jittered exponential backoff. A request that gets no reply within its timeout fails the
// connection (a reply cannot be skipped in a pipeline).
//
// Owned through std::shared_ptr by a pool; lives on one executor; not thread-safe.
class connection : public std::enable_shared_from_this<connection> {
public:
    connection(asio::any_io_executor ex, connection_options options);
    ~connection();

    // Starts connecting. Must be called once, after the shared_ptr exists.
    void start();
    // Fails what is pending ("connection closed"), closes the socket and stops reconnecting.
    void close();

    connection_state state() const noexcept { return state_; }
    const std::string& last_error() const noexcept { return last_error_; }
    // The backend's CLIENT ID for this connection, 0 until the handshake is done.
    std::int64_t backend_id() const noexcept { return backend_id_; }
    std::uint64_t reconnects() const noexcept { return reconnects_; }
    std::size_t in_flight() const noexcept { return pending_.size(); }

    // Queues `bytes`, encoded commands that produce `replies` replies, for `r` (nullptr: the replies are
    // discarded). `timeout` bounds the wait for the first of them once they are at the head of the queue;
    // milliseconds::max() waits for ever (blocking commands). When the connection is down, r->on_error is
    // called before send returns.
    void send(std::string_view bytes, std::uint32_t replies, request* r);
    void send(std::string_view bytes, std::uint32_t replies, request* r, milliseconds timeout);

    // Ends the current socket as if the backend had failed (`reason` is reported); it reconnects unless
    // reconnect is off. For health checks that find a connection silent.
    void reset(std::string reason);
    // The timeout of requests sent from now on.
    void set_request_timeout(milliseconds timeout) noexcept;

    // Makes `db` the selected database for what is sent next (queues a SELECT when it differs).
    void select(std::uint32_t db);
    std::uint32_t selected_db() const noexcept { return db_; }
    // Records that commands sent earlier (a SELECT inside MULTI) changed the selected database.
    void assume_selected(std::uint32_t db) noexcept { db_ = db; }

    // Stream mode: once the requests already pending are answered, every reply goes to `sink` (nullptr
    // returns to request mode), and send() queues no reply matching (its `replies` and `r` are ignored).
    // The sink stays across reconnects; the log-in of a new socket is still matched as requests.
    void set_stream_sink(stream_sink* sink) noexcept { sink_ = sink; }

    // Called (on the executor) each time the handshake completes, and each time the connection is lost
    // or an attempt fails (with the reason).
    void on_ready(std::function<void()> f) { on_ready_ = std::move(f); }
    void on_down(std::function<void(std::string_view)> f) { on_down_ = std::move(f); }
    // Called (on the executor) just before a connected socket is closed, whatever the reason.
    void on_closing(std::function<void()> f) { on_closing_ = std::move(f); }
    // The socket's descriptor while connected, -1 otherwise.
    int native_handle() noexcept { return connected_ ? static_cast<int>(socket_.native_handle()) : -1; }

    // Reads (with recv on `fd`, this connection's descriptor) and delivers whatever the socket holds now,
    // from any thread. The caller holds options.read_mutex and knows `fd` is still this connection's
    // (the owner clears what it published under that mutex before closing). Only for stream mode, where
    // delivering touches nothing but the sink. False if the socket failed (its owner will see it too).
    bool drain_now(int fd);

    // The tracking epoch for which this connection enabled client tracking; 0 when it has not (it is
    // reset on every reconnect). Maintained by the callers that send CLIENT TRACKING.
    std::uint64_t tracking_epoch = 0;

private:
    struct pending {
        request* target;
        std::uint32_t remaining;
        std::uint32_t next_index;
        std::chrono::steady_clock::time_point sent;
        milliseconds timeout;
    };
    class handshake;
    class select_check;

    asio::awaitable<void> run();
    asio::awaitable<std::string> connect_once();
    asio::awaitable<std::string> read_loop();
    // recv()s until the socket is empty, delivering every complete reply; "" or why the socket failed.
    std::string read_available(int fd);
    void queue_handshake();
    void deliver(std::string_view bytes);
    void schedule_flush();
    void flush();
    void arm_watchdog();
    void fail_all(std::string_view reason);
    void drop_socket(std::string reason);
    void notify_closing();
    void end_socket();

    asio::any_io_executor ex_;
    connection_options options_;
    asio::ip::tcp::socket socket_;
    asio::steady_timer watchdog_;
    asio::steady_timer backoff_timer_;
    connection_state state_ = connection_state::connecting;
    bool closed_ = false;
    bool connected_ = false;        // the socket is connected (the handshake may still be under way)
    bool closing_notified_ = false; // on_closing_ ran for the current socket
    bool holding_read_mutex_ = false;  // this thread holds options_.read_mutex (read_loop)
    std::string drop_reason_;       // why drop_socket() ended the current socket
    std::uint64_t generation_ = 0;  // bumped per socket; stale write completions are ignored
    std::string out_;               // bytes not yet handed to the socket
    std::shared_ptr<std::string> writing_;  // bytes being written; the write keeps its own reference
    bool write_in_progress_ = false;
    bool flush_posted_ = false;
    io_buffer in_;
    resp::reply_framer framer_;
    std::deque<pending> pending_;
    std::chrono::steady_clock::time_point last_progress_;  // last bytes read, or when pending_ became busy
    stream_sink* sink_ = nullptr;
    std::uint32_t db_ = 0;
    std::int64_t backend_id_ = 0;
    std::string last_error_;
    std::uint64_t reconnects_ = 0;
    std::unique_ptr<handshake> handshake_;
    std::unique_ptr<select_check> select_check_;
    std::function<void()> on_ready_;
    std::function<void(std::string_view)> on_down_;
    std::function<void()> on_closing_;
    std::minstd_rand jitter_;
};

// "backend unavailable: <detail>", the one prefix every backend failure reaches clients with.
std::string unavailable(std::string_view detail);

}  // namespace respcache::backend
