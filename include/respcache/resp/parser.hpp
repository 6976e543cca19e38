#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/resp/limits.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::resp {

enum class parse_status {
    need_more,  // the bytes end inside a command; call again with the same bytes plus more
    done,       // one command (possibly empty, see request_parser::args) was parsed
    error,      // the bytes are not RESP; the connection must be answered error_text() and closed
};

struct parse_result {
    parse_status status;
    // With done: how many bytes of the input the command took. With need_more and error: 0.
    std::size_t consumed = 0;
};

// Incremental, zero-copy parser of client requests: multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and
// inline (`GET k\r\n`), with Redis's exact acceptance rules and error texts.
//
// Contract: the caller keeps the unconsumed bytes of the connection in one contiguous buffer and calls
// parse() with all of them. After need_more, the next call must pass the same bytes (they may have moved)
// followed by new ones; the parser resumes where it stopped, so a command that arrives in many pieces
// costs O(its size) in total, not O(size * pieces). After done, the caller drops `consumed` bytes from
// the front before the next call. After error, the parser must not be used again but reset().
//
// args() are views into the caller's buffer (multibulk) or into the parser's own storage (inline, where
// quotes and escapes are decoded); they stay valid until the next call to parse() or reset(), provided
// the caller does not modify or move its buffer meanwhile.
class request_parser {
public:
    explicit request_parser(limits lim = {}) : limits_(lim) {}

    parse_result parse(std::string_view input);

    // The arguments of the command parsed by the last done result. Empty for requests Redis ignores
    // silently (`*0`, `*-1`, blank inline lines): the caller consumes them and sends nothing.
    std::span<const std::string_view> args() const noexcept { return args_; }

    // True when the last done command was an inline command.
    bool last_was_inline() const noexcept { return last_inline_; }

    // With error: the Redis error text, without the leading '-' and without CRLF,
    // e.g. "ERR Protocol error: invalid bulk length".
    const std::string& error_text() const noexcept { return error_; }

    // Bytes of a partially received command that the parser has already examined. A caller may use it to
    // tell how far a huge command has progressed; it is 0 between commands.
    std::size_t progress() const noexcept { return pos_; }

    void reset();

    // While on, requests are held to Redis's limits for clients that have not authenticated yet: at
    // most 10 arguments, each at most 16384 bytes.
    void set_unauthenticated(bool on) noexcept { unauthenticated_ = on; }

private:
    parse_result parse_multibulk(std::string_view in);
    parse_result parse_inline(std::string_view in);
    parse_result fail(std::string text);
    parse_result finish(std::string_view in, std::size_t end);

    limits limits_;
    // Resumable state of the command being parsed (all offsets relative to the start of the command).
    enum class mode : std::uint8_t { none, multibulk, inline_ } mode_ = mode::none;
    std::size_t pos_ = 0;              // first byte not yet parsed
    std::int64_t multibulk_len_ = 0;   // announced argument count
    std::int64_t bulk_len_ = -1;       // length of the bulk being read, -1 while its header is pending
    std::vector<std::pair<std::size_t, std::size_t>> spans_;  // (offset, length) of parsed arguments
    std::string inline_storage_;       // decoded inline arguments
    std::vector<std::string_view> args_;
    bool last_inline_ = false;
    bool unauthenticated_ = false;
    std::string error_;
};

namespace detail {
// Redis's string2ll (util::parse_int64), as the parser applies it.
using util::parse_int64;
// Redis's sdssplitargs over one inline line: decodes "..." (with \n \r \t \b \a \\ \" \xHH) and '...'
// quoting. Appends the decoded bytes to storage and (offset, length) pairs to spans. Returns false on
// unbalanced quotes (or a closing quote not followed by a space).
bool split_inline_args(std::string_view line, std::string& storage,
                       std::vector<std::pair<std::size_t, std::size_t>>& spans);
}  // namespace detail

}  // namespace respcache::resp
