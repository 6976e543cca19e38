#pragma once

#include <cstdint>
#include <span>
#include <string_view>

// Byte-level text helpers shared by every layer: command names, keywords and integers as Redis reads them.
namespace respcache::util {

// ASCII case-insensitive equality (command names, keywords).
bool iequals(std::string_view a, std::string_view b) noexcept;

// Lower-cases ASCII letters of `name` into `buf` (which must be at least name.size() long); returns a
// view of it. Names longer than `buf` are returned unchanged.
std::string_view to_lower(std::string_view name, std::span<char> buf) noexcept;

// Redis's string2ll: an optional '-', then digits without leading zeros, no spaces, no overflow. False
// (and `out` untouched) for anything else.
bool parse_int64(std::string_view s, std::int64_t& out) noexcept;

}  // namespace respcache::util
