#include "respcache/server/session.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "respcache/command/handlers.hpp"
#include "respcache/log.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/server/report.hpp"
#include "respcache/server/worker.hpp"

namespace respcache::server {

using namespace std::chrono;
using asio::ip::tcp;
using command::iequals;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
constexpr std::size_t kReadSize = 16 * 1024;
// A batch stops dispatching (and writes what is ready) past this many replies' bytes or commands, so that
// a client pipelining a huge stream never makes the proxy buffer all of its replies.
constexpr std::size_t kBatchBytes = 256 * 1024;
constexpr std::size_t kBatchCommands = 4096;
constexpr std::size_t kKeptSlots = 128;          // free reply slots a session keeps for reuse
constexpr std::size_t kKeptSlotBytes = 16 * 1024;  // the largest buffer a kept slot holds on to

cache::millis steady_ms() noexcept {
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}


std::string endpoint_text(const tcp::endpoint& ep) {
    const auto addr = ep.address();
    if (addr.is_v6()) return "[" + addr.to_string() + "]:" + std::to_string(ep.port());
    return addr.to_string() + ":" + std::to_string(ep.port());
}
}  // namespace

// One reply in the ordered queue, and the receiver of the backend's replies when the command was sent.
struct session::slot final : backend::request {
    enum class kind : std::uint8_t { local, forward, get_miss, transaction, blocking, auth, select_probe };
    enum class txn : std::uint8_t { none, multi, exec, discard, watch, unwatch };

    session* owner = nullptr;
    kind what = kind::local;
    txn txn_kind = txn::none;
    bool done = false;
    bool suppressed = false;  // CLIENT REPLY OFF/SKIP: the reply is dropped
    bool errored = false;
    bool got_reply = false;
    std::string data;  // the reply the client gets

    std::uint32_t client_index = 0;  // which backend reply is the client's (earlier ones are preludes)
    std::uint32_t replies = 1;
    backend::connection* conn = nullptr;

    // get_miss
    std::string key;
    std::uint32_t db = 0;
    std::uint64_t hash = 0;
    cache::fill_token token;
    bool fill_ok = true;
    bool tracking_prelude = false;
    std::uint64_t conn_epoch = 0;
    cache::millis sent_ms = 0;
    cache::millis key_expires = INT64_MAX;

    std::chrono::steady_clock::time_point batch_start;  // for the miss latency histogram
    bool with_proxy_info = false;                     // INFO: append the proxy's section
    bool aborted_exec = false;                        // a DISCARD sent for an EXEC of an aborted MULTI
    bool refresh_catalog = false;                     // MODULE: the command table may change

    // forwarded writes and EXEC
    command::owned_effect effect;
    std::vector<std::optional<std::uint32_t>> selects;  // EXEC: per queued command, the db a SELECT picks

    // auth
    std::shared_ptr<backend::connection> temp;
    bool hello = false;
    std::string hello_name;
    std::string user;

    void reset() {
        what = kind::local;
        txn_kind = txn::none;
        done = suppressed = errored = got_reply = false;
        data.clear();
        client_index = 0;
        replies = 1;
        conn = nullptr;
        fill_ok = true;
        tracking_prelude = false;
        conn_epoch = 0;
        key_expires = INT64_MAX;
        effect.clear();
        selects.clear();
        temp.reset();
        with_proxy_info = false;
        aborted_exec = false;
        refresh_catalog = false;
        hello = false;
        hello_name.clear();
        user.clear();
    }

    void on_reply(std::size_t index, std::string_view bytes) override {
        if (index < client_index) {
            if (!resp::is_ok(bytes)) {
                fill_ok = false;
                if (index == 0 && tracking_prelude && conn != nullptr) conn->tracking_epoch = 0;
            }
        } else if (index == client_index) {
            data.assign(bytes);
            got_reply = true;
        } else if (what == kind::get_miss) {
            // PTTL: cap the entry's life by the key's own (-1: no expiry; -2 or 0: already gone).
            auto ttl = resp::integer_value(bytes);
            if (!ttl || *ttl == -2 || *ttl == 0)
                fill_ok = false;
            else if (*ttl > 0)
                key_expires = sent_ms + *ttl;
        }
        if (index + 1 == replies) owner->complete(*this);
    }

    void on_error(std::string_view reason) override {
        errored = true;
        fill_ok = false;
        if (!got_reply) {
            data.clear();
            resp::write_error(data, "ERR " + std::string(reason));
        }
        owner->complete(*this);
    }
};

session::session(worker& owner, tcp::socket socket)
    : owner_(owner),
      socket_(std::move(socket)),
      wake_(socket_.get_executor()),
      info_(std::make_shared<client_info>()),
      in_(kReadSize),
      parser_(resp::limits{}) {
    info_->id = owner_.shared().next_client_id();
    authenticated_ = !owner_.shared().live().password_required.load();
    parser_.set_unauthenticated(!authenticated_);
    db_ = owner_.shared().startup_config().backend.db;
    info_->db = db_;
    boost::system::error_code ec;
    auto remote = socket_.remote_endpoint(ec);
    if (!ec) info_->addr = endpoint_text(remote);
    auto local = socket_.local_endpoint(ec);
    if (!ec) info_->laddr = endpoint_text(local);
    info_->last_active_ms = steady_ms();
}

session::~session() {
    for (auto& s : queue_) s->owner = nullptr;
}

services& session::shared() noexcept { return owner_.shared(); }

const command::catalog* session::catalog() noexcept { return owner_.catalog(); }

void session::wake() noexcept { wake_.cancel(); }

void session::close() {
    closing_ = true;
    client_gone_ = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    if (blocking_in_flight_ || tunnel_) release_pinned(false);
    wake();
}

void session::stop_when_idle() {
    stop_requested_ = true;
    if (tunnel_) {
        // A subscriber or MONITOR is never idle: it would only be cut at the shutdown timeout.
        close();
        return;
    }
    if (reading_) {
        boost::system::error_code ignored;
        socket_.cancel(ignored);
    }
}

void session::select_via_backend(std::uint32_t db) {
    // The backend's database count is unknown (CONFIG is not allowed): let Redis judge the index, on the
    // shared connection, and put that connection back on its own database in the same round trip.
    slot* s = push_slot();
    s->what = slot::kind::select_probe;
    s->db = db;
    backend::connection& c = target_connection();
    c.select(db_);
    request_scratch_.clear();
    const std::string n = std::to_string(db);
    const std::string back = std::to_string(c.selected_db());
    resp::write_command(request_scratch_, {"SELECT", n});
    resp::write_command(request_scratch_, {"SELECT", back});
    send_forward(s, request_scratch_, 2, milliseconds(shared_live_request_timeout()));
}

void session::set_db(std::uint32_t db) {
    db_ = db;
    info_->db = db;
}

// ---------------------------------------------------------------------------------------------------
// The main loop.

asio::awaitable<void> session::run() {
    auto self = shared_from_this();
    owner_.attach(this);
    auto& registry = shared().clients();
    std::weak_ptr<session> weak = self;
    auto& io = owner_.io();
    {
        std::lock_guard guard(info_->mu);
        info_->kill = [weak, &io] {
            asio::post(io, [weak] {
                if (auto s = weak.lock()) s->close();
            });
        };
    }
    owner_.stats().connections.add();
    registry.add(info_);
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    socket_.non_blocking(true, ignored);
    now_ = steady_ms();
    batch_start_ = steady_clock::now();
    try {
        while (co_await serve_requests()) {
            co_await run_tunnel();
            if (closing_ || client_gone_) {
                co_await flush_all();
                break;
            }
        }
    } catch (const std::exception& e) {
        log::error("session failed", {{"client", info_->id}, {"error", e.what()}});
    }
    // Slots are owned here and referenced by backend connections until answered: never leave before.
    if (pending_ > 0) {
        release_pinned(false);
        co_await wait_for_replies();
    }
    // Every backend request made for this client has completed (serve_requests waits for them).
    release_pinned(false);
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    registry.remove(info_->id);
    {
        std::lock_guard guard(info_->mu);
        info_->kill = nullptr;
    }
    owner_.detach(this);
    shared().connected_clients().fetch_sub(1, std::memory_order_relaxed);
}

// New requests arrived: the cache must be caught up with (or a barrier passed) again before a hit.
void session::note_bytes_read() {
    now_ = steady_ms();
    batch_start_ = steady_clock::now();
    caught_up_checked_ = false;
    barrier_passed_ = false;
}

asio::awaitable<bool> session::serve_requests() {
    for (;;) {
        const outcome o = process_input();
        if (o == outcome::read_barrier) {
            start_write();  // what is answered already need not wait for the barrier
            co_await pass_read_barrier();
            if (closing_ || client_gone_) {  // killed, or gone, while waiting: dispatch nothing more
                co_await flush_all();
                co_return false;
            }
            continue;
        }
        co_await wait_for_replies();
        maybe_release_pinned();
        start_write();
        if (over_output_limit() || client_gone_) co_return false;
        if (o == outcome::close || closing_) {
            co_await flush_all();
            co_return false;
        }
        if (tunnel_) {
            co_await flush_all();
            co_return true;
        }
        // As Redis does, keep serving a client while its replies are being written: one that sends a whole
        // pipeline before reading a reply must not be stalled (it would never read). --client-output-
        // buffer-limit bounds what may accumulate.
        if (o != outcome::need_more) continue;
        if (stop_requested_) {
            // Shutting down: what the client has already sent is in flight too. Serve whatever the
            // socket holds now, and leave once it holds nothing more.
            if (!read_available()) {
                co_await flush_all();
                co_return false;
            }
            continue;
        }
        if (!co_await read_more()) {
            co_await flush_all();
            co_return false;
        }
    }
}

bool session::read_available() {
    std::size_t avail = 0;
    char* space = in_.prepare(kReadSize, avail);
    boost::system::error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(space, avail), ec);
    if (ec || n == 0) return false;
    in_.commit(n);
    note_bytes_read();
    return true;
}

// Reads what the client sent next into in_. False when the client is gone, idle past --timeout, or the
// server is stopping.
asio::awaitable<bool> session::read_more() {
    using namespace asio::experimental::awaitable_operators;
    in_.shrink();
    const std::int64_t idle_ms = shared().live().idle_timeout_ms.load(std::memory_order_relaxed);
    reading_ = true;
    boost::system::error_code ec;
    std::size_t n = 0;
    std::size_t avail = 0;
    if (idle_ms <= 0) {
        char* space = in_.prepare(kReadSize, avail);
        std::tie(ec, n) = co_await socket_.async_read_some(asio::buffer(space, avail), use_tuple);
    } else {
        for (;;) {
            wake_.expires_after(milliseconds(idle_ms));
            auto r = co_await (socket_.async_wait(tcp::socket::wait_read, use_tuple) || wake_.async_wait(use_tuple));
            if (r.index() == 1) {
                if (std::get<1>(r) == std::tuple<boost::system::error_code>{}) {
                    owner_.stats().idle_disconnects.add();
                    reading_ = false;
                    co_return false;
                }
                continue;  // woken for another reason: wait again
            }
            std::tie(ec) = std::get<0>(r);
            if (ec) break;
            char* space = in_.prepare(kReadSize, avail);
            n = socket_.read_some(asio::buffer(space, avail), ec);
            if (ec != asio::error::would_block) break;
        }
    }
    reading_ = false;
    if (ec) {
        client_gone_ = true;
        co_return false;
    }
    in_.commit(n);
    note_bytes_read();
    co_return true;
}

asio::awaitable<void> session::wait_for_replies() {
    using namespace asio::experimental::awaitable_operators;
    while (pending_ > 0) {
        wake_.expires_at(steady_clock::time_point::max());
        if (!blocking_in_flight_) {
            co_await wake_.async_wait(use_tuple);
            continue;
        }
        // A blocking command may wait for ever: watch the client meanwhile, so that one who leaves
        // releases its backend connection (which cancels the command in Redis).
        auto r = co_await (wake_.async_wait(use_tuple) || socket_.async_wait(tcp::socket::wait_read, use_tuple));
        if (r.index() == 0) continue;
        auto [ec] = std::get<1>(r);
        std::size_t n = 0;
        if (!ec) {
            std::size_t avail = 0;
            char* space = in_.prepare(kReadSize, avail);
            n = socket_.read_some(asio::buffer(space, avail), ec);
            if (ec == asio::error::would_block) continue;
            if (!ec) {
                in_.commit(n);
                note_bytes_read();
            }
        }
        if (ec || in_.size() > query_buffer_limit()) {
            client_gone_ = true;
            release_pinned(false);
        }
    }
}

std::size_t session::output_limit() const noexcept {
    const auto& live = owner_.shared().live();
    return (tunnel_ ? live.pubsub_output_buffer_limit : live.output_buffer_limit).load(std::memory_order_relaxed);
}

void session::start_write() {
    if (write_in_progress_ || out_.empty() || client_gone_) return;
    write_in_progress_ = true;
    write_buf_.clear();
    write_buf_.swap(out_);
    // One write at a time, running alongside reading and processing; it continues with whatever
    // accumulated meanwhile.
    asio::async_write(socket_, asio::buffer(write_buf_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                          self->write_in_progress_ = false;
                          if (ec) {
                              self->client_gone_ = true;
                          } else {
                              if (self->write_buf_.capacity() > 4 * kBatchBytes) std::string().swap(self->write_buf_);
                              self->start_write();
                          }
                          self->wake();
                      });
}

bool session::over_output_limit() {
    const std::size_t limit = output_limit();
    const std::size_t unwritten = (write_in_progress_ ? write_buf_.size() : 0) + out_.size();
    if (limit == 0 || unwritten <= limit || client_gone_) return false;
    owner_.stats().output_limit_disconnects.add();
    log::limited("output-limit", spdlog::level::warn,
                 tunnel_ ? "closing subscriber: output buffer limit reached" : "closing client: output buffer limit reached",
                 {{"client", info_->id}, {"bytes", unwritten}, {"limit", limit}});
    abort_client();
    return true;
}

void session::abort_client() {
    closing_ = true;
    client_gone_ = true;
    out_.clear();
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    wake();
}

asio::awaitable<void> session::wait_for_write() {
    while (write_in_progress_ && !client_gone_) {
        wake_.expires_at(steady_clock::time_point::max());
        co_await wake_.async_wait(use_tuple);
    }
}

// --consistency strict: waits until a PING sent on the invalidation channel after the requests buffered
// now arrived has been answered, so every invalidation of a write acknowledged before them is applied.
// If the channel is down, hits are refused until the next read (GETs go to Redis).
asio::awaitable<void> session::pass_read_barrier() {
    barrier_answered_ = false;
    auto& io = owner_.io();
    shared().tracking().await_barrier([weak = weak_from_this(), &io](bool ok) {
        asio::post(io, [weak, ok] {
            if (auto s = weak.lock()) {
                s->barrier_ok_ = ok;
                s->barrier_answered_ = true;
                s->wake();
            }
        });
    });
    // Always ends: the barrier answers, or the channel is declared lost (PING timeout at worst), which
    // fails it; or the client is closed meanwhile (the answer then finds nobody waiting).
    while (!barrier_answered_ && !closing_ && !client_gone_) {
        wake_.expires_at(steady_clock::time_point::max());
        co_await wake_.async_wait(use_tuple);
    }
    barrier_passed_ = true;
    caught_up_checked_ = true;
    caught_up_ = barrier_ok_;
}

asio::awaitable<void> session::flush_all() {
    start_write();
    co_await wait_for_write();
}

std::size_t session::query_buffer_limit() const noexcept {
    return owner_.shared().startup_config().client_query_buffer_limit;
}

// Parses and dispatches every complete command buffered, until one needs what is in flight to finish.
session::outcome session::process_input() {
    std::size_t dispatched = 0;
    now_ = steady_ms();  // after a wait (a blocking command, a write) time has moved: expiry checks use now
    for (;;) {
        const std::string_view input = in_.readable();
        const resp::parse_result r = parser_.parse(input);
        if (r.status == resp::parse_status::need_more) {
            if (in_.size() > query_buffer_limit()) {
                log::limited("query-limit", spdlog::level::warn, "closing client: query buffer limit reached",
                             {{"client", info_->id}, {"bytes", in_.size()}});
                closing_ = true;
                return outcome::close;
            }
            return outcome::need_more;
        }
        if (r.status == resp::parse_status::error) {
            owner_.stats().protocol_errors.add();
            log::limited("protocol-error", spdlog::level::info, "closing client: protocol error",
                         {{"client", info_->id}, {"addr", info_->addr}, {"error", parser_.error_text()}});
            current_reply_ = nullptr;
            skip_this_ = false;
            reply_error(parser_.error_text());
            closing_ = true;
            return outcome::close;
        }
        const command::args_view args = parser_.args();
        if (args.empty()) {
            in_.consume(r.consumed);
            continue;
        }
        if (parser_.last_was_inline()) {
            inline_raw_.clear();
            resp::write_command(inline_raw_, args);
            raw_ = inline_raw_;
        } else {
            raw_ = input.substr(0, r.consumed);
        }
        current_reply_ = nullptr;
        const bool skip_next = reply_skip_next_;
        skip_this_ = reply_off_ || reply_skip_next_;
        reply_skip_next_ = false;
        const step st = dispatch(args);
        if (st == step::wait_before || st == step::wait_read_barrier) {
            // Not dispatched: it runs once what is in flight has completed, or the barrier has passed.
            reply_skip_next_ = skip_next;
            return st == step::wait_before ? outcome::barrier : outcome::read_barrier;
        }
        // `args` and `raw_` point into in_: consume only now, when nothing will read them any more.
        info_->note_command(args[0]);
        in_.consume(r.consumed);
        owner_.stats().commands.add();
        info_->last_active_ms.store(now_, std::memory_order_relaxed);
        ++dispatched;
        if (closing_) return outcome::close;
        if (tunnel_) return outcome::tunnel;
        if (st == step::wait_after) return outcome::barrier;
        if (out_.size() > kBatchBytes || dispatched >= kBatchCommands) return outcome::flush;
    }
}

session::step session::dispatch(command::args_view args) {
    const command::row* row = command::table::local().find(args[0]);
    if (!authenticated_ && (row == nullptr || (row->flags & command::local_no_auth) == 0)) {
        reply_error("NOAUTH Authentication required.");
        return step::proceed;
    }
    if (in_multi_ && (row == nullptr || (row->flags & command::local_in_multi) == 0)) {
        queue_in_transaction(args);
        return step::proceed;
    }
    if (row != nullptr) {
        if (!command::arity_ok(row->arity, args.size())) {
            reply_error(command::wrong_arity_error(row->name));
            return step::proceed;
        }
        if ((row->flags & command::local_wait_before) && pending_ > 0) return step::wait_before;
        row->fn(*this, args);
        if (barrier_wanted_) {
            barrier_wanted_ = false;
            return step::wait_read_barrier;
        }
        return (row->flags & command::local_wait_after) ? step::wait_after : step::proceed;
    }
    const command::catalog* cat = catalog();
    const command::command_info* info = cat != nullptr ? cat->find(args) : nullptr;
    if (cat != nullptr && info == nullptr) {
        reply_error(command::unknown_command_error(args));
        return step::proceed;
    }
    if (blocking_needed(args, info)) {
        if (pending_ > 0) return step::wait_before;
        forward_blocking(args, info);
        return step::wait_after;
    }
    forward(args);
    return step::proceed;
}

// ---------------------------------------------------------------------------------------------------
// Replies.

session::slot* session::push_slot() {
    std::unique_ptr<slot> owned;
    if (!free_slots_.empty()) {
        owned = std::move(free_slots_.back());
        free_slots_.pop_back();
    } else {
        owned = std::make_unique<slot>();
    }
    slot* s = owned.get();
    s->reset();
    s->owner = this;
    s->suppressed = skip_this_;
    queue_.push_back(std::move(owned));
    return s;
}

void session::recycle(std::unique_ptr<slot> s) {
    // Keep a few slots, with modest buffers, for the next batch; a burst of large replies is not kept.
    if (free_slots_.size() >= kKeptSlots) return;
    if (s->data.capacity() > kKeptSlotBytes) std::string().swap(s->data);
    s->temp.reset();
    free_slots_.push_back(std::move(s));
}

void session::drain_queue() {
    while (!queue_.empty() && queue_.front()->done) {
        std::unique_ptr<slot> s = std::move(queue_.front());
        queue_.pop_front();
        if (!s->suppressed) out_.append(s->data);
        recycle(std::move(s));
    }
}

std::string& session::reply() {
    if (current_reply_ != nullptr) return *current_reply_;
    if (skip_this_) {
        scratch_.clear();
        current_reply_ = &scratch_;
    } else if (queue_.empty()) {
        current_reply_ = &out_;
    } else {
        slot* s = push_slot();
        s->done = true;
        current_reply_ = &s->data;
    }
    return *current_reply_;
}

void session::reply_error(std::string_view text) { resp::write_error(reply(), text); }

void session::reply_ok() { reply().append("+OK\r\n"); }

void session::complete(slot& s) {
    if (s.owner == nullptr) return;  // the session is gone (cannot happen while it waits; kept for safety)
    s.done = true;
    --pending_;
    owner_.stats().in_flight.sub();
    if (s.errored) owner_.stats().backend_errors.add();
    auto& cache = shared().cache();
    switch (s.what) {
        case slot::kind::get_miss:
            owner_.stats().miss_latency.record(steady_clock::now() - s.batch_start);
            if (s.fill_ok && !s.errored && resp::is_bulk(s.data) && s.conn != nullptr &&
                s.conn->tracking_epoch == s.conn_epoch && shared().fill_allowed(s.conn_epoch)) {
                auto value = resp::string_value(s.data);
                if (value && value->size() <= shared().live().max_value_size.load(std::memory_order_relaxed))
                    cache.fill({s.db, s.key, s.hash}, s.token, s.data, steady_ms(), s.key_expires);
            }
            break;
        case slot::kind::forward:
        case slot::kind::blocking:
            if (s.refresh_catalog && !s.errored) shared().request_catalog_refresh();
            if (s.with_proxy_info) {
                const std::string section = proxy_info_section(shared());
                if (auto text = resp::string_value(s.data); text && resp::is_bulk(s.data)) {
                    std::string joined(*text);
                    joined += "\r\n";
                    joined += section;
                    s.data.clear();
                    resp::write_bulk(s.data, joined);
                } else if (s.errored) {
                    // The backend is unreachable: the proxy's own figures are what an operator needs now.
                    s.data.clear();
                    resp::write_bulk(s.data, section);
                }
            }
            if (!s.effect.empty()) {
                s.effect.apply(cache);
                std::erase(inflight_writes_, &s);
            }
            if (s.what == slot::kind::blocking) {
                blocking_in_flight_ = false;
                info_->blocked = false;
                info_->blocked_backend_id = 0;
            }
            break;
        case slot::kind::transaction:
            finish_transaction_step(s);
            break;
        case slot::kind::auth:
            finish_authentication(s);
            break;
        case slot::kind::select_probe:
            if (resp::is_ok(s.data)) set_db(s.db);
            break;
        case slot::kind::local:
            break;
    }
    if (s.errored && pinned_ && s.conn == pinned_.get()) pinned_broken_ = true;
    drain_queue();
    wake();
}

// ---------------------------------------------------------------------------------------------------
// Forwarding.

backend::connection& session::target_connection() {
    if (pinned_) return *pinned_;
    return owner_.pool().shared_for(info_->id);
}

void session::send_forward(slot* s, std::string_view bytes, std::uint32_t replies, milliseconds timeout) {
    backend::connection& c = target_connection();
    s->conn = &c;
    s->replies = replies;
    ++pending_;
    owner_.stats().in_flight.add();
    c.select(db_);
    c.send(bytes, replies, s, timeout);
}

void session::send_forward(slot* s) {
    send_forward(s, raw_, 1, milliseconds(shared().live().request_timeout_ms.load(std::memory_order_relaxed)));
}

void session::forward(command::args_view args) {
    owner_.stats().forwarded.add();
    slot* s = push_slot();
    s->what = slot::kind::forward;
    s->refresh_catalog = iequals(args[0], "module");
    const command::catalog* cat = catalog();
    const command::command_info* info = cat != nullptr ? cat->find(args) : nullptr;
    command::effect_of(info, args, db_, effect_scratch_);
    const command::cache_effect& e = effect_scratch_;
    if (!e.empty()) {
        s->effect.add(e);
        // Invalidate now, so that a GET behind this write in the same pipeline misses and is sent after
        // it on the same connection; and again at the reply, for fills that raced with the write.
        s->effect.apply(shared().cache());
        inflight_writes_.push_back(s);
    }
    send_forward(s);
}

void session::forward_info(command::args_view, bool with_proxy) {
    owner_.stats().forwarded.add();
    slot* s = push_slot();
    s->what = slot::kind::forward;
    s->with_proxy_info = with_proxy;
    send_forward(s);
}

void session::forward_blocking(command::args_view args, const command::command_info* info) {
    owner_.stats().forwarded.add();
    pin();
    slot* s = push_slot();
    s->what = slot::kind::blocking;
    command::effect_of(info, args, db_, effect_scratch_);
    const command::cache_effect& e = effect_scratch_;
    if (!e.empty()) {
        s->effect.add(e);
        s->effect.apply(shared().cache());
        inflight_writes_.push_back(s);
    }
    blocking_in_flight_ = true;
    info_->blocked = true;
    info_->blocked_backend_id = pinned_->backend_id();
    const auto timeout = blocking_timeout(args);
    const milliseconds wait = timeout ? *timeout : milliseconds::max();
    if (iequals(args[0], "wait") || iequals(args[0], "waitaof")) {
        // WAIT counts replicas that have the writes of the connection it runs on; the client's writes went
        // through another one. A PUBLISH (propagated to replicas, seen by no subscriber) first moves this
        // connection's replication offset past every write executed so far, the client's included.
        request_scratch_.clear();
        resp::write_command(request_scratch_, {"PUBLISH", "__respcache__:wait-barrier", ""});
        request_scratch_.append(raw_);
        s->client_index = 1;
        send_forward(s, request_scratch_, 2, wait);
        return;
    }
    send_forward(s, raw_, 1, wait);
}

bool session::blocking_needed(command::args_view args, const command::command_info* info) const {
    if (info != nullptr) {
        if (iequals(args[0], "xread") || iequals(args[0], "xreadgroup")) {
            for (std::size_t i = 1; i < args.size(); ++i)
                if (iequals(args[i], "block")) return true;
            return false;
        }
        if (info->has(command::flag_blocking)) return true;
    }
    return iequals(args[0], "wait") || iequals(args[0], "waitaof");
}

std::optional<milliseconds> session::blocking_timeout(command::args_view args) const {
    // How long Redis itself may keep the command blocked, plus the usual request timeout.
    const milliseconds slack(shared_live_request_timeout());
    auto seconds_arg = [&](std::string_view s) -> std::optional<milliseconds> {
        double v = 0;
        try {
            v = std::stod(std::string(s));
        } catch (...) {
            return slack;
        }
        if (v <= 0) return std::nullopt;
        return milliseconds(static_cast<std::int64_t>(v * 1000)) + slack;
    };
    auto millis_arg = [&](std::string_view s) -> std::optional<milliseconds> {
        std::int64_t v = 0;
        if (!resp::detail::parse_int64(s, v)) return slack;
        if (v <= 0) return std::nullopt;
        return milliseconds(v) + slack;
    };
    const std::string_view name = args[0];
    if (iequals(name, "blmpop") || iequals(name, "bzmpop")) return args.size() > 1 ? seconds_arg(args[1]) : slack;
    if (iequals(name, "xread") || iequals(name, "xreadgroup")) {
        for (std::size_t i = 1; i + 1 < args.size(); ++i)
            if (iequals(args[i], "block")) return millis_arg(args[i + 1]);
        return slack;
    }
    if (iequals(name, "wait")) return args.size() > 2 ? millis_arg(args[2]) : slack;
    if (iequals(name, "waitaof")) return args.size() > 3 ? millis_arg(args[3]) : slack;
    if (iequals(name, "blpop") || iequals(name, "brpop") || iequals(name, "brpoplpush") || iequals(name, "blmove") ||
        iequals(name, "bzpopmin") || iequals(name, "bzpopmax"))
        return seconds_arg(args.back());
    return std::nullopt;
}

std::int64_t session::shared_live_request_timeout() const noexcept {
    return owner_.shared().live().request_timeout_ms.load(std::memory_order_relaxed);
}

bool session::cache_bypassed(const cache::key& k) const {
    for (const slot* w : inflight_writes_)
        if (w->effect.touches(k)) return true;
    return false;
}

void session::get(command::args_view args) {
    if (pinned_) {
        // WATCH (or another state) holds a dedicated connection: the client is doing read-modify-write,
        // so it reads Redis itself; and an entry filled through a connection that goes away with the
        // client would lose its invalidations.
        forward(args);
        return;
    }
    auto& cache = shared().cache();
    auto& stats = owner_.stats();
    const cache::key k = cache::make_key(db_, args[1]);
    const bool cacheable = cache.enabled() && !cache_bypassed(k) && !shared().cache_refused();
    bool may_hit = cacheable;
    if (cacheable && shared().tracking_wanted()) {
        if (!barrier_passed_ && shared().strict_reads()) {
            // Not served yet: dispatch() stops here and this GET runs again once a barrier has passed.
            barrier_wanted_ = true;
            return;
        }
        if (!caught_up_checked_) {
            caught_up_ = shared().tracking().catch_up();
            caught_up_checked_ = true;
        }
        may_hit = caught_up_;
    }
    if (may_hit) {
        std::string* target;
        slot* s = nullptr;
        if (skip_this_) {
            scratch_.clear();
            target = &scratch_;
        } else if (queue_.empty()) {
            target = &out_;
        } else {
            s = push_slot();
            target = &s->data;
        }
        if (cache.lookup(k, now_, *target)) {
            stats.hits.add();
            stats.hit_latency.record(steady_clock::now() - batch_start_);
            if (s != nullptr) s->done = true;
            return;
        }
        if (s != nullptr) {
            // Not needed after all: the miss takes a slot of its own.
            std::unique_ptr<slot> unused = std::move(queue_.back());
            queue_.pop_back();
            recycle(std::move(unused));
        }
    }
    stats.misses.add();
    const bool tracking = shared().tracking_wanted();
    const auto& t = shared().tracking();
    if (!cacheable || (tracking && !t.live.load(std::memory_order_acquire))) {
        // Nothing will be cached: a plain forward.
        forward(args);
        return;
    }
    slot* s = push_slot();
    s->what = slot::kind::get_miss;
    s->key.assign(k.name);
    s->db = k.db;
    s->hash = k.hash;
    s->token = cache.begin_fill(k);
    s->sent_ms = steady_ms();
    s->batch_start = batch_start_;
    backend::connection& c = target_connection();
    c.select(db_);
    std::string& req = request_scratch_;
    req.clear();
    std::uint32_t n = 0;
    if (tracking) {
        const std::uint64_t epoch = t.epoch.load(std::memory_order_acquire);
        if (c.tracking_epoch != epoch) {
            const std::string rid = std::to_string(t.redirect_id.load(std::memory_order_acquire));
            resp::write_command(req, {"CLIENT", "TRACKING", "on", "REDIRECT", rid, "OPTIN"});
            ++n;
            c.tracking_epoch = epoch;
            s->tracking_prelude = true;
        }
        resp::write_command(req, {"CLIENT", "CACHING", "yes"});
        ++n;
        s->conn_epoch = epoch;
    }
    s->client_index = n;
    req.append(raw_);
    resp::write_command(req, {"PTTL", k.name});
    n += 2;
    send_forward(s, req, n, milliseconds(shared_live_request_timeout()));
}

// ---------------------------------------------------------------------------------------------------
// Transactions.

namespace {
// Commands that change the state of the connection they run on (protocol, identity, subscriptions,
// reply mode, tracking...). Queued in a transaction they would run on the dedicated connection at EXEC,
// where the client's own state does not follow them and the next user of the pooled connection would
// inherit them: refused instead, which aborts the transaction as Redis does for a command that cannot be
// queued.
bool changes_connection_state(std::string_view name) {
    static constexpr std::string_view names[] = {"hello",       "auth",         "client",       "subscribe",
                                                 "psubscribe",  "ssubscribe",   "unsubscribe",  "punsubscribe",
                                                 "sunsubscribe", "monitor",     "sync",         "psync",
                                                 "replconf"};
    for (auto n : names)
        if (iequals(name, n)) return true;
    return false;
}
}  // namespace

void session::queue_in_transaction(command::args_view args) {
    if (changes_connection_state(args[0])) {
        multi_aborted_ = true;
        reply_error("ERR Command not allowed inside a transaction");
        return;
    }
    owner_.stats().forwarded.add();
    const command::catalog* cat = catalog();
    const command::command_info* info = cat != nullptr ? cat->find(args) : nullptr;
    command::effect_of(info, args, multi_db_, effect_scratch_);
    const command::cache_effect& e = effect_scratch_;
    if (!e.empty()) {
        multi_effect_.add(e);
        // Invalidated when queued, when EXEC is sent and when it is answered.
        command::owned_effect now;
        now.add(e);
        now.apply(shared().cache());
    }
    std::optional<std::uint32_t> selected;
    if (iequals(args[0], "select") && args.size() == 2) {
        std::int64_t n = 0;
        if (resp::detail::parse_int64(args[1], n) && n >= 0 && n < static_cast<std::int64_t>(shared().facts().databases)) {
            selected = static_cast<std::uint32_t>(n);
            multi_db_ = *selected;
        }
    }
    multi_selects_.push_back(selected);
    info_->multi = static_cast<int>(multi_selects_.size());
    slot* s = push_slot();
    s->what = slot::kind::forward;
    send_forward(s);
}

void session::begin_transaction(command::args_view) {
    if (in_multi_) {
        reply_error("ERR MULTI calls can not be nested");
        return;
    }
    pin();
    in_multi_ = true;
    multi_aborted_ = false;
    multi_db_ = db_;
    multi_selects_.clear();
    multi_effect_.clear();
    info_->multi = 0;
    slot* s = push_slot();
    s->what = slot::kind::transaction;
    s->txn_kind = slot::txn::multi;
    send_forward(s);
}

void session::end_transaction(command::args_view args) {
    const bool exec = iequals(args[0], "exec");
    if (!in_multi_) {
        reply_error(exec ? "ERR EXEC without MULTI" : "ERR DISCARD without MULTI");
        return;
    }
    if (exec && multi_aborted_) {
        // A command was refused while queueing: the transaction is discarded, as Redis does.
        slot* d = push_slot();
        d->what = slot::kind::transaction;
        d->txn_kind = slot::txn::discard;
        d->aborted_exec = true;
        multi_selects_.clear();
        multi_effect_.clear();
        in_multi_ = false;
        watching_ = false;
        multi_aborted_ = false;
        info_->multi = -1;
        inline_raw_.clear();
        resp::write_command(inline_raw_, {"DISCARD"});
        raw_ = inline_raw_;
        send_forward(d);
        return;
    }
    slot* s = push_slot();
    s->what = slot::kind::transaction;
    s->txn_kind = exec ? slot::txn::exec : slot::txn::discard;
    if (exec && !multi_effect_.empty()) {
        s->effect.add(multi_effect_);
        s->effect.apply(shared().cache());
        inflight_writes_.push_back(s);
    }
    if (exec) s->selects = std::move(multi_selects_);
    multi_selects_.clear();
    multi_effect_.clear();
    in_multi_ = false;
    watching_ = false;  // EXEC and DISCARD both unwatch
    info_->multi = -1;
    send_forward(s);
}

void session::watch(command::args_view) {
    if (in_multi_) {
        reply_error("ERR WATCH inside MULTI is not allowed");
        return;
    }
    pin();
    slot* s = push_slot();
    s->what = slot::kind::transaction;
    s->txn_kind = slot::txn::watch;
    send_forward(s);
}

void session::unwatch(command::args_view) {
    if (!pinned_) {
        reply_ok();
        return;
    }
    slot* s = push_slot();
    s->what = slot::kind::transaction;
    s->txn_kind = slot::txn::unwatch;
    send_forward(s);
}

void session::finish_transaction_step(slot& s) {
    switch (s.txn_kind) {
        case slot::txn::watch:
            if (resp::is_ok(s.data)) watching_ = true;
            break;
        case slot::txn::unwatch:
            if (resp::is_ok(s.data)) watching_ = false;
            break;
        case slot::txn::exec:
            if (!s.effect.empty()) {
                s.effect.apply(shared().cache());
                std::erase(inflight_writes_, &s);
            }
            if (std::any_of(s.selects.begin(), s.selects.end(), [](auto& v) { return v.has_value(); })) {
                // A SELECT inside the transaction changed the database of the connection, and the client's.
                if (auto items = resp::array_elements(s.data); items && items->size() == s.selects.size()) {
                    for (std::size_t i = 0; i < items->size(); ++i)
                        if (s.selects[i] && resp::is_ok((*items)[i])) set_db(*s.selects[i]);
                    if (pinned_) pinned_->assume_selected(db_);
                }
            }
            break;
        case slot::txn::discard:
            if (s.aborted_exec && !s.errored) {
                s.data.clear();
                resp::write_error(s.data, "EXECABORT Transaction discarded because of previous errors.");
            }
            break;
        case slot::txn::multi:
        case slot::txn::none:
            break;
    }
    if (s.errored) {
        // The dedicated connection failed: the transaction and the watches died with it.
        in_multi_ = false;
        watching_ = false;
        info_->multi = -1;
    }
}

void session::pin() {
    if (pinned_) return;
    pinned_ = owner_.pool().acquire_dedicated();
    pinned_broken_ = false;
    owner_.stats().pinned.add();
}

void session::release_pinned(bool clean) {
    if (!pinned_) return;
    auto c = std::move(pinned_);
    pinned_.reset();
    owner_.pool().release_dedicated(std::move(c), clean && !pinned_broken_);
    owner_.stats().pinned.sub();
    pinned_broken_ = false;
}

void session::maybe_release_pinned() {
    if (pinned_ && pending_ == 0 && !tunnel_ && (pinned_broken_ || (!in_multi_ && !watching_))) {
        if (pinned_broken_) {
            in_multi_ = false;
            watching_ = false;
            info_->multi = -1;
        }
        release_pinned(true);
    }
}

// ---------------------------------------------------------------------------------------------------
// AUTH and HELLO AUTH, checked by the backend on a connection of their own.

void session::authenticate(command::args_view auth_args, std::string hello_name, bool hello) {
    slot* s = push_slot();
    s->what = slot::kind::auth;
    s->hello = hello;
    s->hello_name = std::move(hello_name);
    s->user = auth_args.size() == 3 ? std::string(auth_args[1]) : std::string("default");
    s->temp = owner_.pool().acquire_dedicated();
    auth_scratch_.clear();
    resp::write_command(auth_scratch_, auth_args);
    backend::connection& c = *s->temp;
    s->conn = &c;
    ++pending_;
    owner_.stats().in_flight.add();
    c.send(auth_scratch_, 1, s);
}

bool session::authenticate_locally(std::string_view user, std::string_view password) {
    if (user != "default" || !shared().password_matches(password)) {
        owner_.stats().auth_failures.add();
        log::limited("auth-failure", spdlog::level::warn, "AUTH refused", {{"client", info_->id}, {"addr", info_->addr}});
        return false;
    }
    authenticated_ = true;
    parser_.set_unauthenticated(false);
    std::lock_guard guard(info_->mu);
    info_->user = std::string(user);
    return true;
}

void session::finish_authentication(slot& s) {
    // The connection now speaks as the client's user: never reuse it.
    if (s.temp) owner_.pool().release_dedicated(std::move(s.temp), false);
    if (!resp::is_ok(s.data)) return;
    {
        std::lock_guard guard(info_->mu);
        info_->user = s.user;
        if (s.hello && !s.hello_name.empty()) info_->name = s.hello_name;
    }
    if (s.hello) s.data = command::hello_reply(*this);
}

// ---------------------------------------------------------------------------------------------------
// Connection state.

void session::quit() {
    reply_ok();
    closing_ = true;
}

void session::quit_silently() { closing_ = true; }

void session::forward_rewritten(command::args_view args) {
    inline_raw_.clear();
    resp::write_command(inline_raw_, args);
    raw_ = inline_raw_;
    forward(args);
}

void session::set_reply_mode(std::string_view mode) {
    if (iequals(mode, "on")) {
        reply_off_ = false;
        reply_skip_next_ = false;
        skip_this_ = false;
        reply_ok();
    } else if (iequals(mode, "off")) {
        reply_off_ = true;
        skip_this_ = true;
    } else if (iequals(mode, "skip")) {
        reply_skip_next_ = true;
        skip_this_ = true;
    } else {
        reply_error("ERR syntax error");
    }
}

void session::reset() {
    // Everything is idle here (RESET waits for what is in flight). A dedicated connection is dropped:
    // its MULTI, WATCH or subscriptions end with it. RESET is answered even after CLIENT REPLY OFF.
    skip_this_ = false;
    if (current_reply_ == &scratch_) current_reply_ = nullptr;
    if (pinned_) release_pinned(false);
    in_multi_ = false;
    multi_aborted_ = false;
    watching_ = false;
    multi_selects_.clear();
    multi_effect_.clear();
    reply_off_ = false;
    reply_skip_next_ = false;
    set_db(0);
    if (shared().live().password_required.load()) {
        authenticated_ = false;
        parser_.set_unauthenticated(true);
    }
    info_->multi = -1;
    {
        std::lock_guard guard(info_->mu);
        info_->name.clear();
        info_->user = "default";
        info_->no_evict = false;
        info_->no_touch = false;
    }
    reply().append("+RESET\r\n");
}

// ---------------------------------------------------------------------------------------------------
// The tunnel: subscribers and MONITOR.

void session::subscribe(command::args_view, bool monitor) {
    pin();
    pinned_->select(db_);  // answered in request mode, before the stream starts
    pinned_->set_stream_sink(this);
    tunnel_ = true;
    monitor_ = monitor;
    info_->monitor = monitor;
    draining_ = drain_action::none;
    channels_ = 0;
    shard_channels_ = 0;
    pinned_->send(raw_, 0, nullptr);
}

asio::awaitable<void> session::run_tunnel() {
    using namespace asio::experimental::awaitable_operators;
    tunnel_process();
    for (;;) {
        start_write();
        if (!tunnel_ || closing_ || client_gone_) break;
        wake_.expires_at(steady_clock::time_point::max());
        auto r = co_await (wake_.async_wait(use_tuple) || socket_.async_wait(tcp::socket::wait_read, use_tuple));
        if (r.index() == 0) continue;
        auto [ec] = std::get<1>(r);
        if (!ec) {
            std::size_t avail = 0;
            char* space = in_.prepare(kReadSize, avail);
            const std::size_t n = socket_.read_some(asio::buffer(space, avail), ec);
            if (ec == asio::error::would_block) continue;
            if (!ec) {
                in_.commit(n);
                note_bytes_read();
                tunnel_process();
                continue;
            }
        }
        client_gone_ = true;
    }
    if (tunnel_) {
        tunnel_ = false;
        release_pinned(false);
    }
    monitor_ = false;
    info_->monitor = false;
    info_->subscriptions = 0;
    info_->shard_subscriptions = 0;
}

void session::tunnel_process() {
    while (tunnel_ && draining_ == drain_action::none && !closing_ && pinned_) {
        const std::string_view input = in_.readable();
        const resp::parse_result r = parser_.parse(input);
        if (r.status == resp::parse_status::need_more) {
            if (in_.size() > query_buffer_limit()) {
                closing_ = true;
                wake();
            }
            return;
        }
        if (r.status == resp::parse_status::error) {
            owner_.stats().protocol_errors.add();
            resp::write_error(out_, parser_.error_text());
            closing_ = true;
            wake();
            return;
        }
        const command::args_view args = parser_.args();
        if (args.empty()) {
            in_.consume(r.consumed);
            continue;
        }
        owner_.stats().commands.add();
        info_->last_active_ms.store(now_, std::memory_order_relaxed);
        if (iequals(args[0], "quit")) {
            in_.consume(r.consumed);
            start_drain(drain_action::quit);
            return;
        }
        if (iequals(args[0], "reset")) {
            in_.consume(r.consumed);
            start_drain(drain_action::reset);
            return;
        }
        // Once the last subscription is gone Redis runs anything, writes included: they invalidate as
        // usual, when sent and again once their replies are in (at the next marker).
        const command::catalog* cat = catalog();
        command::effect_of(cat != nullptr ? cat->find(args) : nullptr, args, db_, effect_scratch_);
        if (!effect_scratch_.empty()) {
            tunnel_effect_.add(effect_scratch_);
            tunnel_effect_.apply(shared().cache());
        }
        if (parser_.last_was_inline()) {
            inline_raw_.clear();
            resp::write_command(inline_raw_, args);
            pinned_->send(inline_raw_, 0, nullptr);
        } else {
            pinned_->send(input.substr(0, r.consumed), 0, nullptr);
        }
        in_.consume(r.consumed);
    }
}

void session::start_drain(drain_action a) {
    draining_ = a;
    marker_ = "respcache-marker:" + std::to_string(info_->id) + ":" + std::to_string(++marker_seq_);
    std::string bytes;
    resp::write_command(bytes, {"PING", marker_});
    pinned_->send(bytes, 0, nullptr);
}

void session::on_stream_reply(std::string_view bytes) {
    if (draining_ != drain_action::none && bytes.size() < marker_.size() + 64 &&
        bytes.find(marker_) != std::string_view::npos) {
        // Every reply to what the client sent before is relayed.
        const drain_action a = draining_;
        draining_ = drain_action::none;
        if (!tunnel_effect_.empty()) {
            tunnel_effect_.apply(shared().cache());
            tunnel_effect_.clear();
        }
        switch (a) {
            case drain_action::leave:
                if (channels_ == 0 && shard_channels_ == 0 && !monitor_) {
                    pinned_->set_stream_sink(nullptr);
                    tunnel_ = false;
                } else {
                    tunnel_process();
                }
                break;
            case drain_action::quit:
                out_.append("+OK\r\n");
                closing_ = true;
                tunnel_ = false;
                release_pinned(false);
                break;
            case drain_action::reset:
                tunnel_ = false;
                monitor_ = false;
                skip_this_ = false;
                current_reply_ = &out_;
                reset();
                current_reply_ = nullptr;
                break;
            case drain_action::none:
                break;
        }
        wake();
        return;
    }
    if (!reply_off_) out_.append(bytes);
    if (over_output_limit()) {
        // A subscriber that does not keep up: cut it off, its backend connection too.
        tunnel_ = false;
        release_pinned(false);
        return;
    }
    start_write();
    bool push = false;
    if (!monitor_ && !bytes.empty() && bytes[0] == '*') {
        if (auto items = resp::array_elements(bytes); items && !items->empty()) {
            auto kind = resp::string_value((*items)[0]);
            if (kind && items->size() == 3) {
                auto count = resp::integer_value((*items)[2]);
                if (*kind == "message" || *kind == "pmessage" || *kind == "smessage") {
                    push = true;
                } else if (count && (*kind == "subscribe" || *kind == "unsubscribe" || *kind == "psubscribe" ||
                                     *kind == "punsubscribe")) {
                    channels_ = *count;
                    info_->subscriptions = static_cast<int>(channels_);
                } else if (count && (*kind == "ssubscribe" || *kind == "sunsubscribe")) {
                    shard_channels_ = *count;
                    info_->shard_subscriptions = static_cast<int>(shard_channels_);
                }
            } else if (kind && (*kind == "pmessage")) {
                push = true;
            }
        }
    }
    // Once nothing is subscribed any more, check (with a marker) that nothing else is on its way, then
    // leave the tunnel and give the connection back.
    if (!push && !monitor_ && channels_ == 0 && shard_channels_ == 0 && draining_ == drain_action::none && tunnel_)
        start_drain(drain_action::leave);
    wake();
}

void session::on_stream_error(std::string_view reason) {
    resp::write_error(out_, "ERR " + std::string(reason));
    closing_ = true;
    tunnel_ = false;
    pinned_broken_ = true;
    wake();
}

}  // namespace respcache::server
