#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/resp/limits.hpp"

namespace respcache::resp {

enum class frame_status { need_more, done, error };

struct frame_result {
    frame_status status;
    // With done: the length in bytes of the complete reply at the front of the input.
    std::size_t length = 0;
};

// Finds where each reply ends in a backend's byte stream, without copying or decoding it, so that
// replies are relayed to clients byte for byte. Understands every RESP2 and RESP3 type; nesting is
// tracked on an explicit stack (bounded by limits::max_reply_depth), never by recursion.
//
// Contract: same resumption rule as request_parser. next() is given the unconsumed bytes starting at a
// reply boundary; after need_more, call again with those bytes extended; after done, drop `length` bytes
// before the next call. After error the stream cannot be trusted: close the connection, then reset().
class reply_framer {
public:
    explicit reply_framer(limits lim = {}) : limits_(lim) {}

    frame_result next(std::string_view input);

    const std::string& error_text() const noexcept { return error_; }
    void reset();

private:
    frame_result fail(std::string text);

    limits limits_;
    std::size_t pos_ = 0;                 // first byte of the current reply not yet framed
    std::vector<std::int64_t> open_;      // elements still expected by each open aggregate
    std::string error_;
};

}  // namespace respcache::resp
