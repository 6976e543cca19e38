#pragma once

#include <cstddef>
#include <cstdint>

namespace respcache::resp {

// The protocol limits, as Redis has them (DESIGN.md section 5). Every place that parses client or
// backend bytes takes one of these by value; nothing reads a global.
struct limits {
    // proto-max-bulk-len: the largest bulk string a request or a reply may carry.
    std::size_t max_bulk_len = 512ull * 1024 * 1024;
    // PROTO_INLINE_MAX_SIZE: the longest inline command line, and the longest `*N` / `$N` header line.
    std::size_t max_inline_len = 64 * 1024;
    // The largest argument count of one multibulk request (Redis: INT_MAX).
    std::int64_t max_multibulk_len = 2147483647;
    // client-query-buffer-limit: bytes one client may have buffered that do not yet form a command.
    std::size_t max_query_buffer = 1024ull * 1024 * 1024;
    // The deepest nesting of aggregates accepted in a backend reply.
    std::size_t max_reply_depth = 1024 * 1024;
};

}  // namespace respcache::resp
