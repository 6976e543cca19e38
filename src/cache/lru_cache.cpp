#include "respcache/cache/lru_cache.hpp"

#include "lru_shard.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <new>

namespace respcache::cache {

using namespace detail;

std::uint64_t hash_name(std::string_view name) noexcept { return std::hash<std::string_view>{}(name); }

std::size_t entry_charge(std::size_t name_len, std::size_t reply_len, std::size_t variant_len) noexcept {
    const std::size_t body = reply_len > kCopyUnderLock ? sizeof(large_reply*) + sizeof(large_reply) + reply_len : reply_len;
    return lru_cache::entry::header + name_len + variant_len + body;
}

bool lru_cache::cacheable_key(const key& k) noexcept {
    return k.db <= UINT8_MAX && k.name.size() <= UINT16_MAX && k.variant.size() <= UINT16_MAX;
}

lru_cache::lru_cache(limits lim, std::size_t shards, const clock& clk) : clock_(clk) {
    if (shards == 0) shards = auto_shards(lim.capacity);
    shards = std::bit_ceil(shards);
    shards_.reserve(shards);
    for (std::size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<shard>());
    shard_mask_ = shards - 1;
    set_limits(lim);
}

lru_cache::~lru_cache() = default;

std::size_t lru_cache::auto_shards(std::size_t capacity) noexcept {
    std::size_t shards = 1;
    while (shards * 2 <= 16 && capacity / (shards * 2) >= 256) shards *= 2;
    return shards;
}

lru_cache::shard& lru_cache::shard_for(std::uint64_t hash) const noexcept {
    return *shards_[shard_bits(hash) & shard_mask_];
}

void lru_cache::set_limits(limits lim) {
    std::lock_guard guard(limits_mutex_);
    limits_ = lim;
    enabled_.store(lim.capacity > 0, std::memory_order_relaxed);
    apply_limits(lim);
}

limits lru_cache::current_limits() const {
    std::lock_guard guard(limits_mutex_);
    return limits_;
}

void lru_cache::apply_limits(const limits& lim) {
    const std::size_t n = shards_.size();
    for (std::size_t i = 0; i < n; ++i) {
        shard& s = *shards_[i];
        graveyard dead;
        {
            std::lock_guard guard(s.mu_);
            // Split both bounds evenly; the first shards take the remainders.
            s.capacity_ = lim.capacity / n + (i < lim.capacity % n ? 1 : 0);
            s.max_memory_ = lim.max_memory == 0 ? 0 : std::max<std::size_t>(1, lim.max_memory / n + (i < lim.max_memory % n ? 1 : 0));
            if (lim.ttl < s.ttl_) s.shorten_lives(clock_.now() + lim.ttl);
            s.ttl_ = lim.ttl;
            s.sketch_.resize(lim.tinylfu ? s.capacity_ : 0);
            s.refresh_window_ = lim.refresh_ahead > 0 ? std::llround(static_cast<double>(lim.ttl) * (1.0 - lim.refresh_ahead)) : 0;
            s.evict_to_limits(dead);
        }
        dead.release<entry>();
    }
}

bool lru_cache::lookup(const key& k, millis now, std::string& out, bool* refresh) {
    if (!cacheable_key(k)) return false;
    shard& s = shard_for(k.hash);
    // Room for a small reply before the lock is taken, so that nothing is allocated under it.
    if (out.capacity() - out.size() < kCopyUnderLock) out.reserve(out.size() + kCopyUnderLock);
    large_reply* pinned = nullptr;
    graveyard dead;
    {
        std::lock_guard guard(s.mu_);
        s.sketch_.add(static_cast<std::uint32_t>(k.hash));
        entry** link = s.find_link(k);
        entry* e = *link;
        if (e == nullptr) return false;
        if (e->expired(now)) {
            s.retire(link, dead);
            ++s.stats_.expirations;
        } else {
            s.lru_unlink(e);
            s.lru_push_front(e);
            if (refresh != nullptr && s.due_for_refresh(e, now)) {
                e->flags |= entry::refreshing;
                *refresh = true;
            }
            if (!e->large()) {
                out.append(e->reply());
                return true;
            }
            pinned = e->block();
            pinned->refs.fetch_add(1, std::memory_order_relaxed);
        }
    }
    if (pinned == nullptr) {
        dead.release<entry>();
        return false;
    }
    out.append(pinned->bytes(), pinned->len);
    pinned->unref();
    return true;
}

void lru_cache::prefetch(const key& k) const {
    if (!cacheable_key(k)) return;
    shard& s = shard_for(k.hash);
    const char* first;
    {
        // Only the bucket is read: walking its chain would wait for the entry here, under the lock, when
        // the point is not to wait yet. The chain's first entry is most often the one (index load <= 2).
        std::lock_guard guard(s.mu_);
        first = reinterpret_cast<const char*>(s.buckets_[k.hash & (s.buckets_.size() - 1)]);
    }
    if (first == nullptr) return;
    // Its header and the lines after it (name and reply, which a hit copies). A hint: the entry may be
    // gone by now, and prefetching freed memory is harmless.
    __builtin_prefetch(first);
    __builtin_prefetch(first + 64);
    __builtin_prefetch(first + 128);
}

bool lru_cache::contains(const key& k, millis now) const {
    if (!cacheable_key(k)) return false;
    shard& s = shard_for(k.hash);
    std::lock_guard guard(s.mu_);
    entry* e = *s.find_link(k);
    return e != nullptr && !e->expired(now);
}

fill_token lru_cache::begin_fill(const key& k) {
    shard& s = shard_for(k.hash);
    std::lock_guard guard(s.mu_);
    return s.token_for(k);
}

bool lru_cache::fill(const key& k, fill_token token, std::string_view reply, millis now, millis key_expires_at) {
    if (!cacheable_key(k) || reply.size() > UINT32_MAX) return false;
    shard& s = shard_for(k.hash);
    const std::size_t charge = entry_charge(k.name.size(), reply.size(), k.variant.size());
    entry* fresh = entry::create(k, reply);  // allocated before the lock is taken
    graveyard dead;
    bool inserted = false;
    {
        std::lock_guard guard(s.mu_);
        const millis expires_at = std::min(now + s.ttl_, key_expires_at);
        if (token.generation != s.generations_[generation_slot(k.hash)] || token.epoch != s.epoch_) {
            ++s.stats_.fills_dropped;
        } else if (s.capacity_ != 0 && (s.max_memory_ == 0 || charge <= s.max_memory_) && expires_at > now) {
            entry** link = s.find_link(k);
            if (*link == nullptr && !s.admits(static_cast<std::uint32_t>(k.hash), charge)) {
                ++s.stats_.fills_not_admitted;
            } else {
                if (*link != nullptr) s.remove(link, dead);
                s.insert(fresh, k.hash, charge, entry::stamp(expires_at), key_expires_at < now + s.ttl_);
                s.evict_to_limits(dead);
                inserted = true;
            }
        }
    }
    dead.release<entry>();
    if (!inserted) entry::destroy(fresh);
    return inserted;
}

void lru_cache::invalidate(std::string_view name, std::uint64_t hash) {
    shard& s = shard_for(hash);
    graveyard dead;
    {
        std::lock_guard guard(s.mu_);
        ++s.generations_[generation_slot(hash)];
        s.forget(name, hash);
        entry** link = &s.buckets_[hash & (s.buckets_.size() - 1)];
        while (*link != nullptr) {
            entry* e = *link;
            if (e->hash == static_cast<std::uint32_t>(hash) && e->name() == name) {
                s.remove(link, dead);
                ++s.stats_.invalidations;
            } else {
                link = &e->chain;
            }
        }
    }
    dead.release<entry>();
}

void lru_cache::flush_db(std::uint32_t db) {
    for (auto& sp : shards_) {
        graveyard dead;
        {
            std::lock_guard guard(sp->mu_);
            ++sp->epoch_;
            sp->forget_all();  // Redis drops its whole tracking table at a FLUSHDB too
            sp->remove_all_where(dead, [db](const entry& e) { return e.db == db; });
        }
        dead.release<entry>();
    }
}

void lru_cache::flush_all() {
    for (auto& sp : shards_) {
        graveyard dead;
        {
            std::lock_guard guard(sp->mu_);
            ++sp->epoch_;
            sp->forget_all();
            sp->remove_all_where(dead, [](const entry&) { return true; });
        }
        dead.release<entry>();
    }
}

void lru_cache::remember_tracked(bool on) {
    for (auto& sp : shards_) {
        std::lock_guard guard(sp->mu_);
        sp->remember_tracked_ = on;
        if (!on) sp->forget_all();
    }
}

std::size_t lru_cache::remove_expired(millis now) {
    std::size_t removed = 0;
    for (auto& sp : shards_) {
        for (bool more = true; more;) {
            graveyard dead;
            {
                std::lock_guard guard(sp->mu_);
                std::size_t batch = 0;
                while (!sp->heap_.empty() && sp->heap_.front()->expired(now) && batch < kReapBatch) {
                    sp->retire(sp->link_of(sp->heap_.front()), dead);
                    ++sp->stats_.expirations;
                    ++batch;
                }
                removed += batch;
                more = batch == kReapBatch;
            }
            dead.release<entry>();
        }
    }
    return removed;
}

counters lru_cache::stats() const {
    counters total;
    for (auto& sp : shards_) {
        std::lock_guard guard(sp->mu_);
        total.entries += sp->count_;
        total.bytes += sp->bytes_;
        total.evictions += sp->stats_.evictions;
        total.expirations += sp->stats_.expirations;
        total.invalidations += sp->stats_.invalidations;
        total.fills_dropped += sp->stats_.fills_dropped;
        total.fills_not_admitted += sp->stats_.fills_not_admitted;
        total.tracked_names += sp->tracked_.size();
    }
    return total;
}

}  // namespace respcache::cache
