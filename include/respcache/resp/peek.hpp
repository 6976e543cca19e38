#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace respcache::resp {

// The keys of the GET commands at the front of `input`, complete and in multibulk form
// (`*2\r\n$3\r\nGET\r\n$<n>\r\n<key>\r\n`, GET in any case), up to keys.size(): a pipeline's next reads,
// known before the request parser reaches them. Stops at the first bytes that are anything else (another
// command, an inline command, a GET not yet whole, a malformed length). Returns how many keys it wrote;
// they are views into `input`. Never an error: the request parser alone decides what the bytes mean.
std::size_t leading_get_keys(std::string_view input, std::span<std::string_view> keys) noexcept;

}  // namespace respcache::resp
