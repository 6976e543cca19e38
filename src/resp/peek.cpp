#include "respcache/resp/peek.hpp"

namespace respcache::resp {

namespace {
constexpr std::string_view kHead = "*2\r\n$3\r\n";
constexpr std::size_t kMaxLengthDigits = 10;

bool is_get(std::string_view name) noexcept {
    return name.size() == 3 && (name[0] | 0x20) == 'g' && (name[1] | 0x20) == 'e' && (name[2] | 0x20) == 't';
}
}  // namespace

std::size_t leading_get_keys(std::string_view input, std::span<std::string_view> keys) noexcept {
    std::size_t found = 0;
    std::size_t pos = 0;
    while (found < keys.size()) {
        std::string_view rest = input.substr(pos);
        if (!rest.starts_with(kHead) || rest.size() < kHead.size() + 6) break;
        if (!is_get(rest.substr(kHead.size(), 3)) || rest.substr(kHead.size() + 3, 3) != "\r\n$") break;
        std::size_t at = kHead.size() + 6;
        std::size_t len = 0;
        std::size_t digits = 0;
        while (at < rest.size() && rest[at] >= '0' && rest[at] <= '9' && digits < kMaxLengthDigits) {
            len = len * 10 + static_cast<std::size_t>(rest[at] - '0');
            ++at;
            ++digits;
        }
        if (digits == 0 || rest.substr(at, 2) != "\r\n") break;
        at += 2;
        if (rest.size() - at < len + 2 || rest.substr(at + len, 2) != "\r\n") break;
        keys[found++] = rest.substr(at, len);
        pos += at + len + 2;
    }
    return found;
}

}  // namespace respcache::resp
