#pragma once

// What the stream harnesses share: how a byte stream is cut into the reads a connection would deliver,
// and the loop that feeds an incremental decoder (request parser, reply framer) as its contract says.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

namespace respcache::fuzzing {

// Aborts with `what` when `ok` is false: libFuzzer keeps the input that got here.
inline void require(bool ok, const char* what) {
    if (!ok) {
        __builtin_printf("invariant broken: %s\n", what);
        std::abort();
    }
}

// Read sizes drawn from one seed byte: seed 0 delivers everything at once, others mostly small reads
// (1 to 16 bytes) with an occasional larger one, deterministically.
class splitter {
public:
    explicit splitter(std::uint8_t seed) : state_(seed), whole_(seed == 0) {}
    std::size_t next() {
        if (whole_) return static_cast<std::size_t>(-1) / 2;
        state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
        const std::uint64_t r = state_ >> 33;
        return (r & 7) == 0 ? 1 + (r >> 3) % 256 : 1 + (r >> 3) % 16;
    }

private:
    std::uint64_t state_;
    bool whole_;
};

enum class fed { done, need_more, error };

// Feeds `stream` to `step` read by read, as a connection's owner would: `step(unconsumed)` returns what
// the decoder said and, with done, how many bytes it took; those are dropped from the front. Between
// reads the unconsumed bytes move to a new allocation (the contract allows it; AddressSanitizer then
// catches a decoder that kept a pointer into the old one). Stops at the first error, or once the whole
// stream is delivered and the decoder needs more. Returns the last status.
template <class Step>
fed feed(std::string_view stream, splitter& split, Step&& step) {
    std::string buffer;
    std::size_t delivered = 0;
    for (;;) {
        const auto [status, consumed] = step(std::string_view(buffer));
        if (status == fed::error) return fed::error;
        if (status == fed::done) {
            require(consumed > 0 && consumed <= buffer.size(), "done consumed 0 bytes or more than it was given");
            buffer.erase(0, consumed);
            continue;
        }
        require(consumed == 0, "need_more consumed bytes");
        if (delivered == stream.size()) return fed::need_more;
        const std::size_t n = std::min(split.next(), stream.size() - delivered);
        std::string moved;
        moved.reserve(buffer.size() + n);
        moved.append(buffer).append(stream.substr(delivered, n));
        delivered += n;
        buffer = std::move(moved);
    }
}

// The input of a stream harness: byte 0 the options, byte 1 the split seed, the rest the stream.
// `decode(options, stream, split_seed)` gives what the decoder made of it; fed in reads and fed whole,
// it must make the same.
template <class Decode>
int pieces_match_whole(const std::uint8_t* data, std::size_t size, Decode&& decode) {
    if (size < 2) return 0;
    const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
    const auto pieces = decode(data[0], stream, static_cast<std::uint8_t>(data[1] == 0 ? 1 : data[1]));
    const auto whole = decode(data[0], stream, std::uint8_t{0});
    require(pieces == whole, "the stream decoded read by read differs from the stream decoded whole");
    return 0;
}

}  // namespace respcache::fuzzing
