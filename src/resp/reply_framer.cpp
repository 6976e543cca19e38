#include "respcache/resp/reply_framer.hpp"

#include <cstring>

#include "respcache/resp/parser.hpp"

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
        switch (type) {
            case '+':
            case '-':
            case ':':
            case ',':
            case '#':
            case '(':
            case '_':
                break;
            case '$':
            case '!':
            case '=': {
                std::int64_t len = 0;
                if (!detail::parse_int64(header, len) || len < -1 || (len == -1 && type != '$') ||
                    (len > 0 && static_cast<std::uint64_t>(len) > limits_.max_bulk_len))
                    return fail("invalid bulk length in reply");
                if (len >= 0) {
                    const std::size_t need = next_pos + static_cast<std::size_t>(len) + 2;
                    if (in.size() < need) return {frame_status::need_more, 0};
                    next_pos = need;
                }
                break;
            }
            case '*':
            case '~':
            case '>':
            case '%':
            case '|': {
                std::int64_t count = 0;
                if (!detail::parse_int64(header, count) || count < -1 || (count == -1 && type != '*') ||
                    count > INT32_MAX)
                    return fail("invalid aggregate length in reply");
                if (count > 0) children = type == '%' ? count * 2 : count;
                // An attribute map (even an empty one) is followed by the reply it annotates: frame both
                // as one.
                if (type == '|') children = count * 2 + 1;
                break;
            }
            default:
                return fail(std::string("invalid reply type byte '") + type + "'");
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
