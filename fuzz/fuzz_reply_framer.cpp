// The reply framer (resp::reply_framer) fed a backend's byte stream, and the reply views
// (resp/reply_view) reading every reply it frames.
//
// Input: byte 0 picks the limits (bit 0 a 32-byte bulk limit, bit 1 a nesting limit of 4); byte 1 seeds
// how the rest, the backend's bytes, is cut into reads. The stream is framed once as the reads come and
// once delivered whole: both must find the same replies and end the same way. Every framed reply must
// read back consistently: an aggregate's elements are complete replies that, laid end to end, are its
// body; a bulk string's value is as long as its header says.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/resp/reply_framer.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/util/ascii.hpp"
#include "stream_feed.hpp"

using namespace respcache;
using fuzzing::fed;
using fuzzing::require;

namespace {

struct outcome {
    std::vector<std::string> replies;
    fed end = fed::need_more;
    std::string error;
    bool operator==(const outcome&) const = default;
};

// The header line's number, and where the body starts (the reply is framed, so both exist).
std::int64_t header_number(std::string_view reply, std::size_t& body) {
    const std::size_t cr = reply.find('\r');
    body = cr + 2;
    std::int64_t n = 0;
    if (!util::parse_int64(reply.substr(1, cr - 1), n)) return -2;
    return n;
}

void check_views(std::string_view reply) {
    std::size_t body = 0;
    const std::int64_t n = header_number(reply, body);
    const auto parts = resp::elements(reply);
    const char type = reply[0];
    if (std::string_view("*~>%").find(type) != std::string_view::npos && n >= 0) {
        require(parts.has_value(), "a framed aggregate has no elements");
        require(parts->size() == static_cast<std::size_t>(type == '%' ? n * 2 : n), "element count differs from the header");
        std::string joined;
        for (std::string_view e : *parts) joined.append(e);
        require(joined == reply.substr(body), "elements laid end to end are not the aggregate's body");
    }
    if (type == '|') require(parts.has_value() && parts->size() == static_cast<std::size_t>(2 * n), "attribute entries");
    if (type == '*') require(resp::array_elements(reply).has_value() == (n >= 0), "array_elements");
    const auto value = resp::string_value(reply);
    if (type == '$' && n >= 0)
        require(value.has_value() && value->size() == static_cast<std::size_t>(n), "a bulk string's value length");
    if (type == '+' || type == '-') require(value.has_value() && value->size() + 3 == reply.size(), "a line's value");
    const auto number = resp::integer_value(reply);
    if (type != ':') require(!number.has_value(), "integer_value of a non-integer");
    (void)resp::is_null(reply);
}

outcome frame_stream(std::uint8_t bits, std::string_view stream, std::uint8_t split_seed) {
    resp::limits lim;
    if (bits & 1) lim.max_bulk_len = 32;
    if (bits & 2) lim.max_reply_depth = 4;
    resp::reply_framer framer(lim);
    fuzzing::splitter split(split_seed);
    outcome out;
    out.end = fuzzing::feed(stream, split, [&](std::string_view in) -> std::pair<fed, std::size_t> {
        const resp::frame_result r = framer.next(in);
        if (r.status == resp::frame_status::error) return {fed::error, 0};
        if (r.status == resp::frame_status::need_more) return {fed::need_more, r.length};
        if (r.length > 0 && r.length <= in.size()) check_views(in.substr(0, r.length));
        out.replies.emplace_back(in.substr(0, r.length));
        return {fed::done, r.length};
    });
    if (out.end == fed::error) out.error = framer.error_text();
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return fuzzing::pieces_match_whole(data, size, frame_stream);
}
