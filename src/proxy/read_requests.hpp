#pragma once

// The requests of proxy::read_through, shared by its sources (read_through.cpp, read_many.cpp) only.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/command/cache_plan.hpp"
#include "respcache/proxy/environment.hpp"
#include "respcache/proxy/read_through.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::proxy {

namespace read_detail {
inline constexpr std::string_view kNil2 = "$-1\r\n";  // how a missing key's null is kept (GET's entries)
inline constexpr std::string_view kNil3 = "_\r\n";
// GET's row's policy: MGET's keys are GET's entries.
inline const command::read_policy& get_policy() { return *command::table::local().find("get")->read; }
}  // namespace read_detail
using read_detail::get_policy;
using read_detail::kNil2;
using read_detail::kNil3;

// A tracking prelude's reply to a fill (CLIENT TRACKING, CLIENT CACHING): false if Redis refused it, and
// the refusal of the first is the tracker's to hear (the link may not be tracking at all).
inline bool prelude_accepted(environment& env, coherence::link_tracking& lt, const coherence::fill_ticket& t,
                             std::size_t index, std::string_view bytes) {
    if (resp::is_ok(bytes)) return true;
    if (index == 0) env.coherence.prelude_refused(lt, t);
    return false;
}

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
        std::uint64_t flight = 0;  // lru_cache::join_or_lead's id: other clients may wait for this reply
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
        if (!prelude_accepted(owner_.p_.env, *f.tracking, f.ticket, index, bytes)) f.fill_ok = false;
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
        owner_.fwd_.detached_done(p);
        p.home().give_back(std::unique_ptr<slot>(&p));  // last: `p` may be gone after this
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
// a GET entry if its PTTL agrees; the client's reply is the hits, the fetched values and the keys that
// other clients' fills in flight brought (parts), in its order. A key this MGET fetched may be a shared
// fill that GETs and MGETs wait for: it is ended as soon as this request's own replies are in.
class read_through::many_request final : public pending {
public:
    many_request(slot_home& home, read_through& owner) : pending(home, owner.p_.sink), owner_(owner) {}

    static constexpr std::uint32_t kFetched = UINT32_MAX;
    static constexpr std::uint32_t kJoined = UINT32_MAX - 1;
    struct element {
        std::uint32_t at;   // a hit: its offset in `found`; a key fetched: kFetched; a part: kJoined
        std::uint32_t len;  // a hit: its length; a key fetched: its index among the fetched; a part: in `parts`
    };
    std::string found;              // the hits' encoded elements, back to back
    std::vector<element> order;     // per key of the client's MGET
    std::vector<std::string> names;  // the keys fetched (strings kept across reuse)
    struct fetched {
        cache::fill_token token;
        std::uint64_t hash = 0;
        std::int64_t pttl = 0;
        std::uint64_t flight = 0;  // lru_cache::join_or_lead's id when others may wait for this key
        bool fillable = false;     // no write of it was in flight
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

    void add_fetched(std::string_view name, std::uint64_t hash, bool fillable, cache::fill_token token = {},
                     std::uint64_t flight = 0) {
        if (names.size() == fetch_count) names.emplace_back();
        names[fetch_count].assign(name);
        keys.push_back({token, hash, 0, flight, fillable});
        if (flight != 0) keep_reply = true;  // its waiters need the values even if this client goes
        order.push_back({kFetched, static_cast<std::uint32_t>(fetch_count++)});
    }

    // Key `name` is to come from another client's fill: join_or_lead with this waiter, and if it joined,
    // joined() before anything else is added.
    cache::lru_cache::fill_waiter part_waiter() {
        const auto j = static_cast<std::uint32_t>(parts_in_use_);
        return [this, j, &host = owner_.p_.env.host](const std::shared_ptr<const std::string>& reply, bool answered) {
            host.post([this, j, reply, answered] { part(j, *reply, answered); });
        };
    }
    void joined() {
        if (parts_.size() == parts_in_use_) parts_.emplace_back();
        order.push_back({kJoined, static_cast<std::uint32_t>(parts_in_use_++)});
        ++parts_awaited;
    }
    // No key is fetched: the request waits for its parts only.
    void parts_only() { no_link_replies(); }

    void complete() override {
        if (!part_error_.empty()) {  // another client's fill failed: the MGET fails as that client's read did
            data.swap(part_error_);
            return;
        }
        if (fetch_count != 0 && !values_ok_) return;  // an error: the client gets it as it is
        assembled_.clear();
        assembled_.append("*").append(std::to_string(order.size())).append("\r\n");
        for (const element& e : order)
            if (e.at == kFetched)
                assembled_.append(values_[e.len]);
            else if (e.at == kJoined)
                assembled_.append(parts_[e.len]);
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
        parts_in_use_ = 0;
        part_error_.clear();
        values_.clear();
        values_ok_ = false;
        f = facts{};
    }
    void prelude_reply(std::size_t index, std::string_view bytes) override {
        if (!prelude_accepted(owner_.p_.env, *f.tracking, f.ticket, index, bytes)) f.fill_ok = false;
    }
    void trailing_reply(std::size_t index, std::string_view bytes) override {
        const std::size_t j = index - client_index - 1;
        if (j < keys.size()) keys[j].pttl = resp::integer_value(bytes).value_or(0);
    }
    void failed() override { f.fill_ok = false; }

    void link_complete() override {
        if (fetch_count == 0) return;
        environment& env = owner_.p_.env;
        if (errored || !got_reply) {  // the link failed: so do the reads that waited for this one
            for (std::size_t j = 0; j < fetch_count; ++j)
                if (keys[j].flight != 0) env.cache.end_fill(key_of(j), keys[j].flight, data, false);
            return;
        }
        if (auto values = resp::array_elements(data); values && values->size() == fetch_count) {
            values_ = std::move(*values);
            values_ok_ = true;
        }
        if (values_ok_ && f.fill_ok && env.coherence.may_fill(f.ticket, *f.tracking, *link)) fill_all();
        for (std::size_t j = 0; j < fetch_count; ++j) end_shared(j);
    }

private:
    cache::key key_of(std::size_t j) const { return {f.db, names[j], keys[j].hash, {}}; }

    // What GET would have said of fetched key j, for the reads that wait for it. A null is a GET's null
    // only if PTTL found no key either; else the key may hold another type (GET: WRONGTYPE) or have been
    // made between the two: a GET of its own answers them. So does an MGET refused as a whole.
    void end_shared(std::size_t j) {
        const fetched& k = keys[j];
        if (k.flight == 0) return;
        if (values_ok_ && !resp::is_null(values_[j]))
            owner_.p_.env.cache.end_fill(key_of(j), k.flight, values_[j], true);
        else if (values_ok_ && k.pttl == -2)
            owner_.p_.env.cache.end_fill(key_of(j), k.flight, kNil2, true);
        else
            owner_.hand_over(f.db, names[j], k.hash, k.flight);
    }

    void fill_all() {
        environment& env = owner_.p_.env;
        const std::size_t max_value = env.settings.max_value_size.load(std::memory_order_relaxed);
        const bool negative = env.settings.cache_missing_keys.load(std::memory_order_relaxed);
        const cache::millis now = steady_ms();
        for (std::size_t j = 0; j < fetch_count; ++j) {
            const fetched& k = keys[j];
            std::string_view value = values_[j];
            const bool null = resp::is_null(value);
            // As for GET: PTTL must agree with the value (-2 with a null), and 0 means about to go.
            if (!k.fillable || k.pttl == 0 || k.pttl < -2 || null != (k.pttl == -2)) continue;
            if ((null && !negative) || !f.policy->keeps(value, max_value)) continue;
            if (null) value = kNil2;
            const cache::millis expires = k.pttl > 0 ? f.sent_ms + k.pttl : INT64_MAX;
            env.cache.fill(key_of(j), k.token, value, now, expires);
        }
    }

    // Part j's reply is GET's: a value is MGET's element as it is; a null, or WRONGTYPE, is MGET's null
    // in this client's protocol; another error, or a failure, is the MGET's reply.
    void part(std::uint32_t j, std::string_view bytes, bool answered) {
        if (!answered || (resp::is_error(bytes) && !bytes.starts_with("-WRONGTYPE"))) {
            if (part_error_.empty()) part_error_.assign(bytes.empty() ? "-ERR backend unavailable\r\n" : bytes);
        } else if (resp::is_null(bytes) || resp::is_error(bytes)) {
            parts_[j].assign(owner_.p_.client.proto == resp::protocol::resp3 ? kNil3 : kNil2);
        } else {
            parts_[j].assign(bytes);
        }
        part_arrived();
    }

    read_through& owner_;
    std::vector<std::string_view> values_;  // the fetched keys' elements, in `data`
    bool values_ok_ = false;
    std::vector<std::string> parts_;  // the joined keys' elements (strings kept across reuse)
    std::size_t parts_in_use_ = 0;
    std::string part_error_;
    std::string assembled_;
};

// A miss that waits for another client's fill of the same entry (lru_cache::join_or_lead): its reply is
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

}  // namespace respcache::proxy
