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
class read_through::fill_request : public pending {
public:
    fill_request(slot_home& home, read_through& owner) : fill_request(home, owner, owner.p_.sink) {}

    std::string key;      // the key's name (kept across reuse, for its capacity)
    std::string variant;  // the entry's variant
    // Everything else a fill needs, reset whole for each reuse.
    struct facts {
        std::uint32_t db = 0;
        std::uint64_t hash = 0;
        cache::fill_token token;
        std::uint64_t flight = 0;  // lru_cache::share_fill's id: other clients may wait for this reply
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
        if (f.flight != 0) env.stats.miss_latency.record(std::chrono::steady_clock::now() - f.batch_start);
        env.cache.end_fill({f.db, key, f.hash, variant}, f.flight, data, got_reply && !errored);
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

protected:
    fill_request(slot_home& home, read_through& owner, completion_sink& sink) : pending(home, sink), owner_(owner) {}

    read_through& owner_;
};

// Where refreshes end: they were in flight like any request, and go back to their pool.
class read_through::refresh_sink final : public completion_sink {
public:
    explicit refresh_sink(read_through& owner) : owner_(owner) {}
    void completed(pending& p) override {
        p.home().give_back(std::unique_ptr<slot>(&p));
        owner_.fwd_.detached_done(p);
    }
    bool discarding() const noexcept override { return true; }

private:
    read_through& owner_;
};

// A hit's entry read again before its TTL ends (--refresh-ahead): a fill whose reply goes to no client.
class read_through::refresh_request final : public fill_request {
public:
    refresh_request(slot_home& home, read_through& owner) : fill_request(home, owner, *owner.refreshes_done_) {}
};

// MGET's keys the cache did not have: [prelude] MGET <those keys> PTTL <each>. Each value is inserted as
// a GET entry if its PTTL agrees; the client's reply is the hits and the fetched values, in its order.
class read_through::many_request final : public pending {
public:
    many_request(slot_home& home, read_through& owner) : pending(home, owner.p_.sink), owner_(owner) {}

    static constexpr std::uint32_t kFetched = UINT32_MAX;
    struct element {
        std::uint32_t at;   // a hit: its offset in `found`; a key fetched: kFetched
        std::uint32_t len;  // a hit: its length; a key fetched: its index among the fetched
    };
    std::string found;              // the hits' encoded elements, back to back
    std::vector<element> order;     // per key of the client's MGET
    std::vector<std::string> names;  // the keys fetched (strings kept across reuse)
    struct fetched {
        cache::fill_token token;
        std::uint64_t hash = 0;
        std::int64_t pttl = 0;
        bool fillable = false;  // no write of it was in flight
    };
    std::vector<fetched> keys;
    std::size_t fetch_count = 0;  // names[0..fetch_count) are in use
    struct facts {
        std::uint32_t db = 0;
        coherence::fill_ticket ticket;
        coherence::link_tracking* tracking = nullptr;
        const command::read_policy* policy = nullptr;
        cache::millis sent_ms = 0;
        bool fill_ok = true;
    } f;

    void add_fetched(std::string_view name, bool fillable) {
        if (names.size() == fetch_count) names.emplace_back();
        names[fetch_count].assign(name);
        keys.push_back({{}, cache::hash_name(name), 0, fillable});
        order.push_back({kFetched, static_cast<std::uint32_t>(fetch_count++)});
    }

    void complete() override {
        if (errored || !got_reply) return;
        const auto values = resp::array_elements(data);
        if (!values || values->size() != fetch_count) return;  // an error: the client gets it as it is
        if (f.fill_ok && owner_.p_.env.coherence.may_fill(f.ticket, *f.tracking, *link)) fill_all(*values);
        assembled_.clear();
        assembled_.append("*").append(std::to_string(order.size())).append("\r\n");
        for (const element& e : order)
            if (e.at == kFetched)
                assembled_.append((*values)[e.len]);
            else
                assembled_.append(found, e.at, e.len);
        data.swap(assembled_);
    }

protected:
    void clear() override {
        pending::clear();
        found.clear();
        order.clear();
        keys.clear();
        fetch_count = 0;
        f = facts{};
    }
    void prelude_reply(std::size_t index, std::string_view bytes) override {
        if (resp::is_ok(bytes)) return;
        f.fill_ok = false;
        if (index == 0) owner_.p_.env.coherence.prelude_refused(*f.tracking, f.ticket);
    }
    void trailing_reply(std::size_t index, std::string_view bytes) override {
        const std::size_t j = index - client_index - 1;
        if (j < keys.size()) keys[j].pttl = resp::integer_value(bytes).value_or(0);
    }
    void failed() override { f.fill_ok = false; }

private:
    void fill_all(const std::vector<std::string_view>& values) {
        environment& env = owner_.p_.env;
        const std::size_t max_value = env.settings.max_value_size.load(std::memory_order_relaxed);
        const bool negative = env.settings.cache_missing_keys.load(std::memory_order_relaxed);
        const cache::millis now = steady_ms();
        for (std::size_t j = 0; j < fetch_count; ++j) {
            const fetched& k = keys[j];
            std::string_view value = values[j];
            const bool null = resp::is_null(value);
            // As for GET: PTTL must agree with the value (-2 with a null), and 0 means about to go.
            if (!k.fillable || k.pttl == 0 || k.pttl < -2 || null != (k.pttl == -2)) continue;
            if ((null && !negative) || !f.policy->keeps(value, max_value)) continue;
            if (null) value = kNil2;
            const cache::millis expires = k.pttl > 0 ? f.sent_ms + k.pttl : INT64_MAX;
            env.cache.fill({f.db, names[j], k.hash, {}}, k.token, value, now, expires);
        }
    }

    read_through& owner_;
    std::string assembled_;
};

// A miss that waits for another client's fill of the same entry (lru_cache::join_fill): its reply is
// posted to this client's thread when that fill's reply comes.
class read_through::shared_wait final : public pending {
public:
    shared_wait(slot_home& home, read_through& owner) : pending(home, owner.p_.sink), owner_(owner) {}

    const command::read_policy* policy = nullptr;

    // On the leader's thread: the reply is copied and handed to this client's thread.
    cache::lru_cache::fill_waiter waiter() {
        return [this, &host = owner_.p_.env.host](const std::shared_ptr<const std::string>& reply, bool answered) {
            host.post([this, reply, answered] { arrived(*reply, answered); });
        };
    }

private:
    void arrived(std::string_view bytes, bool answered) {
        // GET's null in this client's protocol (the fill's client may speak the other one).
        if (answered && policy->shape == command::read_policy::form::value && resp::is_null(bytes))
            bytes = owner_.p_.client.proto == resp::protocol::resp3 ? kNil3 : kNil2;
        deliver(bytes, answered);
    }

    read_through& owner_;
};

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
    p_.env.stats.hot.read(k.db, k.name);
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
    if (!join(k, policy)) fill(k, policy);
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
    p_.env.stats.hit_latency.record(std::chrono::steady_clock::now() - p_.client.batch_start);
    return true;
}

bool read_through::join(const cache::key& k, const command::read_policy& policy) {
    auto w = waits_.take();
    auto waiter = w->waiter();
    if (!p_.env.cache.join_fill(k, waiter)) {
        waits_.give_back(std::move(w));
        return false;
    }
    w->policy = &policy;
    shared_wait& r = *w;
    p_.queue.push(std::move(w));
    fwd_.waiting(r);
    p_.env.stats.shared_misses.add();
    return true;
}

std::uint32_t read_through::begin_tracked(coherence::fill_ticket& ticket, coherence::link_tracking*& tracking) {
    tracking = &fwd_.shared_tracking();
    request_.clear();
    std::uint32_t n = 0;
    ticket = p_.env.coherence.prepare_fill(*tracking, fwd_.shared_link(), request_, n);
    return n;
}

void read_through::fill(const cache::key& k, const command::read_policy& policy) {
    start_fill(p_.queue.push_new(fills_), k, policy, p_.client.raw, true);
}

void read_through::refresh(const cache::key& k, const command::read_policy& policy, std::string_view command) {
    if (!may_fill_now() || fwd_.write_in_flight(k)) return;
    refresh_request& r = *refreshes_.take().release();  // the link's until refresh_sink gives it back
    r.keep_reply = true;
    start_fill(r, k, policy, command, false);
    p_.env.stats.refreshes.add();
}

void read_through::start_fill(fill_request& r, const cache::key& k, const command::read_policy& policy,
                              std::string_view command, bool for_client) {
    r.key.assign(k.name);
    r.variant.assign(k.variant);
    auto& f = r.f;
    f.db = k.db;
    f.hash = k.hash;
    f.policy = &policy;
    f.token = p_.env.cache.begin_fill(k);
    if (for_client) {
        f.flight = p_.env.cache.share_fill(k, f.token);
        r.keep_reply = f.flight != 0;
    }
    f.sent_ms = steady_ms();
    f.batch_start = p_.client.batch_start;
    const std::uint32_t n = begin_tracked(f.ticket, f.tracking);
    r.client_index = n;
    request_.append(command);
    resp::write_command(request_, {"PTTL", k.name});
    if (for_client)
        fwd_.send(r, request_, n + 2, p_.env.settings.request_timeout());
    else
        fwd_.send_detached(r, request_, n + 2, p_.env.settings.request_timeout());
}

// A GET entry that an MGET hit is refreshed by a GET of its key.
void read_through::refresh_value(const cache::key& k) {
    const command::row* get = command::table::local().find("get");
    command_scratch_.clear();
    resp::write_command(command_scratch_, {"GET", k.name});
    refresh(k, *get->read, command_scratch_);
}

bool read_through::may_fill_now() const noexcept {
    const auto& c = p_.env.coherence;
    return p_.env.cache.enabled() && !c.cache_refused() && !(c.tracking_wanted() && !c.live());
}

read_through::outcome read_through::serve_many(command::args_view args, const command::read_policy& policy) {
    if (fwd_.pinned()) {
        fwd_.forward(args);
        return outcome::served;
    }
    bool hits_allowed = false;
    if (p_.env.cache.enabled() && !p_.env.coherence.cache_refused()) {
        const auto verdict = gate_.check(p_.env.coherence);
        if (verdict == coherence::read_gate::verdict::wait_barrier) return outcome::wait_barrier;
        hits_allowed = verdict == coherence::read_gate::verdict::serve;
    }
    const bool fills = may_fill_now();
    if (!hits_allowed && !fills) {
        p_.env.stats.misses.add(args.size() - 1);
        p_.env.stats.cached_commands[policy.stat].misses.add();
        fwd_.forward(args);
        return outcome::served;
    }
    const std::size_t hits = lookup_each(args, hits_allowed);
    auto& counts = p_.env.stats.cached_commands[policy.stat];
    const std::size_t n = args.size() - 1;
    p_.env.stats.hits.add(hits);
    p_.env.stats.misses.add(n - hits);
    if (hits == n) {  // the hits' elements are the reply, in order
        std::string& out = p_.queue.local_target();
        out.append("*").append(std::to_string(n)).append("\r\n").append(found_);
        counts.hits.add();
        p_.env.stats.hit_latency.record(std::chrono::steady_clock::now() - p_.client.batch_start);
        return outcome::served;
    }
    (hits == 0 ? counts.misses : counts.partial).add();
    many_request& r = p_.queue.push_new(manys_);
    r.found.swap(found_);
    std::uint32_t at = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (found_len_[i] >= 0) {
            const auto len = static_cast<std::uint32_t>(found_len_[i]);
            r.order.push_back({at, len});
            at += len;
            continue;
        }
        const cache::key k = cache::make_key(p_.client.db, args[i + 1]);
        r.add_fetched(args[i + 1], fills && !fwd_.write_in_flight(k) && cache::lru_cache::cacheable_key(k));
    }
    fetch_missing(r, policy);
    return outcome::served;
}

// Each key of an MGET looked up: the hits' elements appended to found_, in the client's protocol; per
// key, found_len_ is the element's length, or -1 for a key to fetch. Returns the hits.
std::size_t read_through::lookup_each(command::args_view args, bool hits_allowed) {
    found_.clear();
    found_len_.clear();
    std::size_t hits = 0;
    for (std::size_t i = 1; i < args.size(); ++i) {
        const cache::key k = cache::make_key(p_.client.db, args[i]);
        p_.env.stats.hot.read(k.db, k.name);
        const std::size_t at = found_.size();
        bool stale_soon = false;
        if (hits_allowed && !fwd_.write_in_flight(k) && p_.env.cache.lookup(k, p_.client.now, found_, &stale_soon)) {
            if (stale_soon) refresh_value(k);
            if (p_.client.proto == resp::protocol::resp3 && std::string_view(found_).substr(at) == kNil2)
                found_.replace(at, kNil2.size(), kNil3);
            found_len_.push_back(static_cast<std::int64_t>(found_.size() - at));
            ++hits;
        } else {
            found_len_.push_back(-1);
        }
    }
    return hits;
}

void read_through::fetch_missing(many_request& r, const command::read_policy& policy) {
    auto& f = r.f;
    f.db = p_.client.db;
    f.policy = &policy;
    for (std::size_t j = 0; j < r.fetch_count; ++j)
        if (r.keys[j].fillable) r.keys[j].token = p_.env.cache.begin_fill({f.db, r.names[j], r.keys[j].hash, {}});
    f.sent_ms = steady_ms();
    const std::uint32_t n = begin_tracked(f.ticket, f.tracking);
    r.client_index = n;
    names_.assign(1, "MGET");
    for (std::size_t j = 0; j < r.fetch_count; ++j) names_.emplace_back(r.names[j]);
    resp::write_command(request_, names_);
    for (std::size_t j = 0; j < r.fetch_count; ++j) resp::write_command(request_, {"PTTL", r.names[j]});
    fwd_.send(r, request_, n + 1 + static_cast<std::uint32_t>(r.fetch_count), p_.env.settings.request_timeout());
}

}  // namespace respcache::proxy
