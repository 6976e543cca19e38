#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

#include "respcache/config/config.hpp"

// The value parsers of the configuration: durations, sizes and backend URLs.
namespace respcache {

namespace detail {

namespace {
std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

template <typename T>
std::optional<T> parse_unsigned(std::string_view text) {
    T value{};
    if (text.empty()) return std::nullopt;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        auto v = std::string(s.substr(i + 1, 2));
        if (!std::isxdigit(static_cast<unsigned char>(v[0])) ||
            !std::isxdigit(static_cast<unsigned char>(v[1])))
            return std::nullopt;
        out.push_back(static_cast<char>(std::stoi(v, nullptr, 16)));
        i += 2;
    }
    return out;
}
}  // namespace

std::optional<milliseconds> parse_duration(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
    auto number = parse_unsigned<std::uint64_t>(text.substr(0, digits));
    if (!number) return std::nullopt;
    const std::string unit = lower(text.substr(digits));
    std::uint64_t factor = 0;
    if (unit == "ms")
        factor = 1;
    else if (unit.empty() || unit == "s")
        factor = 1000;
    else if (unit == "m")
        factor = 60'000;
    else if (unit == "h")
        factor = 3'600'000;
    else
        return std::nullopt;
    if (*number > static_cast<std::uint64_t>(INT64_MAX) / factor / 1000) return std::nullopt;
    return milliseconds(static_cast<std::int64_t>(*number * factor));
}

std::optional<std::size_t> parse_size(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
    auto number = parse_unsigned<std::uint64_t>(text.substr(0, digits));
    if (!number) return std::nullopt;
    const std::string unit = lower(text.substr(digits));
    // Redis's memory units: k, m, g are powers of 1000; kb, mb, gb powers of 1024.
    static const std::pair<const char*, std::uint64_t> units[] = {
        {"", 1},         {"b", 1},        {"k", 1000},           {"kb", 1024},
        {"m", 1000000},  {"mb", 1048576}, {"g", 1000000000ull}, {"gb", 1073741824ull},
    };
    for (auto& [name, factor] : units) {
        if (unit == name) {
            if (*number > SIZE_MAX / factor) return std::nullopt;
            return static_cast<std::size_t>(*number * factor);
        }
    }
    return std::nullopt;
}

namespace {
// Sets the user and the password from the userinfo of a URL (before its '@'); false if either is not
// validly percent-encoded.
bool apply_userinfo(std::string_view userinfo, backend_address& out) {
    auto colon = userinfo.find(':');
    std::optional<std::string> user;
    std::optional<std::string> pass;
    if (colon == std::string_view::npos) {
        // A lone userinfo is a password, as redis-cli -u reads it.
        user = std::string();
        pass = percent_decode(userinfo);
    } else {
        user = percent_decode(userinfo.substr(0, colon));
        pass = percent_decode(userinfo.substr(colon + 1));
    }
    if (!user || !pass) return false;
    out.user = *user;
    out.password = *pass;
    return true;
}

// Splits `host`, `host:port` or `[ipv6]:port` into the host and the (possibly empty) port; false if
// malformed.
bool split_host_port(std::string_view hostport, std::string_view& host, std::string_view& port) {
    host = hostport;
    port = std::string_view();
    if (!hostport.empty() && hostport.front() == '[') {
        auto close = hostport.find(']');
        if (close == std::string_view::npos) return false;
        host = hostport.substr(1, close - 1);
        std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':' || after.size() == 1) return false;
            port = after.substr(1);
        }
    } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
        host = hostport.substr(0, colon);
        port = hostport.substr(colon + 1);
        // An IPv6 address needs brackets: redis://[::1]:6379.
        if (host.find(':') != std::string_view::npos) return false;
    }
    return true;
}
}  // namespace

namespace {
// redis+cluster://[userinfo@]seed[,seed...]: each seed read as the host:port of a redis:// URL.
std::optional<backend_address> parse_cluster_url(std::string_view rest) {
    std::string userinfo;
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        userinfo = std::string(rest.substr(0, at + 1));
        rest = rest.substr(at + 1);
    }
    if (rest.ends_with('/')) rest.remove_suffix(1);
    std::optional<backend_address> out;
    while (true) {
        const auto comma = rest.find(',');
        const std::string_view seed = rest.substr(0, comma);
        if (seed.empty() || seed.find('/') != std::string_view::npos) return std::nullopt;
        auto one = parse_backend_url("redis://" + userinfo + std::string(seed));
        if (!one) return std::nullopt;
        if (!out) out = *one;
        out->cluster_seeds.emplace_back(one->host, one->port);
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
    }
    return out;
}
}  // namespace

std::optional<backend_address> parse_backend_url(std::string_view text) {
    constexpr std::string_view cluster = "redis+cluster://";
    if (text.starts_with(cluster)) return parse_cluster_url(text.substr(cluster.size()));
    constexpr std::string_view plain = "redis://";
    constexpr std::string_view tls = "rediss://";
    backend_address out;
    out.tls = text.starts_with(tls);
    if (!out.tls && !text.starts_with(plain)) return std::nullopt;
    std::string_view rest = text.substr(out.tls ? tls.size() : plain.size());
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        if (!apply_userinfo(userinfo, out)) return std::nullopt;
    }
    std::string_view hostport = rest;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        hostport = rest.substr(0, slash);
        std::string_view db = rest.substr(slash + 1);
        if (!db.empty()) {
            auto n = parse_unsigned<std::uint32_t>(db);
            if (!n) return std::nullopt;
            out.db = *n;
        }
    }
    std::string_view host;
    std::string_view port;
    if (!split_host_port(hostport, host, port)) return std::nullopt;
    if (host.empty()) return std::nullopt;
    for (char c : host)
        if (std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '@') return std::nullopt;
    out.host = std::string(host);
    if (!port.empty()) {
        auto p = parse_unsigned<std::uint16_t>(port);
        if (!p || *p == 0) return std::nullopt;
        out.port = *p;
    } else if (hostport.find(':') != std::string_view::npos && hostport.front() != '[') {
        return std::nullopt;
    }
    return out;
}

}  // namespace detail

}  // namespace respcache
