#include "respcache/resp/peek.hpp"

#include <cstdint>

#include "respcache/util/ascii.hpp"

namespace respcache::resp {

namespace {
constexpr std::string_view kHead = "*2\r\n$3\r\n";
constexpr std::size_t kMaxLengthField = 21;  // after the "$": 19 digits (the longest int64 >= 0) and \r\n
}  // namespace

std::size_t leading_get_keys(std::string_view input, std::span<std::string_view> keys) noexcept {
    std::size_t found = 0;
    while (found < keys.size() && input.starts_with(kHead)) {
        std::string_view rest = input.substr(kHead.size());
        if (rest.size() < 6 || !util::iequals(rest.substr(0, 3), "GET") || rest.substr(3, 3) != "\r\n$") break;
        rest.remove_prefix(6);
        const std::size_t eol = rest.substr(0, kMaxLengthField).find("\r\n");
        std::int64_t len = 0;
        if (eol == std::string_view::npos || !util::parse_int64(rest.substr(0, eol), len) || len < 0) break;
        rest.remove_prefix(eol + 2);
        const auto n = static_cast<std::uint64_t>(len);
        if (rest.size() < n + 2 || rest.substr(n, 2) != "\r\n") break;
        keys[found++] = rest.substr(0, n);
        input = rest.substr(n + 2);
    }
    return found;
}

}  // namespace respcache::resp
