#pragma once

// The inside of lru_cache, shared by its sources only: the entry layout and one shard (see the
// invariants in include/respcache/cache/lru_cache.hpp).

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <string_view>

#include "frequency_sketch.hpp"
#include "name_set.hpp"
#include <unordered_map>
#include <vector>

#include "respcache/cache/lru_cache.hpp"

namespace respcache::cache {

namespace detail {
constexpr std::size_t kGenerations = 1024;        // generation slots per shard
constexpr std::size_t kCopyUnderLock = 4096;      // replies up to this size are copied under the lock
constexpr std::size_t kReapBatch = 1024;          // most removals per lock hold in remove_expired
constexpr std::size_t kInitialBuckets = 16;

// Which bits of the hash pick what: the shard from the top, the bucket from the bottom, the generation
// slot from the middle, so that the three stay independent.
inline std::size_t shard_bits(std::uint64_t h) noexcept { return static_cast<std::size_t>(h >> 40); }
inline std::size_t generation_slot(std::uint64_t h) noexcept {
    return static_cast<std::size_t>(h >> 20) & (kGenerations - 1);
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// A shard's lock. Its critical sections are short (a bucket walk, a few pointer writes, a copy of a small
// reply), so a contended lock() first spins, only reading the lock word, while the holder (running on
// another core) finishes. std::mutex (glibc) puts the waiter to sleep in the kernel at once instead, and
// that sleep and the wake-up its unlock must then send cost microseconds, many times the wait itself:
// with two threads looking up in 16 shards, each thread spent about a quarter of its time asleep.
// The spinning backs off exponentially, so that a lock every thread wants (one hot key) is taken several
// times in a row by one thread rather than moving between cores at each lookup. After about 500 pauses
// (several microseconds) the waiter does sleep (C++20 atomic wait: a futex on Linux), so a long hold (a
// reaper batch, a flush) or a preempted holder is waited for as before.
class shard_mutex {
public:
    void lock() noexcept {
        if (!try_lock()) lock_contended();
    }
    bool try_lock() noexcept {
        std::uint32_t expected = kFree;
        return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire, std::memory_order_relaxed);
    }
    void unlock() noexcept {
        if (state_.exchange(kFree, std::memory_order_release) == kSleepers) state_.notify_one();
    }

private:
    static constexpr std::uint32_t kFree = 0;
    static constexpr std::uint32_t kLocked = 1;
    static constexpr std::uint32_t kSleepers = 2;  // locked, and someone may be asleep waiting for it
    static constexpr unsigned kMaxBackoff = 256;   // pauses between the last two looks at the lock

    void lock_contended() noexcept {
        for (unsigned backoff = 1; backoff <= kMaxBackoff; backoff *= 2) {
            for (unsigned i = 0; i < backoff; ++i) cpu_relax();
            if (state_.load(std::memory_order_relaxed) == kFree && try_lock()) return;
        }
        // Taken this way, the lock stays kSleepers even if this was the only sleeper: its unlock then
        // makes one system call too many, never one too few.
        while (state_.exchange(kSleepers, std::memory_order_acquire) != kFree) {
            state_.wait(kSleepers, std::memory_order_relaxed);
        }
    }

    std::atomic<std::uint32_t> state_{kFree};
};
}  // namespace detail

using namespace detail;

// A reply too large to copy under the shard lock lives in a block of its own that readers pin.
struct large_reply {
    std::atomic<std::uint32_t> refs{1};
    std::uint32_t len = 0;
    char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
    static large_reply* create(std::string_view reply) {
        void* mem = ::operator new(sizeof(large_reply) + reply.size());
        auto* r = new (mem) large_reply();
        r->len = static_cast<std::uint32_t>(reply.size());
        std::memcpy(r->bytes(), reply.data(), reply.size());
        return r;
    }
    void unref() noexcept {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            this->~large_reply();
            ::operator delete(this);
        }
    }
};

// One cached entry: 44 bytes of bookkeeping, then the name, the variant and the encoded reply in the
// same allocation (or, for a reply above kCopyUnderLock, a pointer to its large_reply). Kept this small
// because it is paid per key: 1M GET entries of 16-byte keys and 100-byte values cost less than Redis's
// own per-key overhead (see README "Benchmarks").
struct lru_cache::entry {
    static constexpr std::uint16_t kLarge = 0xFFFF;  // inline_len of an entry whose reply is out of line

    entry* prev;               // LRU list
    entry* next;
    entry* chain;              // bucket chain; also the graveyard link once removed
    std::uint32_t expires_at;  // a clock::now() value truncated to 32 bits: see expired()
    std::uint32_t hash;        // the low 32 bits of hash_name(name)
    std::uint32_t heap_slot;
    std::uint16_t inline_len;  // the reply's length, or kLarge
    std::uint16_t name_len;
    std::uint16_t variant_len;
    std::uint8_t db;
    std::uint8_t flags;        // refreshing | key_bound

    static constexpr std::uint8_t refreshing = 1;  // a refresh-ahead read of it is under way
    static constexpr std::uint8_t key_bound = 2;   // it expires with its key in Redis: nothing to refresh

    static constexpr std::size_t header =
        3 * sizeof(entry*) + 3 * sizeof(std::uint32_t) + 3 * sizeof(std::uint16_t) + 2 * sizeof(std::uint8_t);
    static_assert(header == 44, "an entry's bookkeeping is paid per key");

    char* bytes() noexcept { return reinterpret_cast<char*>(this) + header; }
    bool large() const noexcept { return inline_len == kLarge; }
    std::string_view name() noexcept { return {bytes(), name_len}; }
    std::string_view variant() noexcept { return {bytes() + name_len, variant_len}; }
    char* body() noexcept { return bytes() + name_len + variant_len; }
    large_reply* block() noexcept {
        large_reply* r;
        std::memcpy(&r, body(), sizeof r);
        return r;
    }
    // The inline reply (large() == false only).
    std::string_view reply() noexcept { return {body(), inline_len}; }
    std::size_t reply_len() noexcept { return large() ? block()->len : inline_len; }
    std::size_t charge() noexcept { return entry_charge(name_len, reply_len(), variant_len); }
    bool matches(std::uint32_t db_, std::string_view name_, std::string_view variant_, std::uint64_t hash_) noexcept {
        return hash == static_cast<std::uint32_t>(hash_) && db == db_ && name() == name_ && variant() == variant_;
    }

    // Times are kept modulo 2^32 ms and compared as serial numbers, which is exact while every entry
    // expires within 2^31 ms (24.8 days) of now: --ttl is capped below that.
    static std::uint32_t stamp(millis t) noexcept { return static_cast<std::uint32_t>(t); }
    bool expired(millis now) const noexcept { return static_cast<std::int32_t>(stamp(now) - expires_at) >= 0; }
    static bool earlier(const entry* a, const entry* b) noexcept {
        return static_cast<std::int32_t>(a->expires_at - b->expires_at) < 0;
    }

    static entry* create(const key& k, std::string_view reply) {
        const bool big = reply.size() > kCopyUnderLock;
        const std::size_t body = big ? sizeof(large_reply*) : reply.size();
        void* mem = ::operator new(header + k.name.size() + k.variant.size() + body);
        auto* e = static_cast<entry*>(mem);
        e->prev = e->next = e->chain = nullptr;
        e->expires_at = 0;
        e->hash = static_cast<std::uint32_t>(k.hash);
        e->heap_slot = 0;
        e->inline_len = big ? kLarge : static_cast<std::uint16_t>(reply.size());
        e->name_len = static_cast<std::uint16_t>(k.name.size());
        e->variant_len = static_cast<std::uint16_t>(k.variant.size());
        e->db = static_cast<std::uint8_t>(k.db);
        e->flags = 0;
        std::memcpy(e->bytes(), k.name.data(), k.name.size());
        if (!k.variant.empty()) std::memcpy(e->bytes() + k.name.size(), k.variant.data(), k.variant.size());
        if (big) {
            large_reply* r = large_reply::create(reply);
            std::memcpy(e->body(), &r, sizeof r);
        } else {
            std::memcpy(e->body(), reply.data(), reply.size());
        }
        return e;
    }
    static void destroy(entry* e) noexcept {
        if (e->large()) e->block()->unref();
        ::operator delete(e);
    }
};

// Entries removed under a shard lock, released once the lock is gone.
class graveyard {
public:
    graveyard() = default;
    graveyard(const graveyard&) = delete;
    graveyard& operator=(const graveyard&) = delete;
    template <typename Entry>
    void bury(Entry* e) noexcept {
        e->chain = static_cast<Entry*>(head_);
        head_ = e;
    }
    template <typename Entry>
    void release() noexcept {
        auto* e = static_cast<Entry*>(head_);
        head_ = nullptr;
        while (e != nullptr) {
            auto* next = e->chain;
            Entry::destroy(e);
            e = next;
        }
    }

private:
    void* head_ = nullptr;
};

// Aligned to a cache line: the lock and the LRU list's head, which every hit writes, share the shard's first
// line (with a 16-byte aligned std::mutex they were on two lines in 12 shards of 16), and no other
// allocation shares that line.
class alignas(64) lru_cache::shard {
public:
    shard() {
        head_.prev = &head_;
        head_.next = &head_;
        buckets_.assign(kInitialBuckets, nullptr);
    }
    ~shard() {
        for (entry* e = head_.next; e != &head_;) {
            entry* next = e->next;
            entry::destroy(e);
            e = next;
        }
    }

    mutable shard_mutex mu_;
    // Everything below is GUARDED_BY(mu_).
    entry head_{};
    std::vector<entry*> buckets_;
    std::vector<entry*> heap_;
    std::size_t count_ = 0;
    std::size_t bytes_ = 0;
    std::size_t capacity_ = 0;
    std::size_t max_memory_ = 0;
    millis ttl_ = 0;
    millis refresh_window_ = 0;  // a hit this close to its entry's end asks for a refresh (0: never)
    std::array<std::uint64_t, kGenerations> generations_{};
    std::uint64_t epoch_ = 0;
    counters stats_;
    frequency_sketch sketch_;  // --eviction-policy tinylfu; off otherwise
    // Fills others wait for (join_or_lead), by flight_key.
    struct flight {
        std::uint64_t id = 0;
        fill_token token;
        std::vector<lru_cache::fill_waiter> waiters;
    };
    struct text_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, flight, text_hash, std::equal_to<>> flights_;
    std::uint64_t next_flight_ = 0;
    // Names Redis still tracks for the cache though their entries went (lru_cache::remember_tracked).
    name_set tracked_;
    bool remember_tracked_ = false;

    void remember(std::string_view name, std::uint32_t hash) {
        if (!remember_tracked_ || capacity_ == 0 || tracked_.contains(name, hash)) return;
        if (tracked_.size() >= capacity_) tracked_.erase_one();
        if (max_memory_ != 0 && bytes_ + tracked_.bytes_with(name.size()) > max_memory_) return;
        tracked_.insert(name, hash);
    }
    void forget(std::string_view name, std::uint64_t hash) noexcept {
        tracked_.erase(name, static_cast<std::uint32_t>(hash));
    }
    void forget_all() noexcept { tracked_.clear(); }
    // Whether Redis is known to track `k`'s name for the cache: an entry of the name (of any database or
    // variant: Redis tracks names) or a remembered one.
    bool known_tracked(const key& k) noexcept {
        if (!remember_tracked_) return false;
        const auto h = static_cast<std::uint32_t>(k.hash);
        for (entry* e = buckets_[k.hash & (buckets_.size() - 1)]; e != nullptr; e = e->chain)
            if (e->hash == h && e->name() == k.name) return true;
        return tracked_.contains(k.name, h);
    }
    fill_token token_for(const key& k) noexcept {
        return {generations_[generation_slot(k.hash)], epoch_, known_tracked(k)};
    }
    // remove(), for an entry that ends by expiry or eviction: Redis still tracks its name.
    void retire(entry** link, graveyard& dead) {
        remember((*link)->name(), (*link)->hash);
        remove(link, dead);
    }

    bool token_current(const key& k, const fill_token& t) const noexcept {
        return t.generation == generations_[generation_slot(k.hash)] && t.epoch == epoch_;
    }

    entry** find_link(const key& k) noexcept {
        entry** link = &buckets_[k.hash & (buckets_.size() - 1)];
        while (*link != nullptr) {
            entry* e = *link;
            if (e->matches(k.db, k.name, k.variant, k.hash)) return link;
            link = &e->chain;
        }
        return link;
    }
    bool due_for_refresh(const entry* e, millis now) const noexcept {
        if (refresh_window_ == 0 || (e->flags & (entry::refreshing | entry::key_bound)) != 0) return false;
        return static_cast<std::int32_t>(e->expires_at - entry::stamp(now)) < refresh_window_;
    }
    entry** link_of(entry* target) noexcept {
        entry** link = &buckets_[target->hash & (buckets_.size() - 1)];
        while (*link != target) link = &(*link)->chain;
        return link;
    }

    void lru_unlink(entry* e) noexcept {
        e->prev->next = e->next;
        e->next->prev = e->prev;
    }
    void lru_push_front(entry* e) noexcept {
        e->next = head_.next;
        e->prev = &head_;
        head_.next->prev = e;
        head_.next = e;
    }

    bool heap_less(std::size_t a, std::size_t b) const noexcept {
        return entry::earlier(heap_[a], heap_[b]);
    }
    void heap_swap(std::size_t a, std::size_t b) noexcept {
        std::swap(heap_[a], heap_[b]);
        heap_[a]->heap_slot = static_cast<std::uint32_t>(a);
        heap_[b]->heap_slot = static_cast<std::uint32_t>(b);
    }
    void sift_up(std::size_t i) noexcept {
        while (i > 0) {
            std::size_t parent = (i - 1) / 2;
            if (!heap_less(i, parent)) break;
            heap_swap(i, parent);
            i = parent;
        }
    }
    void sift_down(std::size_t i) noexcept {
        for (;;) {
            std::size_t l = 2 * i + 1;
            std::size_t r = l + 1;
            std::size_t m = i;
            if (l < heap_.size() && heap_less(l, m)) m = l;
            if (r < heap_.size() && heap_less(r, m)) m = r;
            if (m == i) return;
            heap_swap(i, m);
            i = m;
        }
    }
    void heap_push(entry* e) {
        // Grown by a quarter at a time rather than doubled: this array costs a pointer per entry already.
        if (heap_.size() == heap_.capacity()) heap_.reserve(heap_.capacity() + heap_.capacity() / 4 + 64);
        e->heap_slot = static_cast<std::uint32_t>(heap_.size());
        heap_.push_back(e);
        sift_up(heap_.size() - 1);
    }
    void heap_erase(entry* e) noexcept {
        const std::size_t i = e->heap_slot;
        entry* last = heap_.back();
        heap_.pop_back();
        if (i < heap_.size()) {
            heap_[i] = last;
            last->heap_slot = static_cast<std::uint32_t>(i);
            sift_down(i);
            sift_up(i);
        }
    }

    // Unlinks the entry that *link points to from all three structures and hands it to `dead`.
    void remove(entry** link, graveyard& dead) noexcept {
        entry* e = *link;
        *link = e->chain;
        lru_unlink(e);
        heap_erase(e);
        --count_;
        bytes_ -= e->charge();
        dead.bury(e);
    }
    void remove(entry* e, graveyard& dead) noexcept { remove(link_of(e), dead); }

    void grow_index() {
        std::vector<entry*> bigger(buckets_.size() * 2, nullptr);
        const std::size_t mask = bigger.size() - 1;
        for (entry* head : buckets_) {
            while (head != nullptr) {
                entry* next = head->chain;
                entry*& slot = bigger[head->hash & mask];
                head->chain = slot;
                slot = head;
                head = next;
            }
        }
        buckets_.swap(bigger);
    }

    // A shorter --ttl: no entry may outlive `latest` any more. O(n log n), at a reload.
    void shorten_lives(millis latest) noexcept {
        const std::uint32_t cap = entry::stamp(latest);
        bool changed = false;
        for (entry* e : heap_) {
            if (static_cast<std::int32_t>(e->expires_at - cap) > 0) {
                e->expires_at = cap;
                changed = true;
            }
        }
        if (!changed) return;
        for (std::size_t i = 0; i < heap_.size(); ++i) sift_up(i);
    }

    // Links a new entry into the index, the LRU list (as most recent) and the expiry heap.
    void insert(entry* fresh, std::uint64_t hash, std::size_t charge, std::uint32_t expires_at, bool key_bound) {
        fresh->expires_at = expires_at;
        if (key_bound) fresh->flags |= entry::key_bound;
        entry*& bucket = buckets_[hash & (buckets_.size() - 1)];
        fresh->chain = bucket;
        bucket = fresh;
        lru_push_front(fresh);
        heap_push(fresh);
        ++count_;
        bytes_ += charge;
        if (count_ > 2 * buckets_.size()) grow_index();
    }
    // tinylfu: whether a new entry of `hash` (and `charge` bytes) may go in, evicting to make room; only
    // if its key is asked for more often than the least recently used entry's.
    bool admits(std::uint32_t hash, std::size_t charge) const noexcept {
        if (!sketch_.on() || head_.prev == &head_) return true;
        const bool full = count_ >= capacity_ || (max_memory_ != 0 && bytes_ + charge > max_memory_);
        return !full || sketch_.estimate(hash) > sketch_.estimate(head_.prev->hash);
    }
    bool over_memory() const noexcept { return max_memory_ != 0 && bytes_ + tracked_.bytes() > max_memory_; }
    bool over_limits() const noexcept { return count_ > capacity_ || over_memory(); }
    void evict_to_limits(graveyard& dead) {
        while (!tracked_.empty() && (tracked_.size() > capacity_ || over_memory())) tracked_.erase_one();
        while (count_ > 0 && over_limits()) {
            retire(link_of(head_.prev), dead);
            ++stats_.evictions;
        }
    }
    void remove_all_where(graveyard& dead, const std::function<bool(const entry&)>& pred) {
        for (entry* e = head_.next; e != &head_;) {
            entry* next = e->next;
            if (pred(*e)) {
                remove(e, dead);
                ++stats_.invalidations;
            }
            e = next;
        }
    }
};

}  // namespace respcache::cache
