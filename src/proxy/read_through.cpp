#include "respcache/proxy/read_through.hpp"

#include "respcache/command/cache_plan.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::proxy {

namespace {
constexpr std::string_view kNil2 = "$-1\r\n";  // how a missing key's null is kept (GET's entries)
constexpr std::string_view kNil3 = "_\r\n";
}  // namespace

// A miss: [CLIENT TRACKING on ...] [CLIENT CACHING yes] <the read> PTTL key. The reply is the client's
// in any case; it is inserted if the policy keeps it and coherence allows (tracker::may_fill).
class read_through::fill_request final : public pending {
public:
    fill_request(slot_home& home, read_through& owner) : pending(home, owner.p_.sink), owner_(owner) {}

    std::string key;      // the key's name (kept across reuse, for its capacity)
    std::string variant;  // the entry's variant
    // Everything else a fill needs, reset whole for each reuse.
    struct facts {
        std::uint32_t db = 0;
        std::uint64_t hash = 0;
        cache::fill_token token;
        coherence::fill_ticket ticket;
        coherence::link_tracking* tracking = nullptr;
        const command::read_policy* policy = nullptr;
        cache::millis sent_ms = 0;
        cache::millis key_expires = INT64_MAX;
        bool fill_ok = true;
        bool key_missing = false;  // PTTL said -2
        std::chrono::steady_clock::time_point batch_start;
    } f;

    void complete() override {
        environment& env = owner_.p_.env;
        env.stats.miss_latency.record(std::chrono::steady_clock::now() - f.batch_start);
        if (!f.fill_ok || errored || !got_reply) return;
        if (!f.policy->keeps(data, env.settings.max_value_size.load(std::memory_order_relaxed))) return;
        if (!env.coherence.may_fill(f.ticket, *f.tracking, *link)) return;
        std::string_view reply = data;
        if (!keeps_for_key(reply)) return;
        env.cache.fill({f.db, key, f.hash, variant}, f.token, reply, steady_ms(), f.key_expires);
    }

protected:
    void clear() override {
        pending::clear();
        key.clear();
        variant.clear();
        f = facts{};
    }

    void prelude_reply(std::size_t index, std::string_view bytes) override {
        if (resp::is_ok(bytes)) return;
        f.fill_ok = false;
        if (index == 0) owner_.p_.env.coherence.prelude_refused(*f.tracking, f.ticket);
    }

    void trailing_reply(std::size_t, std::string_view bytes) override {
        // PTTL: cap the entry's life by the key's own (-1: no expiry; -2: no such key; 0: about to go).
        auto ttl = resp::integer_value(bytes);
        if (!ttl || *ttl == 0)
            f.fill_ok = false;
        else if (*ttl == -2)
            f.key_missing = true;
        else if (*ttl > 0)
            f.key_expires = f.sent_ms + *ttl;
    }

    void failed() override { f.fill_ok = false; }

private:
    // What the reply says of the key must agree with PTTL's answer, which came after it: a read of a key
    // that was missing is kept only with negative caching (a GET's null in one form for both protocols);
    // a GET that found a value, or a null for a key that exists, is never kept.
    bool keeps_for_key(std::string_view& reply) const {
        const bool null = resp::is_null(reply);
        if (f.policy->shape == command::read_policy::form::value) {
            if (null != f.key_missing) return false;
            if (null) reply = kNil2;
        }
        return !f.key_missing || owner_.p_.env.settings.cache_missing_keys.load(std::memory_order_relaxed);
    }

    read_through& owner_;
};

read_through::read_through(core_parts parts, forwarder& fwd) : p_(parts), fwd_(fwd), fills_(*this) {}

read_through::~read_through() = default;

read_through::outcome read_through::serve(command::args_view args, const command::read_policy& policy,
                                          const command::command_info* info) {
    // WATCH (or another state) holds a dedicated link: the client is doing read-modify-write, so it reads
    // Redis itself; and an entry filled through a link that goes away with the client would lose its
    // invalidations. A read of other than one key is not the policy's either.
    const bool one_key = policy.key_index < args.size() && (!policy.key_last || policy.key_index + 1 == args.size());
    if (fwd_.pinned() || !one_key) {
        fwd_.forward(args, info);
        return outcome::served;
    }
    if (policy.shape == command::read_policy::form::reply)
        command::reply_variant(p_.client.proto, info->name, args, policy.key_index, variant_);
    else
        variant_.clear();
    const cache::key k = cache::make_key(p_.client.db, args[policy.key_index], variant_);
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
    if (!cacheable || (p_.env.coherence.tracking_wanted() && !p_.env.coherence.live())) {
        fwd_.forward(args, info);  // nothing will be cached: a plain forward
        return outcome::served;
    }
    fill(k, policy);
    return outcome::served;
}

std::optional<bool> read_through::may_hit(const cache::key& k, bool& cacheable) {
    auto& cache = p_.env.cache;
    cacheable = cache.enabled() && !fwd_.write_in_flight(k) && !p_.env.coherence.cache_refused();
    if (!cacheable) return false;
    const auto verdict = gate_.check(p_.env.coherence);
    if (verdict == coherence::read_gate::verdict::wait_barrier) return std::nullopt;
    return verdict == coherence::read_gate::verdict::serve;
}

bool read_through::lookup(const cache::key& k, const command::read_policy& policy) {
    std::string& out = p_.queue.local_target();
    const std::size_t at = out.size();
    if (!p_.env.cache.lookup(k, p_.client.now, out)) {
        p_.queue.abandon_local();  // the miss takes a slot of its own
        return false;
    }
    // A missing key's null, kept once for both protocols.
    if (policy.shape == command::read_policy::form::value && p_.client.proto == resp::protocol::resp3 &&
        std::string_view(out).substr(at) == kNil2)
        out.replace(at, kNil2.size(), kNil3);
    p_.env.stats.hits.add();
    p_.env.stats.hit_latency.record(std::chrono::steady_clock::now() - p_.client.batch_start);
    return true;
}

void read_through::fill(const cache::key& k, const command::read_policy& policy) {
    fill_request& r = p_.queue.push_new(fills_);
    r.key.assign(k.name);
    r.variant.assign(k.variant);
    auto& f = r.f;
    f.db = k.db;
    f.hash = k.hash;
    f.policy = &policy;
    f.token = p_.env.cache.begin_fill(k);
    f.sent_ms = steady_ms();
    f.batch_start = p_.client.batch_start;
    f.tracking = &fwd_.shared_tracking();
    backend::link& l = fwd_.shared_link();
    request_.clear();
    std::uint32_t n = 0;
    f.ticket = p_.env.coherence.prepare_fill(*f.tracking, l, request_, n);
    r.client_index = n;
    request_.append(p_.client.raw);
    resp::write_command(request_, {"PTTL", k.name});
    n += 2;
    fwd_.send(r, request_, n, p_.env.settings.request_timeout());
}

}  // namespace respcache::proxy
