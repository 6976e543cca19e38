#include "respcache/resp/reply_view.hpp"

#include <cstring>

#include "respcache/util/ascii.hpp"
#include "respcache/resp/reply_framer.hpp"

namespace respcache::resp {

namespace {
// The header line of a reply, without its type byte and CRLF, and where the body starts.
bool header(std::string_view reply, std::string_view& line, std::size_t& body) {
    const void* cr = std::memchr(reply.data(), '\r', reply.size());
    if (reply.empty() || cr == nullptr) return false;
    const std::size_t end = static_cast<const char*>(cr) - reply.data();
    line = reply.substr(1, end - 1);
    body = end + 2;
    return body <= reply.size();
}
}  // namespace

namespace {
// `count` complete replies from the start of `rest`.
std::optional<std::vector<std::string_view>> split(std::string_view rest, std::int64_t count) {
    std::vector<std::string_view> out;
    out.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) {
        reply_framer framer;
        const frame_result r = framer.next(rest);
        if (r.status != frame_status::done) return std::nullopt;
        out.push_back(rest.substr(0, r.length));
        rest.remove_prefix(r.length);
    }
    return out;
}

// The elements of an aggregate of one of `types`; maps and attributes count two per entry.
std::optional<std::vector<std::string_view>> aggregate(std::string_view reply, std::string_view types) {
    std::string_view line;
    std::size_t body = 0;
    if (reply.empty() || types.find(reply[0]) == std::string_view::npos || !header(reply, line, body))
        return std::nullopt;
    std::int64_t count = 0;
    if (!util::parse_int64(line, count) || count < 0) return std::nullopt;
    if (reply[0] == '%' || reply[0] == '|') count *= 2;
    return split(reply.substr(body), count);
}
}  // namespace

std::optional<std::vector<std::string_view>> array_elements(std::string_view reply) { return aggregate(reply, "*"); }

std::optional<std::vector<std::string_view>> elements(std::string_view reply) { return aggregate(reply, "*~>%|"); }

std::optional<std::string_view> string_value(std::string_view reply) {
    std::string_view line;
    std::size_t body = 0;
    if (!header(reply, line, body)) return std::nullopt;
    if (reply[0] == '+' || reply[0] == '-') return line;
    if (reply[0] != '$' && reply[0] != '=') return std::nullopt;
    std::int64_t len = 0;
    if (!util::parse_int64(line, len) || len < 0 || body + static_cast<std::size_t>(len) > reply.size())
        return std::nullopt;
    if (reply[0] == '=') {  // "txt:" or "mkd:" first
        if (len < 4) return std::nullopt;
        return reply.substr(body + 4, static_cast<std::size_t>(len) - 4);
    }
    return reply.substr(body, static_cast<std::size_t>(len));
}

std::optional<std::int64_t> integer_value(std::string_view reply) {
    std::string_view line;
    std::size_t body = 0;
    if (reply.empty() || reply[0] != ':' || !header(reply, line, body)) return std::nullopt;
    std::int64_t v = 0;
    if (!util::parse_int64(line, v)) return std::nullopt;
    return v;
}

}  // namespace respcache::resp
