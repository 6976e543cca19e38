#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "respcache/backend/connection.hpp"
#include "respcache/cache/lru_cache.hpp"
#include "respcache/command/effects.hpp"
#include "respcache/command/table.hpp"
#include "respcache/io_buffer.hpp"
#include "respcache/resp/parser.hpp"
#include "respcache/server/services.hpp"

namespace respcache::server {

class worker;
namespace asio = boost::asio;

// One client connection, from accept to close, on its worker's thread.
//
// The session reads bytes, parses every complete command in them and dispatches each through the command
// table: local commands answer at once, GET hits are copied from the cache, everything else goes to the
// backend. Replies leave in request order: each command owns a slot in an ordered queue, slots of
// commands still waiting for the backend hold back the ones behind them, and once the batch is answered
// everything is written in one write. A command that must run alone on a dedicated backend connection
// (blocking commands, MULTI/WATCH, subscriptions, MONITOR) first waits for what is in flight.
//
// Subscribers and MONITOR switch the session to a tunnel: client commands go straight to the dedicated
// connection and every backend reply or push is relayed as it comes; the tunnel ends when the last
// subscription is gone (checked with a PING marker, so no reply is lost or reordered), on RESET or QUIT.
//
// Owned by the coroutine that runs it (and by std::shared_ptr in callbacks); lives on one thread.
class session final : public std::enable_shared_from_this<session>, private backend::stream_sink {
public:
    session(worker& owner, asio::ip::tcp::socket socket);
    ~session() override;

    // Serves the client until it leaves, is killed, sends QUIT or breaks the protocol, or the server
    // stops. Returns once every backend request it made has completed.
    asio::awaitable<void> run();

    // Ends the session from its own thread: pending reads stop, what is in flight completes, the
    // connection closes. Idempotent.
    void close();
    // Stops reading new commands when idle (shutdown); in-flight commands still complete.
    void stop_when_idle();

    std::uint64_t id() const noexcept { return info_->id; }

    // ---- the interface for command handlers (src/command/*.cpp) ----

    // The buffer the current command's reply is appended to. Exactly one reply per command.
    std::string& reply();
    void reply_error(std::string_view text);  // `text` without '-', e.g. "ERR syntax error"
    void reply_ok();

    // Sends the current command to the backend on the connection the session's state calls for, and
    // relays its reply; invalidates what it writes (DESIGN.md section 3.1).
    void forward(command::args_view args);
    // GET: served from the cache on a hit, fetched (and filled) on a miss.
    void get(command::args_view args);
    // The raw bytes of the current command as the client sent them (re-encoded for inline commands).
    std::string_view raw_command() const noexcept { return raw_; }

    // Forwards `args` instead of what the client sent (CLIENT UNBLOCK names a backend connection).
    void forward_rewritten(command::args_view args);

    // Connection state commands.
    void quit();
    void quit_silently();  // closes once the current reply is written, adding nothing
    void reset();
    void begin_transaction(command::args_view args);   // MULTI
    void end_transaction(command::args_view args);     // EXEC / DISCARD
    void watch(command::args_view args);               // WATCH
    void unwatch(command::args_view args);             // UNWATCH
    void subscribe(command::args_view args, bool monitor);  // (P|S)SUBSCRIBE, MONITOR
    // AUTH / HELLO AUTH checked by the backend on a connection of its own (no --requirepass).
    void authenticate(command::args_view auth_args, std::string hello_reply_name, bool hello);
    // AUTH against --requirepass: true (and the client is in) if `user` is "default" and the password
    // matches.
    bool authenticate_locally(std::string_view user, std::string_view password);
    bool authenticated() const noexcept { return authenticated_; }
    // INFO: the backend's sections, with the proxy's own appended when `with_proxy`.
    void forward_info(command::args_view args, bool with_proxy);
    void set_reply_mode(std::string_view mode);        // CLIENT REPLY ON|OFF|SKIP

    bool in_transaction() const noexcept { return in_multi_; }
    std::uint32_t db() const noexcept { return db_; }
    void set_db(std::uint32_t db);
    // SELECT judged by the backend (when its database count is unknown).
    void select_via_backend(std::uint32_t db);
    client_info& info() noexcept { return *info_; }
    services& shared() noexcept;
    worker& owner() noexcept { return owner_; }
    const command::catalog* catalog() noexcept;

private:
    struct slot;
    // Why process_input stopped.
    enum class outcome { need_more, barrier, read_barrier, flush, close, tunnel };
    // What dispatch did with one command.
    enum class step {
        proceed,      // dispatched; the next command may follow at once
        wait_before,  // not dispatched: it needs every reply in flight first
        wait_after,   // dispatched; the next one waits for its reply
        wait_read_barrier,  // not dispatched: a hit needs a read barrier first (--consistency strict)
    };
    enum class drain_action { none, leave, quit, reset };

    asio::awaitable<bool> serve_requests();
    asio::awaitable<void> wait_for_replies();
    void start_write();
    bool over_output_limit();
    void abort_client();
    std::size_t output_limit() const noexcept;
    asio::awaitable<void> wait_for_write();
    asio::awaitable<void> flush_all();
    asio::awaitable<void> pass_read_barrier();
    void note_bytes_read();
    asio::awaitable<bool> read_more();
    bool read_available();
    asio::awaitable<void> run_tunnel();
    asio::awaitable<void> tunnel_reader();
    asio::awaitable<void> tunnel_writer();

    outcome process_input();
    step dispatch(command::args_view args);
    void tunnel_process();
    void start_drain(drain_action a);

    slot* push_slot();
    void recycle(std::unique_ptr<slot> s);
    void complete(slot& s);
    void drain_queue();
    void send_forward(slot* s);
    void send_forward(slot* s, std::string_view bytes, std::uint32_t replies, std::chrono::milliseconds timeout);
    void forward_blocking(command::args_view args, const command::command_info* info);
    void queue_in_transaction(command::args_view args);
    void finish_transaction_step(slot& s);
    void finish_authentication(slot& s);
    std::size_t query_buffer_limit() const noexcept;
    std::int64_t shared_live_request_timeout() const noexcept;
    backend::connection& target_connection();
    bool blocking_needed(command::args_view args, const command::command_info* info) const;
    std::optional<std::chrono::milliseconds> blocking_timeout(command::args_view args) const;
    bool cache_bypassed(const cache::key& k) const;
    void apply_effect(const command::cache_effect& e);
    // Holds a dedicated backend connection from now on (no-op if one is held).
    void pin();
    void release_pinned(bool clean);
    void maybe_release_pinned();
    void on_stream_reply(std::string_view bytes) override;
    void on_stream_error(std::string_view reason) override;
    void wake() noexcept;

    worker& owner_;
    asio::ip::tcp::socket socket_;
    asio::steady_timer wake_;
    std::shared_ptr<client_info> info_;
    io_buffer in_;
    std::string out_;
    std::string write_buf_;      // the bytes of the write under way; untouched until it completes
    bool write_in_progress_ = false;
    resp::request_parser parser_;
    std::string_view raw_;       // the current command's bytes (in in_, or in inline_raw_)
    std::string inline_raw_;     // storage for re-encoded inline commands
    std::string scratch_;        // replies nobody will see (CLIENT REPLY OFF / SKIP)
    std::string request_scratch_;  // a GET miss's request
    std::string auth_scratch_;     // an AUTH's request
    command::cache_effect effect_scratch_;  // the effect of the command being forwarded
    cache::millis now_ = 0;      // read once per batch
    std::chrono::steady_clock::time_point batch_start_;  // when the current batch was read
    bool caught_up_checked_ = false;  // tracking_state::catch_up() was asked since the last read
    bool caught_up_ = false;          // and its answer
    bool barrier_passed_ = false;     // a read barrier was passed since the last read (--consistency strict)
    bool barrier_wanted_ = false;     // the GET being dispatched asked for one
    bool barrier_answered_ = false;   // the barrier being waited for has answered
    bool barrier_ok_ = false;         // and passed (false: the channel was down)

    // Ordered replies.
    std::deque<std::unique_ptr<slot>> queue_;          // replies in request order, owned here
    std::vector<std::unique_ptr<slot>> free_slots_;    // for reuse (a bounded number)
    std::size_t pending_ = 0;     // slots waiting for the backend
    std::string* current_reply_ = nullptr;
    std::vector<slot*> inflight_writes_;  // forwarded writes not yet answered (read-your-writes)

    // Client state.
    std::uint32_t db_ = 0;
    bool in_multi_ = false;
    bool multi_aborted_ = false;  // a command was refused while queueing: EXEC will abort
    bool watching_ = false;
    std::uint32_t multi_db_ = 0;  // the database queued commands will run in
    std::vector<std::optional<std::uint32_t>> multi_selects_;  // per queued command: the db a SELECT picks
    command::owned_effect multi_effect_;     // what the queued commands will write
    bool reply_off_ = false;
    bool reply_skip_next_ = false;
    bool skip_this_ = false;
    std::shared_ptr<backend::connection> pinned_;  // dedicated connection, while the state needs one
    bool pinned_broken_ = false;
    bool blocking_in_flight_ = false;

    // Tunnel (subscribers and MONITOR).
    bool tunnel_ = false;
    bool monitor_ = false;
    drain_action draining_ = drain_action::none;
    std::string marker_;
    command::owned_effect tunnel_effect_;  // writes forwarded in the tunnel since the last marker
    std::int64_t channels_ = 0;
    std::int64_t shard_channels_ = 0;

    bool authenticated_ = true;
    bool closing_ = false;        // write what is queued, then close
    bool client_gone_ = false;    // the client closed its side
    bool stop_requested_ = false; // the server is stopping
    bool reading_ = false;        // suspended in a read of a new batch
    std::uint64_t marker_seq_ = 0;
};

}  // namespace respcache::server
