#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "respcache/command/context.hpp"
#include "respcache/proxy/auth.hpp"
#include "respcache/proxy/client_state.hpp"
#include "respcache/proxy/client_tracking.hpp"
#include "respcache/proxy/forwarder.hpp"
#include "respcache/proxy/read_through.hpp"
#include "respcache/proxy/reply_queue.hpp"
#include "respcache/proxy/transaction.hpp"
#include "respcache/proxy/tunnel.hpp"
#include "respcache/resp/parser.hpp"
#include "respcache/util/io_buffer.hpp"

namespace respcache::proxy {

// One client, without its socket: the bytes it sent go in, the bytes it is to receive come out, and
// advance() says what the I/O shell should do next. It parses every complete command (one parse loop
// for every mode) and dispatches each through the command table: to a handler (which sees this object
// as its command::context), through the cache (read_through), into a transaction, into the tunnel, or
// to Redis (forwarder). Replies leave in request order (reply_queue).
//
// Backend replies arrive through the pending requests' callbacks, on this thread, at any time the shell
// is suspended; each one calls `wake`, after which the shell calls advance() again. The shell must not
// destroy the core while outstanding() > 0 (the links hold its pending requests).
class client_core final : public command::context, private completion_sink, private tunnel_owner {
public:
    // What the I/O shell does next.
    enum class next {
        read,      // everything is answered: wait for the client's next bytes (idle timeout applies)
        read_now,  // draining: take what the socket holds now, without waiting; finish() if nothing
        wait,      // replies (or a read barrier) are awaited: wait for wake
        watch,     // wait for wake, and also read the client's bytes as they come (blocked, tunnel)
        proceed,   // a batch is done: write what is ready, then advance() again at once
        close,     // write what is queued (nothing when discarding), close, then wait for outstanding() == 0
    };

    client_core(environment& env, std::shared_ptr<command::client_info> info, std::function<void()> wake);
    ~client_core() override;
    client_core(const client_core&) = delete;
    client_core& operator=(const client_core&) = delete;

    // The client's unprocessed bytes: the shell appends what it reads, then calls bytes_arrived().
    io_buffer& input() noexcept { return in_; }
    void bytes_arrived();
    // The batch just read would look at the invalidation channel's socket before its first hit: the
    // shell lets the thread's other ready clients read theirs first, so that one look covers them all.
    bool catch_up_pending() const noexcept { return reader_.needs_catch_up(); }
    next advance();

    // The replies: the shell takes output from here and reports when it is written.
    reply_queue& replies() noexcept { return queue_; }
    // Whether the output is over its limit (--client-output-buffer-limit, or the pub/sub one in the
    // tunnel); if so the client is cut off (closing, discarding). Call after adding bytes to it.
    bool check_output_limit();

    // The client closed its side or its socket failed, or it is killed: nothing more is read or
    // written, and a blocking command or a tunnel lets its link go.
    void client_gone();
    // The server is stopping: once idle, serve what has already arrived, then leave (a subscriber or
    // MONITOR leaves at once).
    void stop();
    // The socket holds nothing more while draining: leave.
    void finish();

    proxy::mode current_mode() const noexcept { return state_.mode; }
    std::size_t in_flight() const noexcept { return fwd_.in_flight(); }
    // What links still hold of this client: its requests in flight, and the background refreshes its
    // hits asked for (which wake the shell as they end, but never hold up the client's own requests).
    std::size_t outstanding() const noexcept { return fwd_.in_flight() + fwd_.detached(); }
    // Lets go of a dedicated link (its requests fail) before the shell waits for outstanding() == 0.
    void release_links() { fwd_.release(false); }

    // ---- command::context ----
    resp::reply_builder& reply() override;
    command::client_info& client() noexcept override { return *state_.info; }
    std::uint32_t db() const noexcept override { return state_.db; }
    resp::protocol protocol() const noexcept override { return state_.proto; }
    void set_protocol(resp::protocol p) override;
    bool authenticated() const noexcept override { return auth_.authenticated(); }
    command::backend_facts facts() const override { return env_.host.facts(); }
    bool backend_busy() const noexcept override {
        return env_.host.backend_busy().load(std::memory_order_relaxed);
    }
    command::client_registry& clients() noexcept override { return env_.clients; }
    bool password_required() const noexcept override { return env_.settings.password_required.load(); }
    std::string proxy_info() const override { return env_.host.proxy_info(); }
    void forward(command::args_view args) override;
    void forward_rewritten(command::args_view args) override;
    void forward_info(bool with_proxy) override;
    void read_through(command::args_view args) override;
    void select(std::uint32_t db) override { state_.set_db(db); }
    void select_via_backend(std::uint32_t db) override { fwd_.select_via_backend(db); }
    bool log_in_locally(std::string_view user, std::string_view password) override;
    void log_in_via_backend(command::args_view auth_args, const command::hello_request* hello) override;
    void set_reply_mode(command::reply_mode m) override;
    void quit(bool answer) override;
    void reset() override;
    void multi() override { txn_.multi(); }
    void exec() override { txn_.exec(); }
    void discard() override { txn_.discard(); }
    void watch() override { txn_.watch(); }
    void unwatch() override { txn_.unwatch(); }
    void subscribe(bool monitor) override { tunnel_.enter(monitor); }
    const command::tracking_mode& tracking() const noexcept override { return tracking_.mode(); }
    tracking_support tracking_available() const noexcept override;
    void track(command::tracking_mode m, std::vector<std::string> added) override {
        tracking_.track(std::move(m), std::move(added));
    }
    void stop_tracking() override { tracking_.stop(); }
    void set_caching(bool yes) override { tracking_.set_caching(yes); }

    // An invalidation for this client (or redirected to it), on its thread.
    void deliver_tracking(const command::tracking_message& m);

private:
    // Why the parse loop stopped.
    enum class halt { need_more, wait, barrier, batch_full, close };
    // What dispatch did with one command.
    enum class step {
        done,         // dispatched; the next command may follow at once
        not_yet,      // not dispatched: it needs every reply in flight first
        wait_after,   // dispatched; the next one waits for its reply
        barrier,      // not dispatched: a cached read needs a read barrier first
    };
    class barrier_wait;

    halt process_input();
    void prefetch_pipelined_gets();
    step dispatch(command::args_view args);
    // The error a client that has not authenticated gets for `args` (`row`: its local row, or null):
    // Redis's unknown command, unknown subcommand or arity error, else NOAUTH.
    std::string unauthenticated_error(const command::row* row, command::args_view args) const;
    step dispatch_tracked(command::args_view args);
    step dispatch_row(const command::row& row, command::args_view args);
    step dispatch_in_tunnel(const command::row* row, command::args_view args);
    core_parts parts() noexcept { return {env_, state_, queue_, *this}; }
    void protocol_error();
    void start_barrier();
    void barrier_answered(bool ok);
    void await_echo(pending& p);
    void release_pinned_if_done();

    // completion_sink
    void completed(pending& p) override;
    bool discarding() const noexcept override { return queue_.discarding(); }
    // tunnel_owner
    void tunnel_output() override;
    void tunnel_done(tunnel_end how) override;

    environment& env_;
    std::function<void()> wake_;
    client_state state_;
    io_buffer in_;
    resp::request_parser parser_;
    reply_queue queue_;
    resp::reply_builder builder_;
    std::string* current_reply_ = nullptr;   // the current command's reply buffer, once asked for
    const command::row* current_row_ = nullptr;
    forwarder fwd_;
    proxy::read_through reader_;
    transaction txn_;
    proxy::auth auth_;
    proxy::tunnel tunnel_;
    client_tracking tracking_;
    std::shared_ptr<barrier_wait> barrier_;  // a read barrier being waited for
    std::shared_ptr<client_core*> alive_;    // found through a weak_ptr by answers from other threads
    bool barrier_wanted_ = false;            // the cached read being dispatched asked for one
    bool stop_requested_ = false;            // the server is stopping (applied once the client is idle)
};

}  // namespace respcache::proxy
