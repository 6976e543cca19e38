// MGET through GET's entries (read_through::serve_many).

#include "read_requests.hpp"
#include "respcache/proxy/read_through.hpp"

namespace respcache::proxy {

read_through::outcome read_through::serve_many(command::args_view args, const command::read_policy& policy) {
    // A client of another user than the proxy's reads Redis for every MGET: GET's entries are per user.
    if (fwd_.pinned() || !p_.client.cache_partition.empty()) {
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
    auto& counts = p_.env.stats.cached_commands[policy.stat];
    const std::size_t n = args.size() - 1;
    // The hits go straight after the reply's header, where an all-hit MGET leaves them; any miss takes
    // them back into found_.
    std::string& out = p_.queue.local_target();
    const std::size_t base = out.size();
    out.append("*").append(std::to_string(n)).append("\r\n");
    const std::size_t first = out.size();
    const std::size_t hits = lookup_each(args, hits_allowed, out);
    p_.env.stats.hits.add(hits);
    p_.env.stats.misses.add(n - hits);
    if (hits == n) {  // the hits' elements are the reply, in order
        counts.hits.add();
        p_.env.stats.hit_latency.record(std::chrono::steady_clock::now() - p_.client.batch_start);
        return outcome::served;
    }
    found_.assign(out, first, std::string::npos);
    out.resize(base);
    p_.queue.abandon_local();
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
        add_missing(r, cache::make_key(p_.client.db, args[i + 1]), fills, hits_allowed);
    }
    if (r.fetch_count == 0) {  // every key missing is on its way in other clients' fills
        r.parts_only();
        fwd_.waiting(r);
        return outcome::served;
    }
    fetch_missing(r, policy);
    return outcome::served;
}

// A key of an MGET the cache did not have: it waits for another client's fill of it in flight (as a
// GET's miss does: only when a hit could have been served), or is fetched, and then filled (a shared
// fill, when others may wait for it) unless a write of it is in flight.
void read_through::add_missing(many_request& r, const cache::key& k, bool fills, bool may_join) {
    auto& cache = p_.env.cache;
    if (!fills || fwd_.write_in_flight(k) || !cache::lru_cache::cacheable_key(k)) return r.add_fetched(k.name, k.hash, false);
    if (!may_join) return r.add_fetched(k.name, k.hash, true, cache.begin_fill(k));
    auto waiter = r.part_waiter();
    cache::fill_token token;
    std::uint64_t flight = 0;
    if (cache.join_or_lead(k, waiter, token, flight)) {
        r.joined();
        p_.client.from_cache = true;
        p_.env.stats.shared_misses.add();
        return;
    }
    r.add_fetched(k.name, k.hash, true, token, flight);
}

// Each key of an MGET looked up: the hits' elements appended to `into`, in the client's protocol; per
// key, found_len_ is the element's length, or -1 for a key to fetch. Returns the hits.
std::size_t read_through::lookup_each(command::args_view args, bool hits_allowed, std::string& into) {
    found_len_.clear();
    keys_.clear();
    for (std::size_t i = 1; i < args.size(); ++i) keys_.push_back(cache::make_key(p_.client.db, args[i]));
    if (hits_allowed)
        for (const auto& k : keys_) p_.env.cache.prefetch(k);
    std::size_t hits = 0;
    for (const cache::key& k : keys_) {
        p_.env.stats.hot.read(k.db, k.name);
        const std::size_t at = into.size();
        bool stale_soon = false;
        if (hits_allowed && !fwd_.write_in_flight(k) && p_.env.cache.lookup(k, p_.client.now, into, &stale_soon)) {
            if (stale_soon) refresh_value(k);
            if (p_.client.proto == resp::protocol::resp3 && std::string_view(into).substr(at) == kNil2)
                into.replace(at, kNil2.size(), kNil3);
            found_len_.push_back(static_cast<std::int64_t>(into.size() - at));
            p_.client.from_cache = true;
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
