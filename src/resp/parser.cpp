#include "respcache/resp/parser.hpp"

#include <algorithm>
#include <cstring>

#include "respcache/util/ascii.hpp"

namespace respcache::resp {

namespace detail {

namespace {
bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool is_hex(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
}

// The line as sdssplitargs reads its C string: a NUL byte past the end.
struct c_line {
    std::string_view s;
    char operator[](std::size_t i) const noexcept { return i < s.size() ? s[i] : '\0'; }
};

enum class quoting { none, double_quotes, single_quotes };
enum class arg_step { more, done, unbalanced };

char unescape(char e) noexcept {
    switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case 'b': return '\b';
        case 'a': return '\a';
        default: return e;
    }
}

// Takes the byte at `p` inside double quotes; `p` is left on the last byte taken.
arg_step double_quoted_step(c_line at, std::size_t& p, std::string& storage) {
    const char c = at[p];
    if (c == '\\' && at[p + 1] == 'x' && is_hex(at[p + 2]) && is_hex(at[p + 3])) {
        storage.push_back(static_cast<char>(hex_value(at[p + 2]) * 16 + hex_value(at[p + 3])));
        p += 3;
    } else if (c == '\\' && at[p + 1] != '\0') {
        ++p;
        storage.push_back(unescape(at[p]));
    } else if (c == '"') {
        // A closing quote must be followed by a space or by nothing at all.
        if (at[p + 1] != '\0' && !is_space(at[p + 1])) return arg_step::unbalanced;
        return arg_step::done;
    } else if (c == '\0') {
        return arg_step::unbalanced;
    } else {
        storage.push_back(c);
    }
    return arg_step::more;
}

// Takes the byte at `p` inside single quotes; `p` is left on the last byte taken.
arg_step single_quoted_step(c_line at, std::size_t& p, std::string& storage) {
    const char c = at[p];
    if (c == '\\' && at[p + 1] == '\'') {
        ++p;
        storage.push_back('\'');
    } else if (c == '\'') {
        if (at[p + 1] != '\0' && !is_space(at[p + 1])) return arg_step::unbalanced;
        return arg_step::done;
    } else if (c == '\0') {
        return arg_step::unbalanced;
    } else {
        storage.push_back(c);
    }
    return arg_step::more;
}

// Takes the byte `c` outside quotes: a delimiter ends the argument, a quote opens a quoted part.
arg_step unquoted_step(char c, quoting& q, std::string& storage) {
    switch (c) {
        case ' ':
        case '\n':
        case '\r':
        case '\t':
        case '\0': return arg_step::done;
        case '"': q = quoting::double_quotes; break;
        case '\'': q = quoting::single_quotes; break;
        default: storage.push_back(c); break;
    }
    return arg_step::more;
}

// Appends the argument that starts at `p` to `storage` and leaves `p` past it; false on unbalanced quotes.
bool read_arg(c_line at, std::size_t& p, std::string& storage) {
    quoting q = quoting::none;
    for (;;) {
        arg_step step = arg_step::more;
        switch (q) {
            case quoting::double_quotes: step = double_quoted_step(at, p, storage); break;
            case quoting::single_quotes: step = single_quoted_step(at, p, storage); break;
            case quoting::none: step = unquoted_step(at[p], q, storage); break;
        }
        if (step == arg_step::unbalanced) return false;
        if (p < at.s.size()) ++p;
        if (step == arg_step::done) return true;
    }
}
}  // namespace

bool split_inline_args(std::string_view line, std::string& storage,
                       std::vector<std::pair<std::size_t, std::size_t>>& spans) {
    // Redis works on a C string: a NUL byte ends the line.
    if (auto z = line.find('\0'); z != std::string_view::npos) line = line.substr(0, z);
    const std::size_t n = line.size();
    storage.reserve(storage.size() + n);
    std::size_t p = 0;
    for (;;) {
        while (p < n && is_space(line[p])) ++p;
        if (p >= n) return true;
        const std::size_t start = storage.size();
        if (!read_arg(c_line{line}, p, storage)) return false;
        spans.emplace_back(start, storage.size() - start);
    }
}

}  // namespace detail

void request_parser::reset() {
    mode_ = mode::none;
    pos_ = 0;
    multibulk_len_ = 0;
    bulk_len_ = -1;
    spans_.clear();
    inline_storage_.clear();
    args_.clear();
    error_.clear();
}

parse_result request_parser::fail(std::string text) {
    error_ = std::move(text);
    return {parse_status::error, 0};
}

parse_result request_parser::finish(std::string_view in, std::size_t end) {
    args_.clear();
    const char* base = mode_ == mode::inline_ ? inline_storage_.data() : in.data();
    for (auto [off, len] : spans_) args_.emplace_back(base + off, len);
    last_inline_ = mode_ == mode::inline_;
    mode_ = mode::none;
    pos_ = 0;
    multibulk_len_ = 0;
    bulk_len_ = -1;
    spans_.clear();
    return {parse_status::done, end};
}

parse_result request_parser::parse(std::string_view in) {
    if (mode_ == mode::none) {
        if (in.empty()) return {parse_status::need_more, 0};
        mode_ = in[0] == '*' ? mode::multibulk : mode::inline_;
        pos_ = 0;
    }
    return mode_ == mode::multibulk ? parse_multibulk(in) : parse_inline(in);
}

namespace {
// Where `ch` first occurs in `in` from `from` on, as Redis's strchr finds it: a NUL byte before it
// hides it (Redis keeps waiting for a line end it cannot see).
const char* find_in_c_string(std::string_view in, std::size_t from, char ch) {
    if (from >= in.size()) return nullptr;
    const char* start = in.data() + from;
    const void* found = std::memchr(start, ch, in.size() - from);
    if (found == nullptr) return nullptr;
    const char* at = static_cast<const char*>(found);
    if (std::memchr(start, '\0', static_cast<std::size_t>(at - start)) != nullptr) return nullptr;
    return at;
}
}  // namespace

parse_result request_parser::parse_inline(std::string_view in) {
    const char* found = find_in_c_string(in, pos_, '\n');
    if (found == nullptr && pos_ < in.size() && std::memchr(in.data() + pos_, '\0', in.size() - pos_) != nullptr) {
        // The line holds a NUL: like Redis, never see its end; only the size limit ends the wait.
        if (in.size() > limits_.max_inline_len) return fail("ERR Protocol error: too big inline request");
        return {parse_status::need_more, 0};
    }
    if (found == nullptr) {
        if (in.size() > limits_.max_inline_len) return fail("ERR Protocol error: too big inline request");
        pos_ = in.size();
        return {parse_status::need_more, 0};
    }
    const std::size_t newline = static_cast<std::size_t>(found - in.data());
    // A line over the limit is refused however its bytes arrived: in one read or in many.
    if (newline > limits_.max_inline_len) return fail("ERR Protocol error: too big inline request");
    std::size_t line_end = newline;
    if (line_end > 0 && in[line_end - 1] == '\r') --line_end;
    inline_storage_.clear();
    spans_.clear();
    if (!detail::split_inline_args(in.substr(0, line_end), inline_storage_, spans_))
        return fail("ERR Protocol error: unbalanced quotes in request");
    return finish(in, newline + 1);
}

parse_result request_parser::parse_multibulk(std::string_view in) {
    if (multibulk_len_ == 0) {
        // The `*N\r\n` header. Like Redis, look for '\r' and then skip two bytes.
        const char* cr = find_in_c_string(in, 0, '\r');
        if (cr == nullptr) {
            if (in.size() > limits_.max_inline_len) return fail("ERR Protocol error: too big mbulk count string");
            return {parse_status::need_more, 0};
        }
        const std::size_t idx = static_cast<std::size_t>(cr - in.data());
        if (idx > limits_.max_inline_len) return fail("ERR Protocol error: too big mbulk count string");
        if (idx + 2 > in.size()) return {parse_status::need_more, 0};
        std::int64_t count = 0;
        if (!util::parse_int64(in.substr(1, idx - 1), count) || count > limits_.max_multibulk_len)
            return fail("ERR Protocol error: invalid multibulk length");
        if (unauthenticated_ && count > 10) return fail("ERR Protocol error: unauthenticated multibulk length");
        pos_ = idx + 2;
        if (count <= 0) {
            spans_.clear();
            return finish(in, pos_);
        }
        multibulk_len_ = count;
        spans_.clear();
        spans_.reserve(static_cast<std::size_t>(std::min<std::int64_t>(count, 1024)));
    }
    while (static_cast<std::int64_t>(spans_.size()) < multibulk_len_) {
        if (bulk_len_ < 0) {
            const std::string_view rest = in.substr(pos_);
            const char* cr = find_in_c_string(rest, 0, '\r');
            if (cr == nullptr) {
                if (rest.size() > limits_.max_inline_len) return fail("ERR Protocol error: too big bulk count string");
                return {parse_status::need_more, 0};
            }
            const std::size_t idx = static_cast<std::size_t>(cr - rest.data());
            if (idx > limits_.max_inline_len) return fail("ERR Protocol error: too big bulk count string");
            if (idx + 2 > rest.size()) return {parse_status::need_more, 0};
            if (rest[0] != '$') return fail(std::string("ERR Protocol error: expected '$', got '") + rest[0] + "'");
            std::int64_t len = 0;
            if (!util::parse_int64(rest.substr(1, idx - 1), len) || len < 0 ||
                static_cast<std::uint64_t>(len) > limits_.max_bulk_len)
                return fail("ERR Protocol error: invalid bulk length");
            if (unauthenticated_ && len > 16384) return fail("ERR Protocol error: unauthenticated bulk length");
            pos_ += idx + 2;
            bulk_len_ = len;
        }
        const std::size_t need = static_cast<std::size_t>(bulk_len_) + 2;
        if (in.size() - pos_ < need) return {parse_status::need_more, 0};
        spans_.emplace_back(pos_, static_cast<std::size_t>(bulk_len_));
        pos_ += need;
        bulk_len_ = -1;
    }
    return finish(in, pos_);
}

}  // namespace respcache::resp
