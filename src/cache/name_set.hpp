#pragma once

// A set of key names, each with the low 32 bits of its hash_name, which the caller has already: a shard's
// names that Redis still tracks though their entries went (lru_shard::remember, invariant 6).
//
// Open addressing with linear probing and backward-shift deletion, kept between 1/8 and 1/2 full. A
// lookup hashes nothing and most often reads one slot: the hash, the length and a name of up to kInline
// bytes sit in it, a longer name in a block of its own. std::unordered_set<std::string> cost three cache
// misses per lookup (bucket, node, the name's block) and rehashed the names of a bucket's chain as it
// walked it: 7% of the proxy's CPU in a profile of fills of 100k expiring keys.
//
// Not thread-safe (a shard's, under its lock). Complexity: contains, insert and erase O(1) expected,
// erase_one O(1) amortized, clear O(slots).

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>
#include <vector>

namespace respcache::cache {

class name_set {
public:
    static constexpr std::size_t kInline = 24;

    name_set() = default;
    name_set(const name_set&) = delete;
    name_set& operator=(const name_set&) = delete;
    ~name_set() { clear(); }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    // What the set holds in memory: its slots and the blocks of long names.
    std::size_t bytes() const noexcept { return slots_.size() * sizeof(slot) + heap_bytes_; }
    // bytes() once `len`'s name is added, the growth of the table included.
    std::size_t bytes_with(std::size_t len) const noexcept {
        const std::size_t n = needs_growth() ? grown_size() : slots_.size();
        return n * sizeof(slot) + heap_bytes_ + block_size(len);
    }

    bool contains(std::string_view name, std::uint32_t hash) const noexcept {
        if (size_ == 0) return false;
        for (std::size_t i = home(hash);; i = next(i)) {
            const slot& s = slots_[i];
            if (!s.used()) return false;
            if (s.matches(name, hash)) return true;
        }
    }

    // Adds the name; false if it was there already.
    bool insert(std::string_view name, std::uint32_t hash) {
        if (contains(name, hash)) return false;
        if (needs_growth()) rehash(grown_size());
        place(make_slot(name, hash));
        ++size_;
        return true;
    }

    // Removes the name; whether it was there.
    bool erase(std::string_view name, std::uint32_t hash) noexcept {
        if (size_ == 0) return false;
        for (std::size_t i = home(hash);; i = next(i)) {
            slot& s = slots_[i];
            if (!s.used()) return false;
            if (s.matches(name, hash)) {
                remove_at(i);
                return true;
            }
        }
    }

    // Removes one name, some name (the set must not be empty): what a bounded set gives up for a new one.
    void erase_one() noexcept {
        while (!slots_[cursor_ & (slots_.size() - 1)].used()) ++cursor_;
        remove_at(cursor_ & (slots_.size() - 1));
    }

    void clear() noexcept {
        for (slot& s : slots_) release(s);
        std::vector<slot>().swap(slots_);
        size_ = 0;
        heap_bytes_ = 0;
    }

private:
    // len1 = the name's length + 1, 0 for an empty slot (an empty name is a valid Redis key).
    struct slot {
        std::uint32_t hash = 0;
        std::uint32_t len1 = 0;
        union {
            char text[kInline];
            char* block;
        };
        bool used() const noexcept { return len1 != 0; }
        std::size_t len() const noexcept { return len1 - 1; }
        const char* data() const noexcept { return len() <= kInline ? text : block; }
        bool matches(std::string_view name, std::uint32_t h) const noexcept {
            return hash == h && len() == name.size() && std::memcmp(data(), name.data(), name.size()) == 0;
        }
    };
    static_assert(sizeof(slot) == 32);

    static constexpr std::size_t kMinSlots = 16;
    static std::size_t block_size(std::size_t len) noexcept { return len <= kInline ? 0 : (len + 15) / 16 * 16; }

    std::size_t home(std::uint32_t hash) const noexcept {
        // Fibonacci hashing: the shard already took some of the hash's bits, this spreads the rest.
        const std::uint64_t mixed = static_cast<std::uint64_t>(hash) * 0x9E3779B97F4A7C15ull;
        return static_cast<std::size_t>(mixed >> 32) & (slots_.size() - 1);
    }
    std::size_t next(std::size_t i) const noexcept { return (i + 1) & (slots_.size() - 1); }
    bool needs_growth() const noexcept { return (size_ + 1) * 2 > slots_.size(); }
    std::size_t grown_size() const noexcept { return slots_.empty() ? kMinSlots : slots_.size() * 2; }

    slot make_slot(std::string_view name, std::uint32_t hash) {
        slot s;
        s.hash = hash;
        s.len1 = static_cast<std::uint32_t>(name.size() + 1);
        if (name.size() <= kInline) {
            std::memcpy(s.text, name.data(), name.size());
        } else {
            s.block = static_cast<char*>(::operator new(block_size(name.size())));
            std::memcpy(s.block, name.data(), name.size());
            heap_bytes_ += block_size(name.size());
        }
        return s;
    }
    void release(slot& s) noexcept {
        if (s.used() && s.len() > kInline) {
            heap_bytes_ -= block_size(s.len());
            ::operator delete(s.block);
        }
        s.len1 = 0;
    }
    void place(const slot& s) noexcept {
        std::size_t i = home(s.hash);
        while (slots_[i].used()) i = next(i);
        slots_[i] = s;
    }
    void rehash(std::size_t n) {
        std::vector<slot> old(n);
        old.swap(slots_);
        for (const slot& s : old)
            if (s.used()) place(s);  // the long names' blocks move with their slots
    }
    // Backward-shift deletion: the slots after `hole` whose home lies at or before it move up into it,
    // so that every name stays reachable from its home without tombstones.
    void remove_at(std::size_t hole) noexcept {
        release(slots_[hole]);
        --size_;
        for (std::size_t j = next(hole); slots_[j].used(); j = next(j)) {
            const std::size_t h = home(slots_[j].hash);
            // j may move to the hole if its home is not in the cyclic range (hole, j].
            const bool stays = hole < j ? (h > hole && h <= j) : (h > hole || h <= j);
            if (stays) continue;
            slots_[hole] = slots_[j];
            slots_[j].len1 = 0;
            hole = j;
        }
        if (size_ * 8 < slots_.size() && slots_.size() > kMinSlots) {
            try {
                rehash(slots_.size() / 2);
            } catch (const std::bad_alloc&) {
                // The table stays as large as it was: correct, and it shrinks at a later removal.
            }
        }
    }

    std::vector<slot> slots_;
    std::size_t size_ = 0;
    std::size_t heap_bytes_ = 0;
    std::size_t cursor_ = 0;
};

}  // namespace respcache::cache
