#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/cache/clock.hpp"

namespace respcache::cache {

// Hash of a key name. The database number is deliberately not part of it: every entry of one name, in
// whatever database, lives in one shard and one bucket chain, so that an invalidation by name (all that
// Redis client tracking sends) is a single bucket walk.
std::uint64_t hash_name(std::string_view name) noexcept;

// A cache key: (database, name, variant), with the name's hash computed once by the caller. The variant
// tells apart the entries of one name: empty for GET's, the command and its other arguments (and the
// protocol) for any other read (see command::cache_plan). Every variant of a name is invalidated with it.
struct key {
    std::uint32_t db;
    std::string_view name;
    std::uint64_t hash;
    std::string_view variant{};
};

inline key make_key(std::uint32_t db, std::string_view name, std::string_view variant = {}) noexcept {
    return {db, name, hash_name(name), variant};
}

// Proof that a fill was announced before its backend request was sent (DESIGN.md section 3.2).
struct fill_token {
    std::uint64_t generation = 0;  // the key's generation slot when the fill began
    std::uint64_t epoch = 0;       // the shard's flush epoch when the fill began
    // Redis is known to track the key's name for this cache already (see remember_tracked): an entry of
    // the name is held, or one went by expiry or eviction, and no invalidation or flush came since.
    bool tracked = false;
};

struct limits {
    std::size_t capacity = 1024;   // most entries held; 0 disables the cache
    std::size_t max_memory = 0;    // most bytes charged (see entry_charge); 0 = no byte bound
    millis ttl = 300'000;          // an entry's longest life from insertion
    double refresh_ahead = 0;      // a hit past this fraction of its entry's life asks for a refresh (0: off)
    bool tinylfu = false;          // admission: a new entry evicts only a less often asked-for one
};

struct counters {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;        // sum of entry_charge over entries
    std::uint64_t evictions = 0;    // removed to respect capacity or max_memory
    std::uint64_t expirations = 0;  // removed because their time was up (by the reaper or a lookup)
    std::uint64_t invalidations = 0;  // removed by invalidate, flush_db or flush_all
    std::uint64_t fills_dropped = 0;  // fills refused because their key was invalidated meanwhile
    std::uint64_t fills_not_admitted = 0;  // fills refused by tinylfu: the LRU victim was asked for more often
    std::uint64_t tracked_names = 0;  // names remembered as tracked by Redis after their entries went
};

// What one entry costs against --max-memory: its single allocation (bookkeeping, name, variant and
// encoded reply).
std::size_t entry_charge(std::size_t name_len, std::size_t reply_len, std::size_t variant_len = 0) noexcept;

// A sharded LRU cache of encoded read replies with a global TTL.
//
// Each shard is guarded by its own mutex and holds:
//   - an intrusive, circular, doubly-linked LRU list with a dummy head: head.next is the most recently
//     used entry, head.prev the least;
//   - a hash index: a power-of-two array of singly-linked bucket chains;
//   - an expiry queue: a binary min-heap of entries ordered by expires_at, each entry knowing its slot;
//   - a generation per slot of an array of `kGenerations` counters indexed by name hash, and a flush
//     epoch, which together decide whether a fill may still be inserted.
//
// Invariants, each holding whenever a shard's mutex is free:
//   1. An entry is in the LRU list iff it is in the index iff it is in the expiry queue; `count_` is
//      their size and `bytes_` the sum of their charges; count_ <= capacity and bytes_ <= max_memory
//      of the shard (where those are not 0).
//   2. No two entries share (db, name, variant). Every entry of a name is in the chain of its hash.
//   3. expires_at <= inserted_at + ttl, and <= the key's own expiry given at fill time.
//   4. Any invalidation of a name bumps the generation of the name's slot; any flush bumps the epoch.
//      A fill is inserted only if neither moved since begin_fill, so no reply that was in flight while
//      its key was written can ever be inserted.
//   5. The cache owns one reference to each entry it holds; a reader copying a large entry outside the
//      lock holds another. The last reference frees the entry.
//   6. With remember_tracked on, a name is in a shard's remembered names only if an entry of it went by
//      expiry or eviction and no invalidation of it or flush came since; a shard remembers at most its
//      capacity of them, and its entries' charges plus the names' memory stay within its max_memory
//      (names go before entries when room is needed).
//
// All operations are thread-safe. Complexity (n = entries of one shard): lookup, begin_fill and
// invalidate are O(1 + v) expected, v being the name's entries (its variants: one per command and
// arguments read), plus O(log n) per removal from the expiry heap; a fill is O(1)
// expected plus O(log n) for the heap and O(1) amortised per eviction; remove_expired is O(k log n) for
// k expired entries; flush_db is O(n) per shard; flush_all is O(n).
class lru_cache {
public:
    // `shards` is rounded up to a power of two; 0 picks one from the capacity (see auto_shards).
    lru_cache(limits lim, std::size_t shards, const clock& clk);
    ~lru_cache();
    lru_cache(const lru_cache&) = delete;
    lru_cache& operator=(const lru_cache&) = delete;

    // On a hit: appends the encoded reply to `out`, marks the entry most recently used and returns true.
    // On a miss, or when the entry's time is up at `now` (it is then removed): returns false and leaves
    // `out` untouched. The shard lock is held only to copy a small reply into space `out` already has;
    // larger replies are copied after the lock is released, under a reference. With `refresh`, a hit on
    // an entry past limits::refresh_ahead of its life (and not expiring with its key) sets *refresh, once
    // per entry: the caller is to read it again, and the fill replaces it.
    bool lookup(const key& k, millis now, std::string& out, bool* refresh = nullptr);
    // A hint that `k` is about to be looked up: starts loading its entry's memory, so that the lookups
    // of a batch (an MGET's keys) wait for memory together rather than one after the other.
    void prefetch(const key& k) const;

    // True if (db, name) is cached and alive at `now`; does not touch recency. For tests and INFO.
    bool contains(const key& k, millis now) const;

    // Announces a fill for `k`; call it before the backend request that will produce the reply is sent.
    fill_token begin_fill(const key& k);

    // Inserts `reply` (one complete encoded reply) for `k` if no invalidation or flush touched
    // the key since `token` was taken, and if it fits the limits. The entry expires at
    // min(now + ttl, key_expires_at). Replaces any entry of the same key. Returns whether it was inserted.
    bool fill(const key& k, fill_token token, std::string_view reply, millis now,
              millis key_expires_at = INT64_MAX);

    // ---- Sharing a miss: concurrent misses of one entry cause one backend request. ----
    // Called with the shared fill's reply (the client's reply bytes, an error's included: one copy for
    // every waiter) and whether the backend answered; on the thread that ended the fill, outside every lock.
    using fill_waiter = std::function<void(const std::shared_ptr<const std::string>& reply, bool answered)>;
    // A miss of `k`: if a fill of it is in flight and nothing invalidated or flushed `k` since it began,
    // `w` will be called once with its reply (true). Otherwise (false) the caller's fill is announced, as
    // begin_fill does (`token`), and made the one later misses wait for (`id`; 0 if `k` cannot be cached);
    // waiters of an earlier fill of `k` that was invalidated move to it. One lock: of two concurrent misses,
    // one leads and the other waits.
    bool join_or_lead(const key& k, fill_waiter& w, fill_token& token, std::uint64_t& id);
    // The shared fill `id` of `k` has its reply: every waiter is called, here.
    void end_fill(const key& k, std::uint64_t id, std::string_view reply, bool answered);

    // The keys of the most recently used entries, at most `max` (the most recent of each shard, an equal
    // share from each), without their replies. O(max) under each shard's lock in turn.
    struct saved_key {
        std::uint32_t db;
        std::string name;
        std::string variant;
    };
    std::vector<saved_key> hottest(std::size_t max) const;

    // Removes `name` in every database and makes in-flight fills of it fail.
    void invalidate(std::string_view name, std::uint64_t hash);
    void invalidate(std::string_view name) { invalidate(name, hash_name(name)); }
    // Removes every entry of database `db` and makes all in-flight fills fail.
    void flush_db(std::uint32_t db);
    // Removes every entry and makes all in-flight fills fail.
    void flush_all();

    // Client tracking in OPTIN mode: Redis keeps a name it tracks for this cache until it announces the
    // name's change (or flushes), however the cache's entry of it ends. On: an entry that goes by expiry
    // or eviction leaves its name behind (invariant 6), and begin_fill and join_or_lead set
    // fill_token::tracked for a name that has an entry or such a record, so that its fill can skip
    // CLIENT CACHING yes. Off (the default) forgets every name.
    void remember_tracked(bool on);

    // Removes the entries whose time is up at `now`; returns how many. The reaper's work.
    std::size_t remove_expired(millis now);

    // New limits, applied at once (entries over the new bounds are evicted) and to later fills.
    void set_limits(limits lim);
    limits current_limits() const;

    counters stats() const;
    // False when the capacity is 0: lookups always miss and nothing is filled.
    bool enabled() const noexcept { return enabled_.load(std::memory_order_relaxed); }
    std::size_t shard_count() const noexcept { return shards_.size(); }
    const clock& time_source() const noexcept { return clock_; }

    // Whether a key can be cached at all: databases 0 to 255, names and variants up to 65535 bytes (others
    // always miss).
    static bool cacheable_key(const key& k) noexcept;

    // The longest --ttl the entry layout allows (24 days; times are kept modulo 2^32 ms).
    static constexpr millis max_ttl = 24LL * 24 * 3600 * 1000;

    // The shard count picked when none is given: a power of two, at most 16, and small enough that each
    // shard holds at least 256 entries, so that small caches keep an exact LRU order.
    static std::size_t auto_shards(std::size_t capacity) noexcept;

private:
    struct entry;
    class shard;
    friend std::size_t entry_charge(std::size_t name_len, std::size_t reply_len, std::size_t variant_len) noexcept;

    shard& shard_for(std::uint64_t hash) const noexcept;
    void apply_limits(const limits& lim);

    const clock& clock_;
    std::vector<std::unique_ptr<shard>> shards_;
    std::uint64_t shard_mask_;
    mutable std::mutex limits_mutex_;
    limits limits_;  // GUARDED_BY(limits_mutex_); each shard keeps its own share
    std::atomic<bool> enabled_{true};
};

}  // namespace respcache::cache
