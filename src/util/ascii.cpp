#include "respcache/util/ascii.hpp"

#include <cstdint>

namespace respcache::util {

namespace {
constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

std::string_view to_lower(std::string_view name, std::span<char> buf) noexcept {
    if (name.size() > buf.size()) return name;
    for (std::size_t i = 0; i < name.size(); ++i) buf[i] = lower(name[i]);
    return {buf.data(), name.size()};
}

bool parse_int64(std::string_view s, std::int64_t& out) noexcept {
    // Same acceptance as Redis's string2ll, so that "*01" or "$+3" fail here exactly as they fail there.
    if (s.empty() || s.size() > 20) return false;
    if (s.size() == 1 && s[0] == '0') {
        out = 0;
        return true;
    }
    std::size_t i = 0;
    const bool negative = s[0] == '-';
    if (negative) {
        i = 1;
        if (s.size() == 1) return false;
    }
    if (s[i] < '1' || s[i] > '9') return false;
    std::uint64_t v = 0;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c < '0' || c > '9') return false;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (negative) {
        if (v > static_cast<std::uint64_t>(INT64_MAX) + 1) return false;
        out = static_cast<std::int64_t>(0 - v);
    } else {
        if (v > static_cast<std::uint64_t>(INT64_MAX)) return false;
        out = static_cast<std::int64_t>(v);
    }
    return true;
}

}  // namespace respcache::util
