#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "respcache/backend/address.hpp"
#include "respcache/backend/link.hpp"
#include "respcache/backend/reply_matcher.hpp"
#include "respcache/net/stream.hpp"
#include "respcache/resp/limits.hpp"
#include "respcache/resp/protocol.hpp"
#include "respcache/util/io_buffer.hpp"

namespace respcache::backend {

namespace asio = boost::asio;

struct connection_options {
    backend::address address;
    milliseconds connect_timeout{1000};
    milliseconds request_timeout{3000};
    resp::limits limits;
    std::string client_name = "respcache";
    // RESP3: the log-in begins with HELLO 3, and replies come as Redis sends them to RESP3 clients.
    resp::protocol protocol = resp::protocol::resp2;
    bool reconnect = true;  // false: a connection that fails stays down (dedicated connections)
    // Read by waiting for readability and then reading what is there, holding `read_mutex` (if set) from
    // the read until every complete reply in it has been delivered, with `draining` (if set) true
    // meanwhile. Other threads may then read and deliver too, with drain_now(), under the same mutex:
    // the invalidation channel, which every io thread catches up with before serving hits.
    bool reads_via_wait = false;
    std::mutex* read_mutex = nullptr;
    std::atomic<bool>* draining = nullptr;
    // The transport, made once per connection; plain TCP when empty.
    std::function<std::unique_ptr<net::stream>(asio::any_io_executor)> make_stream;
};

// One connection to Redis, pipelined: requests are written as they come, batched into as few writes
// as possible, and replies are matched to requests in FIFO order (reply_matcher). It connects (with a
// timeout), logs in (AUTH, HELLO 3 for RESP3, SELECT, CLIENT SETNAME, CLIENT ID) and, when it loses the
// backend, fails what
// is pending and reconnects with jittered exponential backoff. A request that gets no reply within its
// timeout fails alone (its reply is dropped when it comes); only a backend that sends nothing for twice
// the timeout while requests wait is treated as gone.
//
// Owned through std::shared_ptr by a pool or a single user; lives on one executor; not thread-safe but
// for input_waiting() and drain_now().
class connection final : public pooled_link, public net::write_receiver, public std::enable_shared_from_this<connection> {
public:
    connection(asio::any_io_executor ex, connection_options options);
    ~connection() override;

    // Starts connecting. Must be called once, after the shared_ptr exists.
    void start() override;

    // link
    void send(std::string_view bytes, std::uint32_t replies, request* r, milliseconds timeout) override;
    void send(std::string_view bytes, std::uint32_t replies, request* r) override;
    void select(std::uint32_t db) override;
    std::uint32_t selected_db() const noexcept override { return db_; }
    void assume_selected(std::uint32_t db) noexcept override { db_ = db; }
    void set_stream_sink(stream_sink* sink) noexcept override { matcher_.set_sink(sink); }
    link_state state() const noexcept override { return state_; }
    resp::protocol protocol() const noexcept override { return options_.protocol; }
    std::size_t in_flight() const noexcept override { return matcher_.waiting(); }
    std::int64_t backend_id() const noexcept override { return backend_id_; }
    std::uint64_t socket_id() const noexcept override { return generation_; }
    void close() override;

    const std::string& last_error() const noexcept { return last_error_; }
    std::uint64_t reconnects() const noexcept { return reconnects_; }

    // Ends the current socket as if the backend had failed (`reason` is reported); it reconnects unless
    // reconnect is off. For health checks that find a connection silent.
    void reset(std::string reason);
    void set_request_timeout(milliseconds timeout) noexcept override;

    // Called (on the executor) each time the log-in completes, and each time the connection is lost or
    // an attempt fails (with the reason).
    void on_ready(std::function<void()> f) override { on_ready_ = std::move(f); }
    void on_down(std::function<void(std::string_view)> f) override { on_down_ = std::move(f); }
    // Called (on the executor) just before a connected socket is closed, whatever the reason.
    void on_closing(std::function<void()> f) override { on_closing_ = std::move(f); }

    // Whether bytes wait in the socket now. Safe from any thread (a stale answer is harmless: the caller
    // then takes options.read_mutex and reads with drain_now).
    bool input_waiting() const noexcept { return stream_->input_waiting(); }
    // Reads and delivers whatever the socket holds now, from any thread. The caller holds
    // options.read_mutex and knows the socket is still this connection's current one (the owner
    // unpublishes it under that mutex before closing, see on_closing). Only for stream mode, where
    // delivering touches nothing but the sink. False if the socket failed (its owner will see it too).
    bool drain_now();

private:
    class handshake;
    class select_check;

    // db_ after a refused SELECT: the next select() sends SELECT whatever it asks for.
    static constexpr std::uint32_t kUnknownDb = UINT32_MAX;

    asio::awaitable<void> run();
    asio::awaitable<std::string> connect_once();
    asio::awaitable<std::string> read_loop();
    asio::awaitable<std::string> read_by_readiness();
    // Reads until the socket is empty, delivering every complete reply; "" or why the socket failed.
    std::string read_available();
    void queue_handshake();
    void schedule_flush();
    void flush();
    void written(net::error_code ec, std::uint64_t generation) override;
    void arm_watchdog();
    void fail_all(std::string_view reason);
    void drop_socket(std::string reason);
    void notify_closing();
    void end_socket();

    asio::any_io_executor ex_;
    connection_options options_;
    std::unique_ptr<net::stream> stream_;
    asio::steady_timer watchdog_;
    asio::steady_timer backoff_timer_;
    link_state state_ = link_state::connecting;
    bool closed_ = false;
    bool connected_ = false;        // the socket is connected (the log-in may still be under way)
    bool closing_notified_ = false; // on_closing_ ran for the current socket
    bool holding_read_mutex_ = false;  // this thread holds options_.read_mutex (read_loop)
    bool stop_delivery_ = false;    // the socket is being dropped or closed: deliver nothing more
    std::string drop_reason_;       // why drop_socket() ended the current socket
    std::uint64_t generation_ = 0;  // bumped per socket; stale write completions are ignored
    std::string out_;               // bytes not yet handed to the socket
    std::string writing_;           // bytes being written
    bool write_in_progress_ = false;
    bool flush_posted_ = false;
    io_buffer in_;
    reply_matcher matcher_;
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

}  // namespace respcache::backend
