#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace respcache::cache {

// How often each key was asked for lately, approximately: a count-min sketch of 4-bit counters (four
// rows, one counter per row taken from the key's hash), all halved once the additions reach ten times
// the width, so that old popularity fades. The admission filter of --eviction-policy tinylfu: a new entry
// may take the place of the least recently used one only if its key is asked for more often. Never
// counts below the truth but by collisions; 2 bytes per counted entry of width. Not thread-safe (a
// shard's, under its lock).
class frequency_sketch {
public:
    // `width` counters per row, rounded up to a power of two (at least 64); 0 leaves it off.
    void resize(std::size_t width) {
        if (width == 0) {
            words_.clear();
            return;
        }
        width = std::bit_ceil(std::max<std::size_t>(64, width));
        if (width == width_ && !words_.empty()) return;
        width_ = width;
        words_.assign(kRows * width / kPerWord, 0);
        added_ = 0;
    }
    bool on() const noexcept { return !words_.empty(); }

    void add(std::uint32_t hash) noexcept {
        if (!on()) return;
        for (std::size_t row = 0; row < kRows; ++row) {
            const std::size_t i = index(hash, row);
            std::uint64_t& w = words_[i / kPerWord];
            const unsigned shift = 4 * (i % kPerWord);
            if (((w >> shift) & 0xF) != 0xF) w += std::uint64_t{1} << shift;
        }
        if (++added_ >= 10 * width_) halve();
    }

    unsigned estimate(std::uint32_t hash) const noexcept {
        if (!on()) return 0;
        unsigned best = 0xF;
        for (std::size_t row = 0; row < kRows; ++row) {
            const std::size_t i = index(hash, row);
            best = std::min(best, static_cast<unsigned>((words_[i / kPerWord] >> (4 * (i % kPerWord))) & 0xF));
        }
        return best;
    }

private:
    static constexpr std::size_t kRows = 4;
    static constexpr std::size_t kPerWord = 16;  // 4-bit counters in a 64-bit word

    // Row r's counter: its own region of the table, at a position mixed from the hash with r's seed.
    std::size_t index(std::uint32_t hash, std::size_t row) const noexcept {
        std::uint64_t h = (hash + 1) * (0x9E3779B97F4A7C15ull + 2 * row);
        h ^= h >> 29;
        return row * width_ + static_cast<std::size_t>(h & (width_ - 1));
    }
    void halve() noexcept {
        for (std::uint64_t& w : words_) w = (w >> 1) & 0x7777777777777777ull;
        added_ /= 2;
    }

    std::vector<std::uint64_t> words_;
    std::size_t width_ = 0;
    std::size_t added_ = 0;
};

}  // namespace respcache::cache
