#include "respcache/proxy/read_through.hpp"

#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::proxy {

// A miss: [CLIENT TRACKING on ...] [CLIENT CACHING yes] <the read> PTTL key. The reply is the client's
// in any case; it is inserted if the policy keeps it and coherence allows (tracker::may_fill).
class read_through::fill_request final : public pending {
public:
    fill_request(slot_home& home, read_through& owner) : pending(home, owner.p_.sink), owner_(owner) {}

    std::string key;  // the key's name (kept across reuse, for its capacity)
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
        std::chrono::steady_clock::time_point batch_start;
    } f;

    void complete() override {
        environment& env = owner_.p_.env;
        env.stats.miss_latency.record(std::chrono::steady_clock::now() - f.batch_start);
        if (!f.fill_ok || errored || !got_reply) return;
        if (!f.policy->keeps(data, env.settings.max_value_size.load(std::memory_order_relaxed))) return;
        if (!env.coherence.may_fill(f.ticket, *f.tracking, *link)) return;
        env.cache.fill({f.db, key, f.hash}, f.token, data, steady_ms(), f.key_expires);
    }

protected:
    void clear() override {
        pending::clear();
        key.clear();
        f = facts{};
    }

    void prelude_reply(std::size_t index, std::string_view bytes) override {
        if (resp::is_ok(bytes)) return;
        f.fill_ok = false;
        if (index == 0) owner_.p_.env.coherence.prelude_refused(*f.tracking, f.ticket);
    }

    void trailing_reply(std::size_t, std::string_view bytes) override {
        // PTTL: cap the entry's life by the key's own (-1: no expiry; -2 or 0: already gone).
        auto ttl = resp::integer_value(bytes);
        if (!ttl || *ttl == -2 || *ttl == 0)
            f.fill_ok = false;
        else if (*ttl > 0)
            f.key_expires = f.sent_ms + *ttl;
    }

    void failed() override { f.fill_ok = false; }

private:
    read_through& owner_;
};

read_through::read_through(core_parts parts, forwarder& fwd) : p_(parts), fwd_(fwd), fills_(*this) {}

read_through::~read_through() = default;

read_through::outcome read_through::serve(command::args_view args, const command::read_policy& policy) {
    if (fwd_.pinned()) {
        // WATCH (or another state) holds a dedicated link: the client is doing read-modify-write, so it
        // reads Redis itself; and an entry filled through a link that goes away with the client would
        // lose its invalidations.
        fwd_.forward(args);
        return outcome::served;
    }
    auto& cache = p_.env.cache;
    const cache::key k = cache::make_key(p_.client.db, args[policy.key_index]);
    const bool cacheable = cache.enabled() && !fwd_.write_in_flight(k) && !p_.env.coherence.cache_refused();
    bool may_hit = cacheable;
    if (cacheable) {
        const auto verdict = gate_.check(p_.env.coherence);
        if (verdict == coherence::read_gate::verdict::wait_barrier) return outcome::wait_barrier;
        may_hit = verdict == coherence::read_gate::verdict::serve;
    }
    if (may_hit) {
        if (cache.lookup(k, p_.client.now, p_.queue.local_target())) {
            p_.env.stats.hits.add();
            p_.env.stats.hit_latency.record(std::chrono::steady_clock::now() - p_.client.batch_start);
            return outcome::served;
        }
        p_.queue.abandon_local();  // the miss takes a slot of its own
    }
    p_.env.stats.misses.add();
    if (!cacheable || (p_.env.coherence.tracking_wanted() && !p_.env.coherence.live())) {
        fwd_.forward(args);  // nothing will be cached: a plain forward
        return outcome::served;
    }
    fill(k, policy);
    return outcome::served;
}

void read_through::fill(const cache::key& k, const command::read_policy& policy) {
    fill_request& r = p_.queue.push_new(fills_);
    r.key.assign(k.name);
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
