#include "respcache/resp/reply_framer.hpp"

#include <cstring>

#include "respcache/util/ascii.hpp"

namespace respcache::resp {

void reply_framer::reset() {
    pos_ = 0;
    open_.clear();
    error_.clear();
}

frame_result reply_framer::fail(std::string text) {
    error_ = std::move(text);
    return {frame_status::error, 0};
}

namespace {

enum class element_scan { complete, need_more, bad_bulk_length, bad_aggregate_length, bad_type };

// A bulk-like element ($ ! =) whose header is `header`: on complete, `next_pos` is past its payload.
element_scan scan_bulk(char type, std::string_view header, std::string_view in, std::size_t& next_pos,
                       std::size_t max_bulk_len) noexcept {
    std::int64_t len = 0;
    if (!util::parse_int64(header, len) || len < -1 || (len == -1 && type != '$') ||
        (len > 0 && static_cast<std::uint64_t>(len) > max_bulk_len))
        return element_scan::bad_bulk_length;
    if (len >= 0) {
        const std::size_t need = next_pos + static_cast<std::size_t>(len) + 2;
        if (in.size() < need) return element_scan::need_more;
        next_pos = need;
    }
    return element_scan::complete;
}

// An aggregate element (* ~ > % |): on complete, `children` is the number of elements it opens.
element_scan scan_aggregate(char type, std::string_view header, std::int64_t& children) noexcept {
    std::int64_t count = 0;
    if (!util::parse_int64(header, count) || count < -1 || (count == -1 && type != '*') || count > INT32_MAX)
        return element_scan::bad_aggregate_length;
    if (count > 0) children = type == '%' ? count * 2 : count;
    // An attribute map (even an empty one) is followed by the reply it annotates: frame both
    // as one.
    if (type == '|') children = count * 2 + 1;
    return element_scan::complete;
}

// The element of type `type` whose header line is `header` and whose bytes follow from `next_pos` on.
element_scan scan_element(char type, std::string_view header, std::string_view in, std::size_t& next_pos,
                          std::int64_t& children, std::size_t max_bulk_len) noexcept {
    switch (type) {
        case '+':
        case '-':
        case ':':
        case ',':
        case '#':
        case '(':
        case '_':
            return element_scan::complete;
        case '$':
        case '!':
        case '=':
            return scan_bulk(type, header, in, next_pos, max_bulk_len);
        case '*':
        case '~':
        case '>':
        case '%':
        case '|':
            return scan_aggregate(type, header, children);
        default:
            return element_scan::bad_type;
    }
}

}  // namespace

frame_result reply_framer::next(std::string_view in) {
    for (;;) {
        if (pos_ >= in.size()) return {frame_status::need_more, 0};
        const void* cr = std::memchr(in.data() + pos_, '\r', in.size() - pos_);
        if (cr == nullptr) return {frame_status::need_more, 0};
        const std::size_t line_end = static_cast<const char*>(cr) - in.data();
        if (line_end + 2 > in.size()) return {frame_status::need_more, 0};
        const char type = in[pos_];
        const std::string_view header = in.substr(pos_ + 1, line_end - pos_ - 1);
        std::size_t next_pos = line_end + 2;
        std::int64_t children = 0;  // elements an aggregate opens; 0 means the element is complete
        switch (scan_element(type, header, in, next_pos, children, limits_.max_bulk_len)) {
            case element_scan::complete: break;
            case element_scan::need_more: return {frame_status::need_more, 0};
            case element_scan::bad_bulk_length: return fail("invalid bulk length in reply");
            case element_scan::bad_aggregate_length: return fail("invalid aggregate length in reply");
            case element_scan::bad_type: return fail(std::string("invalid reply type byte '") + type + "'");
        }
        pos_ = next_pos;
        if (children > 0) {
            if (open_.size() >= limits_.max_reply_depth) return fail("reply nested too deeply");
            open_.push_back(children);
            continue;
        }
        // One element is complete: close every aggregate it completes.
        while (!open_.empty() && --open_.back() == 0) open_.pop_back();
        if (open_.empty()) {
            const std::size_t len = pos_;
            pos_ = 0;
            return {frame_status::done, len};
        }
    }
}

}  // namespace respcache::resp
