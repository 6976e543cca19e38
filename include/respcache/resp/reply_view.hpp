#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace respcache::resp {

// Light readers of complete replies (as framed by reply_framer), for the few replies the proxy itself
// needs to look into. None of them copies.

// The top-level elements of an array reply, each as its own complete encoded reply. nullopt if `reply`
// is not an array (a nil array gives nullopt too).
std::optional<std::vector<std::string_view>> array_elements(std::string_view reply);

// The top-level elements of any aggregate reply: an array, a set or a push (RESP3 > frames), each
// element as its own complete encoded reply; a map's (or attribute's) as key, value, key, value...
// nullopt for anything else (nil included).
std::optional<std::vector<std::string_view>> elements(std::string_view reply);

// The payload of a bulk string ("$3\r\nabc\r\n" -> "abc"), of a RESP3 verbatim string without its format
// ("=7\r\ntxt:abc\r\n" -> "abc"), or of a simple string or error line ("+OK\r\n" -> "OK"). nullopt for
// nil and for other types.
std::optional<std::string_view> string_value(std::string_view reply);

// The value of an integer reply (":42\r\n" -> 42).
std::optional<std::int64_t> integer_value(std::string_view reply);

inline bool is_error(std::string_view reply) noexcept { return !reply.empty() && reply[0] == '-'; }
inline bool is_ok(std::string_view reply) noexcept { return reply == "+OK\r\n"; }
// A non-nil bulk string.
inline bool is_bulk(std::string_view reply) noexcept { return reply.size() >= 4 && reply[0] == '$' && reply[1] != '-'; }
// A null: RESP2's nil bulk string or nil array, RESP3's null.
inline bool is_null(std::string_view reply) noexcept {
    return reply == "$-1\r\n" || reply == "*-1\r\n" || reply == "_\r\n";
}
// A RESP3 push frame (>), which is never the reply to a request.
inline bool is_push(std::string_view reply) noexcept { return !reply.empty() && reply[0] == '>'; }

}  // namespace respcache::resp
