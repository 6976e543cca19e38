#include "respcache/proxy/client_core.hpp"

#include <array>

#include "respcache/command/blocking.hpp"
#include "respcache/resp/peek.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/log.hpp"

namespace respcache::proxy {

namespace {
constexpr std::size_t kReadSize = 16 * 1024;
// A batch stops dispatching (and writes what is ready) past this many replies' bytes or commands, so that
// a client pipelining a huge stream never makes the proxy buffer all of its replies.
constexpr std::size_t kBatchBytes = 256 * 1024;
constexpr std::size_t kBatchCommands = 4096;
// How many of a pipeline's next GETs have their cache entries prefetched at once.
constexpr std::size_t kPrefetchGets = 16;
constexpr std::size_t kMinGetBytes = 22;  // *2\r\n$3\r\nGET\r\n$1\r\nk\r\n
}  // namespace

// A read barrier being waited for; the answer, which arrives on another thread, finds it (and the core)
// only while the core still waits.
class client_core::barrier_wait {
public:
    explicit barrier_wait(client_core& owner) : owner_(owner) {}
    void answered(bool ok) { owner_.barrier_answered(ok); }

private:
    client_core& owner_;
};

client_core::client_core(environment& env, std::shared_ptr<command::client_info> info, std::function<void()> wake)
    : env_(env),
      wake_(std::move(wake)),
      state_(std::move(info)),
      in_(kReadSize),
      parser_(resp::limits{}),
      fwd_(parts()),
      reader_(parts(), fwd_),
      txn_(*this, parts(), fwd_),
      auth_(*this, parts(), fwd_, parser_),
      tunnel_(parts(), fwd_, *this),
      tracking_(*this, parts(), fwd_, env.client_tracking),
      alive_(std::make_shared<client_core*>(this)) {
    fwd_.on_untracked_read = [this] { tracking_.untracked(); };
    fwd_.on_detached_done = [this] { wake_(); };
    fwd_.hears_own_write = [this](const command::owned_effect& e) { return tracking_.hears_own_write(e); };
    state_.set_db(env.settings.start_db);
    state_.now = steady_ms();
    state_.batch_start = std::chrono::steady_clock::now();
    state_.info->last_active_ms = state_.now;
}

client_core::~client_core() = default;

void client_core::bytes_arrived() {
    state_.now = steady_ms();
    state_.batch_start = std::chrono::steady_clock::now();
    reader_.new_batch(env_.coherence.catch_up_mark());  // caught up with (or a barrier passed) again before a hit
    if (state_.mode == mode::blocked && in_.size() > env_.settings.query_buffer_limit) client_gone();
}

client_core::next client_core::advance() {
    for (;;) {
        if (state_.mode == mode::closing)
            return queue_.discarding() || in_flight() == 0 ? next::close : next::wait;
        if (barrier_) return next::wait;
        if (state_.mode == mode::blocked || (state_.mode == mode::tunnel && tunnel_.ending())) return next::watch;
        switch (process_input()) {
            case halt::close:
                continue;
            case halt::barrier:
                start_barrier();
                continue;
            case halt::wait:
                if (in_flight() > 0 && state_.mode != mode::blocked) return next::wait;
                continue;  // nothing in flight any more (or blocked: watched above)
            case halt::batch_full:
                if (in_flight() > 0) return next::wait;
                release_pinned_if_done();
                return next::proceed;
            case halt::need_more:
                break;
        }
        if (state_.mode == mode::tunnel) return next::watch;
        if (in_flight() > 0) return next::wait;
        release_pinned_if_done();
        if (stop_requested_ && state_.mode == mode::normal) state_.mode = mode::draining;
        return stop_requested_ ? next::read_now : next::read;
    }
}

// Parses and dispatches every complete command buffered, until one needs what is in flight first.
client_core::halt client_core::process_input() {
    std::size_t dispatched = 0;
    state_.now = steady_ms();  // after a wait (a blocking command, a write) time has moved
    prefetch_pipelined_gets();
    for (;;) {
        const std::string_view input = in_.readable();
        const resp::parse_result r = parser_.parse(input);
        if (r.status == resp::parse_status::need_more) {
            if (in_.size() <= env_.settings.query_buffer_limit) return halt::need_more;
            log::limited("query-limit", spdlog::level::warn, "closing client: query buffer limit reached",
                         {{"client", state_.id()}, {"bytes", in_.size()}});
            state_.mode = mode::closing;
            return halt::close;
        }
        if (r.status == resp::parse_status::error) {
            protocol_error();
            return halt::close;
        }
        const command::args_view args = parser_.args();
        if (args.empty()) {
            in_.consume(r.consumed);
            continue;
        }
        if (parser_.last_was_inline()) {
            state_.rewritten.clear();
            resp::write_command(state_.rewritten, args);
            state_.raw = state_.rewritten;
        } else {
            state_.raw = input.substr(0, r.consumed);
        }
        current_reply_ = nullptr;
        queue_.begin_command();
        const step st = tracking_.mode().on ? dispatch_tracked(args) : dispatch(args);
        if (st == step::not_yet || st == step::barrier) {
            // Not dispatched: it runs once what is in flight has completed, or the barrier has passed.
            queue_.undo_begin();
            return st == step::not_yet ? halt::wait : halt::barrier;
        }
        // `args` and `raw` point into in_: consume only now, when nothing will read them any more.
        state_.info->note_command(args[0]);
        in_.consume(r.consumed);
        env_.stats.commands.add();
        state_.info->last_active_ms.store(state_.now, std::memory_order_relaxed);
        ++dispatched;
        if (state_.mode == mode::closing || check_output_limit()) return halt::close;
        if (st == step::wait_after || (state_.mode == mode::tunnel && tunnel_.ending())) return halt::wait;
        if (queue_.output().size() > kBatchBytes || dispatched >= kBatchCommands) return halt::batch_full;
    }
}

// A pipeline of GETs: their entries' memory is asked for together before the first is served, so that
// their lookups do not each wait for memory in turn. A hint only, so a lone GET (nothing to overlap) and
// a client whose GETs have entries of their own (another user's) are left alone.
void client_core::prefetch_pipelined_gets() {
    if (in_.size() < 2 * kMinGetBytes || !state_.cache_partition.empty() || !env_.cache.enabled()) return;
    std::array<std::string_view, kPrefetchGets> keys;
    const std::size_t n = resp::leading_get_keys(in_.readable(), keys);
    if (n < 2) return;
    for (std::size_t i = 0; i < n; ++i) env_.cache.prefetch(cache::make_key(state_.db, keys[i]));
}

void client_core::protocol_error() {
    env_.stats.protocol_errors.add();
    log::limited("protocol-error", spdlog::level::info, "closing client: protocol error",
                 {{"client", state_.id()}, {"addr", state_.info->addr}, {"error", parser_.error_text()}});
    current_reply_ = nullptr;
    queue_.unsuppress();
    reply().error(parser_.error_text());
    state_.mode = mode::closing;
}

// Redis checks that a command exists and that its arity is right before it asks for authentication.
std::string client_core::unauthenticated_error(const command::row* row, command::args_view args) const {
    const command::catalog* cat = env_.host.catalog();
    const command::command_info* info = cat != nullptr ? cat->find(args) : nullptr;
    if (cat != nullptr && info == nullptr) return command::unknown_command_error(args);
    if (info != nullptr && !info->subcommands.empty() && args.size() >= 2)
        return command::unknown_subcommand_error(args[1], info->name);  // find() found no such subcommand
    if (info != nullptr && !command::arity_ok(info->arity, args.size())) return command::wrong_arity_error(info->name);
    if (info == nullptr && row != nullptr && !command::arity_ok(row->arity, args.size()))
        return command::wrong_arity_error(row->name);
    return "NOAUTH Authentication required.";
}

client_core::step client_core::dispatch(command::args_view args) {
    const command::row* row = command::table::local().find(args[0]);
    if (state_.mode == mode::tunnel) return dispatch_in_tunnel(row, args);
    if (!auth_.authenticated() && (row == nullptr || (row->flags & command::local_no_auth) == 0)) {
        reply().error(unauthenticated_error(row, args));
        return step::done;
    }
    const bool queued = state_.mode == mode::transaction && (row == nullptr || (row->flags & command::local_in_multi) == 0);
    if (row != nullptr && !queued) return dispatch_row(*row, args);
    const command::catalog* cat = env_.host.catalog();
    const command::command_info* info = cat != nullptr ? cat->find(args) : nullptr;
    if (queued) {
        txn_.queue(args, info);
        return step::done;
    }
    if (cat != nullptr && info == nullptr) {
        reply().error(command::unknown_command_error(args));
        return step::done;
    }
    if (const command::read_policy* cached = env_.host.cache_plan().find(info)) {
        const auto served = reader_.serve(args, *cached, info);
        return served == read_through::outcome::wait_barrier ? step::barrier : step::done;
    }
    if (command::interrupts_script(args)) {
        fwd_.forward_alone();
        return step::wait_after;
    }
    if (command::may_block(args, info)) {
        if (in_flight() > 0) return step::not_yet;
        fwd_.forward_blocking(args, info);
        return step::wait_after;
    }
    fwd_.forward(args, info);
    return step::done;
}

// A command of a client with CLIENT TRACKING on: a read it is to hear of is tracked in Redis and its keys
// remembered once it is dispatched. A read served from the cache (or joining a fill in flight) is
// remembered with a mark taken before it: the channel may have dropped its entry, and told the table, in
// between, and then the client is told at once (tracking_table::remember).
client_core::step client_core::dispatch_tracked(command::args_view args) {
    const command::catalog* cat = env_.host.catalog();
    const command::command_info* info = cat != nullptr ? cat->find(args) : nullptr;
    const bool wanted = tracking_.wants(args, info);
    state_.track_read = wanted;
    state_.from_cache = false;
    const std::uint64_t mark = wanted ? env_.client_tracking.mark() : 0;
    const step st = dispatch(args);
    state_.track_read = false;
    if (st == step::done || st == step::wait_after)
        tracking_.dispatched(args, info, wanted, wanted && state_.from_cache ? &mark : nullptr);
    return st;
}

client_core::tracking_support client_core::tracking_available() const noexcept {
    if (env_.coherence.invalidation() == coherence::invalidation_mode::ttl) return tracking_support::no_channel;
    if (!env_.coherence.tracking_wanted()) return tracking_support::not_in_backend;
    return tracking_support::yes;
}

void client_core::deliver_tracking(const command::tracking_message& m) {
    tracking_.deliver(m);
    check_output_limit();
    wake_();
}

client_core::step client_core::dispatch_row(const command::row& row, command::args_view args) {
    if (!command::arity_ok(row.arity, args.size())) {
        reply().error(command::wrong_arity_error(row.name));
        return step::done;
    }
    if ((row.flags & command::local_wait_before) && in_flight() > 0) return step::not_yet;
    current_row_ = &row;
    row.fn(*this, args);
    if (barrier_wanted_) {
        barrier_wanted_ = false;
        return step::barrier;
    }
    return (row.flags & command::local_wait_after) ? step::wait_after : step::done;
}

client_core::step client_core::dispatch_in_tunnel(const command::row* row, command::args_view args) {
    // QUIT and RESET run here (they end the tunnel); a RESP3 subscriber's CLIENT and INFO too, once the
    // replies to what it sent before have been relayed; everything else goes to the dedicated link,
    // whose Redis answers it in order, errors included.
    if (row != nullptr && (row->flags & command::local_in_pubsub) && command::arity_ok(row->arity, args.size())) {
        row->fn(*this, args);
        return step::done;
    }
    if (row != nullptr && (row->flags & command::local_in_resp3_pubsub) && state_.proto == resp::protocol::resp3) {
        if (!tunnel_.synced()) return step::not_yet;
        const step st = dispatch_row(*row, args);
        // Answered by Redis on another link (INFO): what the client sends next waits for that reply.
        return in_flight() > 0 ? step::wait_after : st;
    }
    const command::catalog* cat = env_.host.catalog();
    tunnel_.send(args, cat != nullptr ? cat->find(args) : nullptr);
    return step::done;
}

void client_core::start_barrier() {
    barrier_ = std::make_shared<barrier_wait>(*this);
    host& h = env_.host;
    // Always answered: the barrier passes, or the channel is declared lost (a PING timeout at worst),
    // which fails it; or the client is gone meanwhile (the answer then finds nobody waiting).
    env_.coherence.await_barrier([weak = std::weak_ptr<barrier_wait>(barrier_), &h](bool ok) {
        h.post([weak, ok] {
            if (auto b = weak.lock()) b->answered(ok);
        });
    });
}

void client_core::barrier_answered(bool ok) {
    reader_.barrier_done(ok);
    barrier_.reset();
    wake_();
}

// A tracking client's write of a key it tracks has its reply: Redis has sent that key's invalidation
// to the channel already, so a barrier sent now is answered once it has been handed to this client
// (queued behind the reply, which has not been finished yet). Still in flight until then.
void client_core::await_echo(pending& p) {
    p.await_echo = false;
    host& h = env_.host;
    env_.coherence.await_barrier([weak = std::weak_ptr<client_core*>(alive_), &p, &h](bool) {
        h.post([weak, &p] {
            if (auto self = weak.lock()) (*self)->completed(p);
        });
    });
}

void client_core::release_pinned_if_done() {
    if (!fwd_.pinned() || in_flight() > 0 || state_.mode == mode::tunnel) return;
    if (!fwd_.pinned_broken() && (state_.mode == mode::transaction || txn_.watching())) return;
    if (fwd_.pinned_broken()) txn_.forget();
    fwd_.release(true);
}

bool client_core::check_output_limit() {
    const auto& s = env_.settings;
    const bool tunnel = state_.mode == mode::tunnel;
    const std::size_t limit = (tunnel ? s.pubsub_output_buffer_limit : s.output_buffer_limit).load(std::memory_order_relaxed);
    const std::size_t unwritten = queue_.unwritten();
    if (limit == 0 || unwritten <= limit || queue_.discarding()) return false;
    env_.stats.output_limit_disconnects.add();
    log::limited("output-limit", spdlog::level::warn,
                 tunnel ? "closing subscriber: output buffer limit reached" : "closing client: output buffer limit reached",
                 {{"client", state_.id()}, {"bytes", unwritten}, {"limit", limit}});
    client_gone();
    return true;
}

void client_core::client_gone() {
    if (state_.mode == mode::tunnel) tunnel_.abandon();
    // A blocking command is cancelled in Redis when its link closes; a subscriber's link goes with it.
    if (state_.mode == mode::blocked || state_.mode == mode::tunnel) fwd_.release(false);
    state_.mode = mode::closing;
    queue_.discard();
    wake_();
}

void client_core::stop() {
    if (state_.mode == mode::tunnel) return client_gone();  // a subscriber is never idle
    stop_requested_ = true;
    wake_();
}

void client_core::finish() {
    if (state_.mode != mode::closing) state_.mode = mode::closing;
}

void client_core::completed(pending& p) {
    if (p.await_echo && !p.errored) return await_echo(p);
    fwd_.answered(p);
    queue_.finished(p);
    check_output_limit();
    wake_();
}

void client_core::tunnel_output() {
    check_output_limit();
    wake_();
}

void client_core::tunnel_done(tunnel_end how) {
    switch (how) {
        case tunnel_end::left:
            state_.mode = mode::normal;  // the link is given back once nothing is in flight
            break;
        case tunnel_end::quit:
            resp::reply_builder(&queue_.output(), state_.proto).ok();
            state_.mode = mode::closing;
            fwd_.release(false);
            break;
        case tunnel_end::reset:
            state_.mode = mode::normal;
            reset();
            break;
        case tunnel_end::failed:
            state_.mode = mode::closing;
            fwd_.release(false);
            break;
    }
    wake_();
}

}  // namespace respcache::proxy
