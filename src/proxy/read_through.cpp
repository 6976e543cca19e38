#include "respcache/proxy/read_through.hpp"

#include "read_requests.hpp"

namespace respcache::proxy {

read_through::read_through(core_parts parts, forwarder& fwd)
    : p_(parts),
      fwd_(fwd),
      refreshes_done_(std::make_unique<refresh_sink>(*this)),
      fills_(*this),
      refreshes_(*this),
      manys_(*this),
      waits_(*this) {}

read_through::~read_through() = default;

read_through::outcome read_through::serve(command::args_view args, const command::read_policy& policy,
                                          const command::command_info* info) {
    // WATCH (or another state) holds a dedicated link: the client is doing read-modify-write, so it reads
    // Redis itself; and an entry filled through a link that goes away with the client would lose its
    // invalidations. A read of other than one key is not the policy's either.
    const bool one_key = policy.key_index < args.size() && (!policy.key_last || policy.key_index + 1u == args.size());
    if (fwd_.pinned() || !one_key) {
        fwd_.forward(args, info);
        return outcome::served;
    }
    if (policy.shape == command::read_policy::form::reply)
        command::reply_variant(p_.client.proto, info->name, args, policy.key_index, variant_);
    else
        variant_.clear();
    if (!p_.client.cache_partition.empty()) variant_.insert(0, p_.client.cache_partition);
    const cache::key k = cache::make_key(p_.client.db, args[policy.key_index], variant_);
    // Hot keys are shown by INFO to any client: never the names another user's clients read.
    if (p_.client.cache_partition.empty()) p_.env.stats.hot.read(k.db, k.name);
    bool cacheable = false;
    const std::optional<bool> hits = may_hit(k, cacheable);
    if (!hits) return outcome::wait_barrier;
    auto& counts = p_.env.stats.cached_commands[policy.stat];
    if (*hits && lookup(k, policy)) {
        counts.hits.add();
        return outcome::served;
    }
    p_.env.stats.misses.add();
    counts.misses.add();
    if (!cacheable || !may_fill_now()) {
        fwd_.forward(args, info);  // nothing will be cached: a plain forward
        return outcome::served;
    }
    join_or_fill(k, policy, *hits);
    return outcome::served;
}

std::optional<bool> read_through::may_hit(const cache::key& k, bool& cacheable) {
    auto& cache = p_.env.cache;
    cacheable = cache.enabled() && !fwd_.write_in_flight(k) && !p_.env.coherence.cache_refused();
    if (!cacheable) return false;
    const auto verdict = gate_.check(p_.env.coherence);
    if (verdict == coherence::read_gate::verdict::wait_barrier) return std::nullopt;
    stale_ = false;
    if (verdict == coherence::read_gate::verdict::serve) return true;
    // --stale-if-error: what a loss left in the cache, while this client's way to Redis is down.
    stale_ = p_.env.coherence.stale_servable() && fwd_.backend_down();
    return stale_;
}

bool read_through::lookup(const cache::key& k, const command::read_policy& policy) {
    std::string& out = p_.queue.local_target();
    const std::size_t at = out.size();
    bool stale_soon = false;
    if (!p_.env.cache.lookup(k, p_.client.now, out, &stale_soon)) {
        p_.queue.abandon_local();  // the miss takes a slot of its own
        return false;
    }
    if (stale_soon) refresh(k, policy, p_.client.raw);
    // A missing key's null, kept once for both protocols.
    if (policy.shape == command::read_policy::form::value && p_.client.proto == resp::protocol::resp3 &&
        std::string_view(out).substr(at) == kNil2)
        out.replace(at, kNil2.size(), kNil3);
    p_.env.stats.hits.add();
    p_.client.from_cache = true;
    if (stale_) p_.env.stats.stale_hits.add();
    p_.env.stats.hit_latency.record(std::chrono::steady_clock::now() - p_.client.batch_start);
    return true;
}

// A miss waits for another client's fill of the same entry in flight, or becomes the one others wait for.
void read_through::join_or_fill(const cache::key& k, const command::read_policy& policy, bool may_join) {
    if (!may_join) {  // behind the channel: a fill in flight may have begun before a write this batch saw
        fill_request& r = p_.queue.push_new(fills_);
        r.f.token = p_.env.cache.begin_fill(k);
        return start_fill(r, k, policy, p_.client.raw, true);
    }
    auto w = waits_.take();
    auto waiter = w->waiter();
    cache::fill_token token;
    std::uint64_t flight = 0;
    if (!p_.env.cache.join_or_lead(k, waiter, token, flight)) {
        waits_.give_back(std::move(w));
        fill_request& r = p_.queue.push_new(fills_);
        r.f.token = token;
        r.f.flight = flight;
        r.keep_reply = flight != 0;
        return start_fill(r, k, policy, p_.client.raw, true);
    }
    w->policy = &policy;
    shared_wait& r = *w;
    p_.queue.push(std::move(w));
    fwd_.waiting(r);
    p_.client.from_cache = true;
    p_.env.stats.shared_misses.add();
}

std::uint32_t read_through::begin_tracked(coherence::fill_ticket& ticket, coherence::link_tracking*& tracking,
                                          bool known_tracked) {
    tracking = &fwd_.shared_tracking();
    request_.clear();
    std::uint32_t n = 0;
    ticket = p_.env.coherence.prepare_fill(*tracking, fwd_.shared_link(), request_, n, known_tracked);
    return n;
}

void read_through::refresh(const cache::key& k, const command::read_policy& policy, std::string_view command) {
    if (!may_fill_now() || fwd_.write_in_flight(k)) return;
    refresh_request& r = *refreshes_.take().release();  // the link's until refresh_sink gives it back
    r.keep_reply = true;
    r.f.token = p_.env.cache.begin_fill(k);
    start_fill(r, k, policy, command, false);
    p_.env.stats.refreshes.add();
}

void read_through::start_fill(fill_request& r, const cache::key& k, const command::read_policy& policy,
                              std::string_view command, bool for_client) {
    r.key.assign(k.name);
    r.variant.assign(k.variant);
    auto& f = r.f;  // token (and flight) already set
    f.db = k.db;
    f.hash = k.hash;
    f.policy = &policy;
    f.sent_ms = steady_ms();
    f.batch_start = p_.client.batch_start;
    const std::uint32_t n = begin_tracked(f.ticket, f.tracking, f.token.tracked);
    r.client_index = n;
    request_.append(command);
    resp::write_command(request_, {"PTTL", k.name});
    if (for_client)
        fwd_.send(r, request_, n + 2, p_.env.settings.request_timeout());
    else
        fwd_.send_detached(r, k.db, request_, n + 2, p_.env.settings.request_timeout());
}

// A GET entry that an MGET hit is refreshed by a GET of its key.
void read_through::refresh_value(const cache::key& k) {
    command_scratch_.clear();
    resp::write_command(command_scratch_, {"GET", k.name});
    refresh(k, get_policy(), command_scratch_);
}

void read_through::hand_over(std::uint32_t db, std::string_view name, std::uint64_t hash, std::uint64_t flight) {
    const cache::key k{db, name, hash, {}};
    refresh_request& r = *refreshes_.take().release();  // the link's until refresh_sink gives it back
    r.keep_reply = true;
    r.f.token = p_.env.cache.begin_fill(k);
    r.f.flight = flight;
    std::string command;  // not command_scratch_: this runs in a reply's completion, maybe within a refresh
    resp::write_command(command, {"GET", name});
    start_fill(r, k, get_policy(), command, false);
}

bool read_through::needs_catch_up() const noexcept {
    const auto& c = p_.env.coherence;
    return p_.env.cache.enabled() && c.tracking_wanted() && !c.strict_reads() && gate_.needs_check(c);
}

bool read_through::may_fill_now() const noexcept {
    const auto& c = p_.env.coherence;
    return p_.env.cache.enabled() && !c.cache_refused() && !(c.tracking_wanted() && !c.live());
}

}  // namespace respcache::proxy
