#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace respcache {

// The most read keys of one io thread, estimated in bounded memory: one read in kEvery (at random, so
// that a periodic workload is not sampled always on the same key) is sampled into a
// Space-Saving summary of kCapacity names (a new name takes the place of the least counted, inheriting its
// count plus one), so a key read more than 1/kCapacity of the time is always in it. Written by its owner
// thread; read by any (INFO, /metrics) under the lock, which the owner takes only on sampled reads.
class hot_keys {
public:
    static constexpr std::size_t kCapacity = 64;
    static constexpr std::uint32_t kEvery = 16;  // a power of two
    static constexpr std::size_t kLongestName = 256;  // longer names are not sampled (memory stays bounded)

    struct key_count {
        std::uint32_t db;
        std::string name;
        std::uint64_t reads;  // estimated: sampled reads times kEvery
    };

    void read(std::uint32_t db, std::string_view name) {
        rng_ ^= rng_ << 13;  // xorshift64
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        if ((rng_ & (kEvery - 1)) != 0) return;
        if (name.size() <= kLongestName) sample(db, name);
    }

    std::vector<key_count> snapshot() const;

    // The `n` most read keys of several threads' summaries, most read first.
    static std::vector<key_count> top(const std::vector<const hot_keys*>& all, std::size_t n);

private:
    void sample(std::uint32_t db, std::string_view name);

    std::uint64_t rng_ = 0x9E3779B97F4A7C15ULL;  // owner thread only
    mutable std::mutex mu_;
    std::vector<key_count> slots_;  // GUARDED_BY(mu_)
};

}  // namespace respcache
