#include "respcache/resp/parser.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/resp/writer.hpp"

using namespace std::string_literals;
using respcache::resp::limits;
using respcache::resp::parse_result;
using respcache::resp::parse_status;
using respcache::resp::request_parser;

namespace {

// One command the parser reported done.
struct command {
    std::vector<std::string> args;
    std::size_t consumed = 0;
    bool is_inline = false;
    bool operator==(const command&) const = default;
};

// Everything observable about feeding a byte stream to a parser until it stops.
struct outcome {
    std::vector<command> commands;
    // The error text if the stream ended in an error, nullopt if it ended in need_more.
    std::optional<std::string> error = std::nullopt;
    // Bytes handed to the parser but not consumed by a done command (when it ended in need_more).
    std::size_t leftover = 0;
    bool operator==(const outcome&) const = default;
};

std::string printable(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c == '\r') out += "\\r";
        else if (c == '\n') out += "\\n";
        else if (c == '\\') out += "\\\\";
        else if (c < 0x20 || c >= 0x7f) {
            static const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else out += static_cast<char>(c);
    }
    return out;
}

std::string describe(const outcome& o) {
    std::ostringstream s;
    for (const auto& c : o.commands) {
        s << (c.is_inline ? "inline" : "multibulk") << " consumed=" << c.consumed << " [";
        for (std::size_t i = 0; i < c.args.size(); ++i) s << (i ? ", " : "") << '"' << printable(c.args[i]) << '"';
        s << "]\n";
    }
    if (o.error) s << "error: " << printable(*o.error) << '\n';
    else s << "need_more, leftover=" << o.leftover << '\n';
    return s.str();
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<outcome> {
    static std::string convert(const outcome& o) {
        std::string s = describe(o);
        s.pop_back();
        for (std::size_t i = 0; (i = s.find('\n', i)) != std::string::npos;) s.replace(i, 1, "; ");
        return "{" + s + "}";
    }
};
}  // namespace Catch

namespace {

command record(const request_parser& p, parse_result r) {
    command c;
    for (auto a : p.args()) c.args.emplace_back(a);
    c.consumed = r.consumed;
    c.is_inline = p.last_was_inline();
    return c;
}

// The calls every feeding strategy makes after each parse(): the contract's invariants.
void check_invariants(const request_parser& p, parse_result r, std::size_t given) {
    if (r.status == parse_status::done) {
        REQUIRE(r.consumed > 0);
        REQUIRE(r.consumed <= given);
        REQUIRE(p.progress() == 0);
    } else {
        REQUIRE(r.consumed == 0);
    }
    if (r.status == parse_status::need_more) REQUIRE(p.progress() <= given);
    if (r.status == parse_status::error) REQUIRE_FALSE(p.error_text().empty());
}

// Feeds the whole input at once, dropping what each done command consumed.
outcome feed_whole(std::string_view input, limits lim) {
    request_parser p(lim);
    outcome o;
    std::size_t off = 0;
    for (;;) {
        const std::string_view rest = input.substr(off);
        const parse_result r = p.parse(rest);
        check_invariants(p, r, rest.size());
        if (r.status == parse_status::done) {
            o.commands.push_back(record(p, r));
            off += r.consumed;
            continue;
        }
        if (r.status == parse_status::error) o.error = p.error_text();
        else o.leftover = input.size() - off;
        return o;
    }
}

// Feeds growing prefixes of the input, one more byte each time, as a socket delivering one byte per read
// would. Every call gets a fresh copy of the unconsumed bytes, so that the bytes have moved between calls
// (the contract allows it) and a parser that kept pointers into an old buffer would read freed memory.
outcome feed_bytewise(std::string_view input, limits lim) {
    request_parser p(lim);
    outcome o;
    std::size_t off = 0;
    for (std::size_t end = 1; end <= input.size(); ++end) {
        for (;;) {
            const std::string chunk(input.substr(off, end - off));
            const parse_result r = p.parse(chunk);
            check_invariants(p, r, chunk.size());
            if (r.status == parse_status::need_more) break;
            if (r.status == parse_status::error) {
                o.error = p.error_text();
                return o;
            }
            o.commands.push_back(record(p, r));
            off += r.consumed;
            if (off == end) break;
        }
    }
    o.leftover = input.size() - off;
    return o;
}

// Feeds the input in pieces cut at the given offsets (each piece appended to what is left).
outcome feed_in_pieces(std::string_view input, limits lim, std::vector<std::size_t> cuts) {
    request_parser p(lim);
    outcome o;
    std::size_t off = 0;
    cuts.push_back(input.size());
    for (std::size_t end : cuts) {
        for (;;) {
            const std::string chunk(input.substr(off, end - off));
            const parse_result r = p.parse(chunk);
            check_invariants(p, r, chunk.size());
            if (r.status == parse_status::need_more) break;
            if (r.status == parse_status::error) {
                o.error = p.error_text();
                return o;
            }
            o.commands.push_back(record(p, r));
            off += r.consumed;
            if (off == end) break;
        }
    }
    o.leftover = input.size() - off;
    return o;
}

std::string mb(std::initializer_list<std::string_view> args) {
    std::string out;
    respcache::resp::write_command(out, args);
    return out;
}

command M(std::vector<std::string> args, std::size_t consumed) { return {std::move(args), consumed, false}; }
command I(std::vector<std::string> args, std::size_t consumed) { return {std::move(args), consumed, true}; }

limits small_limits() {
    limits lim;
    lim.max_bulk_len = 16;
    lim.max_inline_len = 8;
    lim.max_multibulk_len = 3;
    return lim;
}

struct parser_case {
    std::string name;
    std::string input;
    std::vector<command> commands;
    std::optional<std::string> error = std::nullopt;  // nullopt: the stream ends in need_more with `leftover` bytes
    std::size_t leftover = 0;
    limits lim = {};
};

void run_case(const parser_case& c) {
    INFO("case: " << c.name << "\ninput: \"" << printable(c.input) << '"');
    outcome expected{c.commands, c.error, c.error ? 0 : c.leftover};
    const outcome whole = feed_whole(c.input, c.lim);
    CHECK(whole == expected);
    const outcome split = feed_bytewise(c.input, c.lim);
    CHECK(split == expected);
}

const std::string E = "ERR Protocol error: ";

}  // namespace

TEST_CASE("multibulk requests, whole and split at every byte", "[resp][parser]") {
    const std::string ping = mb({"PING"});
    const std::string get = mb({"GET", "k"});
    const std::string set = mb({"SET", "key", "value"});
    const std::vector<parser_case> cases = {
        {"one-argument command", "*1\r\n$4\r\nPING\r\n", {M({"PING"}, 14)}},
        {"three arguments", set, {M({"SET", "key", "value"}, set.size())}},
        {"binary-safe payload with CR, LF and NUL", "*2\r\n$4\r\nECHO\r\n$7\r\na\r\n\0b\nc\r\n"s,
         {M({"ECHO", "a\r\n\0b\nc"s}, 27)}},
        {"payload that looks like protocol", "*2\r\n$4\r\nECHO\r\n$9\r\n*1\r\n$1\r\nx\r\n",
         {M({"ECHO", "*1\r\n$1\r\nx"}, 29)}},
        {"empty arguments ($0)", "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$0\r\n\r\n", {M({"SET", "", ""}, 25)}},
        {"*0 is ignored", "*0\r\n", {M({}, 4)}},
        {"*-1 is ignored", "*-1\r\n", {M({}, 5)}},
        {"*-10 is ignored", "*-10\r\n", {M({}, 6)}},
        {"ignored empty requests between commands", "*0\r\n" + ping + "*-10\r\n" + get,
         {M({}, 4), M({"PING"}, 14), M({}, 6), M({"GET", "k"}, get.size())}},
        {"pipelined commands back to back", ping + get + set + ping,
         {M({"PING"}, 14), M({"GET", "k"}, get.size()), M({"SET", "key", "value"}, set.size()), M({"PING"}, 14)}},
        {"multibulk then inline then multibulk", ping + "PING\r\n" + get,
         {M({"PING"}, 14), I({"PING"}, 6), M({"GET", "k"}, get.size())}},
        {"a command followed by an incomplete one", ping + "*2\r\n$3\r\nGE", {M({"PING"}, 14)}, std::nullopt, 10},
        {"header only", "*2\r\n", {}, std::nullopt, 4},
        {"header without LF yet", "*2\r", {}, std::nullopt, 3},
        {"bulk header without LF yet", "*2\r\n$3\r", {}, std::nullopt, 7},
        {"payload without its CRLF yet", "*1\r\n$4\r\nPING", {}, std::nullopt, 12},
        {"payload with only CR", "*1\r\n$4\r\nPING\r", {}, std::nullopt, 13},
        // Redis skips the two bytes after a payload without looking at them.
        {"bytes after the payload are skipped unchecked", "*1\r\n$4\r\nPINGxx" + ping,
         {M({"PING"}, 14), M({"PING"}, 14)}},
        {"bulk of exactly max_bulk_len", "*1\r\n$16\r\n0123456789abcdef\r\n", {M({"0123456789abcdef"}, 27)},
         std::nullopt, 0, small_limits()},
        {"bulk of max_bulk_len + 1", "*1\r\n$17\r\n0123456789abcdefg\r\n", {}, E + "invalid bulk length", 0,
         small_limits()},
        {"10 GB bulk header with default limits", "*1\r\n$10737418240\r\n", {}, E + "invalid bulk length"},
        {"default limit: 512 MB bulk header is accepted and waits", "*1\r\n$536870912\r\n", {}, std::nullopt, 16},
        {"default limit: 512 MB + 1", "*1\r\n$536870913\r\n", {}, E + "invalid bulk length"},
        {"$-1", "*1\r\n$-1\r\n", {}, E + "invalid bulk length"},
        {"$+1", "*1\r\n$+1\r\n", {}, E + "invalid bulk length"},
        {"$01", "*1\r\n$01\r\n", {}, E + "invalid bulk length"},
        {"$ 1", "*1\r\n$ 1\r\n", {}, E + "invalid bulk length"},
        {"$ with no digits", "*1\r\n$\r\n", {}, E + "invalid bulk length"},
        {"bulk length overflowing int64", "*1\r\n$9223372036854775808\r\n", {}, E + "invalid bulk length"},
        {"*abc", "*abc\r\n", {}, E + "invalid multibulk length"},
        {"*01", "*01\r\n", {}, E + "invalid multibulk length"},
        {"*+1", "*+1\r\n", {}, E + "invalid multibulk length"},
        {"* with no digits", "*\r\n", {}, E + "invalid multibulk length"},
        {"*-0", "*-0\r\n", {}, E + "invalid multibulk length"},
        {"*3000000000 (> INT_MAX)", "*3000000000\r\n", {}, E + "invalid multibulk length"},
        {"*2147483647 (INT_MAX) is accepted and waits", "*2147483647\r\n", {}, std::nullopt, 13},
        {"*2147483648 (INT_MAX + 1)", "*2147483648\r\n", {}, E + "invalid multibulk length"},
        // Like Redis, the header runs to the first CR, wherever it is: "1\n$4" is not a number.
        {"LF-only header line", "*1\n$4\r\nPING\r\n", {}, E + "invalid multibulk length"},
        {"count of exactly max_multibulk_len", "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", {M({"a", "b", "c"}, 25)},
         std::nullopt, 0, small_limits()},
        {"count of max_multibulk_len + 1", "*4\r\n", {}, E + "invalid multibulk length", 0, small_limits()},
        {"bulk that is not a bulk", "*1\r\nfoo\r\n", {}, E + "expected '$', got 'f'"},
        {"nested array", "*1\r\n*1\r\n", {}, E + "expected '$', got '*'"},
        {"inline-looking argument", "*2\r\n$3\r\nGET\r\nk\r\n", {}, E + "expected '$', got 'k'"},
        // Redis prints the CR; its error writer turns it into a space (see the test on the wire bytes).
        {"empty bulk header line", "*1\r\n\r\n", {}, E + "expected '$', got '\r'"},
        {"error after a good command", ping + "*x\r\n", {M({"PING"}, 14)}, E + "invalid multibulk length"},
        {"error in the second argument", "*2\r\n$3\r\nGET\r\n$-5\r\n", {}, E + "invalid bulk length"},
        // max_inline_len is 8: the header may grow to 8 bytes without CR, not to 9.
        {"mbulk count string of exactly max_inline_len", "*1234567", {}, std::nullopt, 8, small_limits()},
        {"too big mbulk count string", "*12345678", {}, E + "too big mbulk count string", 0, small_limits()},
        {"too big mbulk count string, more bytes", "*123456789012", {}, E + "too big mbulk count string", 0,
         small_limits()},
        {"bulk count string of exactly max_inline_len", "*1\r\n$1234567", {}, std::nullopt, 12, small_limits()},
        {"too big bulk count string", "*1\r\n$12345678", {}, E + "too big bulk count string", 0, small_limits()},
        // The bound applies to the bytes from the bulk header on, not to the whole command (19 bytes here).
        {"bulk header bound counts from the header, not the command", "*2\r\n$1\r\na\r\n$1234567", {}, std::nullopt, 19,
         small_limits()},
    };
    for (const auto& c : cases) run_case(c);
}

TEST_CASE("inline requests, whole and split at every byte", "[resp][parser]") {
    const std::vector<parser_case> cases = {
        {"PING CRLF", "PING\r\n", {I({"PING"}, 6)}},
        {"PING LF", "PING\n", {I({"PING"}, 5)}},
        {"two arguments", "GET k\r\n", {I({"GET", "k"}, 7)}},
        {"leading, trailing and repeated spaces", "  GET   k  \r\n", {I({"GET", "k"}, 13)}},
        {"tabs separate", "\tGET\tk\t\r\n", {I({"GET", "k"}, 9)}},
        {"CR inside the line separates", "GET\rk\r\n", {I({"GET", "k"}, 7)}},
        {"vertical tab is skipped before a token but kept inside one", "\vECHO a\vb\r\n", {I({"ECHO", "a\vb"}, 11)}},
        {"form feed likewise", "\fECHO a\fb\r\n", {I({"ECHO", "a\fb"}, 11)}},
        {"blank line CRLF", "\r\n", {I({}, 2)}},
        {"blank line LF", "\n", {I({}, 1)}},
        {"spaces-only line", "   \r\n", {I({}, 5)}},
        {"blank lines are ignored before a command", "\r\n\n  \r\nPING\r\n",
         {I({}, 2), I({}, 1), I({}, 4), I({"PING"}, 6)}},
        {"pipelined inline commands", "PING\r\nECHO x\nGET k\r\n",
         {I({"PING"}, 6), I({"ECHO", "x"}, 7), I({"GET", "k"}, 7)}},
        {"inline then multibulk", "PING\n*1\r\n$4\r\nPING\r\n", {I({"PING"}, 5), M({"PING"}, 14)}},
        {"star not at the start is an ordinary byte", "ECHO *1\r\n", {I({"ECHO", "*1"}, 9)}},
        {"high bytes are ordinary", "ECHO \xc3\xa9\xa0\r\n", {I({"ECHO", "\xc3\xa9\xa0"}, 10)}},
        {"incomplete line", "GET k", {}, std::nullopt, 5},
        {"incomplete line ending in CR", "GET k\r", {}, std::nullopt, 6},
        {"double-quoted argument", "SET k \"a b\"\r\n", {I({"SET", "k", "a b"}, 13)}},
        {"single-quoted argument", "SET k 'a b'\r\n", {I({"SET", "k", "a b"}, 13)}},
        {"empty quoted arguments", "ECHO \"\" ''\r\n", {I({"ECHO", "", ""}, 12)}},
        {"escapes in double quotes", R"(ECHO "\n\r\t\b\a\\\"\z")" "\r\n",
         {I({"ECHO", "\n\r\t\b\a\\\"z"}, 25)}},
        {"hex escapes in double quotes", R"(ECHO "\x41\x4a\x7e\xff\x00!")" "\r\n",
         {I({"ECHO", "AJ~\xff\0!"s}, 30)}},
        {"hex escape in upper case", R"(ECHO "\x4A\xFf")" "\n", {I({"ECHO", "J\xff"}, 16)}},
        // Redis: a \x not followed by two hex digits is an ordinary escape of 'x'.
        {"invalid hex escapes", R"(ECHO "\x4g\x" "\q")" "\r\n", {I({"ECHO", "x4gx", "q"}, 20)}},
        {"escaped quote in single quotes", R"(ECHO 'a\'b')" "\r\n", {I({"ECHO", "a'b"}, 13)}},
        {"other escapes are literal in single quotes", R"(ECHO 'a\nb\\c\"')" "\r\n",
         {I({"ECHO", R"(a\nb\\c\")"}, 18)}},
        {"double quote inside single quotes", R"(ECHO 'say "hi"')" "\r\n", {I({"ECHO", "say \"hi\""}, 17)}},
        {"single quote inside double quotes", R"(ECHO "it's")" "\r\n", {I({"ECHO", "it's"}, 13)}},
        {"CRLF inside quotes is data", "ECHO \"a\rb\"\r\n", {I({"ECHO", "a\rb"}, 12)}},
        {"closing quote followed by a space", "ECHO \"a\" b\r\n", {I({"ECHO", "a", "b"}, 12)}},
        {"closing quote followed by a tab", "ECHO \"a\"\tb\r\n", {I({"ECHO", "a", "b"}, 12)}},
        {"closing quote at the end of the line", "ECHO \"a\"\n", {I({"ECHO", "a"}, 9)}},
        {"closing quote followed by a CR kept in the line", "ECHO \"a\"\r\r\n", {I({"ECHO", "a"}, 11)}},
        {"quote in the middle of a token starts quoting", "ECHO a\"b c\"\r\n", {I({"ECHO", "ab c"}, 13)}},
        {"single quote in the middle of a token", "ECHO a'b c'\r\n", {I({"ECHO", "ab c"}, 13)}},
        {"adjacent quoted token needs a space", "ECHO \"a\"\"b\"\r\n", {}, E + "unbalanced quotes in request"},
        {"closing double quote followed by a letter", "ECHO \"a\"b\r\n", {}, E + "unbalanced quotes in request"},
        {"closing single quote followed by a letter", "ECHO 'a'b\r\n", {}, E + "unbalanced quotes in request"},
        {"quote in a token closed then followed by a letter", "ECHO a'b c'd\r\n", {},
         E + "unbalanced quotes in request"},
        {"unterminated double quote", "ECHO \"abc\r\n", {}, E + "unbalanced quotes in request"},
        {"unterminated single quote", "ECHO 'abc\n", {}, E + "unbalanced quotes in request"},
        {"escaped closing quote leaves it unterminated", R"(ECHO "a\")" "\r\n", {},
         E + "unbalanced quotes in request"},
        {"unbalanced quotes after a good command", "PING\r\nECHO \"x\r\n", {I({"PING"}, 6)},
         E + "unbalanced quotes in request"},
        // max_inline_len is 8: up to 8 bytes may wait for their newline, 9 may not.
        {"inline line of exactly max_inline_len", "ABCDEFGH", {}, std::nullopt, 8, small_limits()},
        {"too big inline request", "ABCDEFGHI", {}, E + "too big inline request", 0, small_limits()},
        {"too big inline request, after a command", "PING\nABCDEFGHIJKL", {I({"PING"}, 5)},
         E + "too big inline request", 0, small_limits()},
    };
    for (const auto& c : cases) run_case(c);
}

TEST_CASE("inline line longer than max_inline_len is refused however its bytes arrive", "[resp][parser]") {
    // Redis reads inline requests 16 KB at a time and refuses a line once 64 KB have come without a
    // newline, so every line longer than 80 KB is refused however the client wrote it. The parser refuses
    // every line over the bound, whole or in pieces, so the outcome never depends on how bytes arrive.
    const std::string line = "ECHO 0123456789\r\n";
    const outcome refused{{}, E + "too big inline request", 0};
    CHECK(feed_whole(line, small_limits()) == refused);
    CHECK(feed_bytewise(line, small_limits()) == refused);
    CHECK(feed_in_pieces(line, small_limits(), {9}) == refused);
    CHECK(feed_in_pieces(line, small_limits(), {8}) == refused);
    // A line of exactly the bound is accepted, in one piece or byte by byte.
    const std::string exact = "ECHO abc\n";  // 8 bytes before the LF
    CHECK(feed_whole(exact, small_limits()) == outcome{{I({"ECHO", "abc"}, exact.size())}, std::nullopt, 0});
    CHECK(feed_bytewise(exact, small_limits()) == feed_whole(exact, small_limits()));
    // The CR is part of the line: 9 bytes before the LF are one too many.
    CHECK(feed_whole("ECHO abc\r\n", small_limits()) == refused);
}

TEST_CASE("multibulk payloads may exceed max_inline_len", "[resp][parser]") {
    // Only header lines are bounded by max_inline_len; payloads are bounded by max_bulk_len.
    const std::string cmd = mb({"SET", "k", "0123456789abcdef"});
    const parser_case c{"long payload", cmd, {M({"SET", "k", "0123456789abcdef"}, cmd.size())}, std::nullopt, 0,
                        small_limits()};
    run_case(c);
}

TEST_CASE("parse error texts are sent as Redis sends them", "[resp][parser]") {
    // Verified against redis-server 7.0.15: "*1\r\n\r\n" is answered with a space where the CR was.
    request_parser p;
    REQUIRE(p.parse("*1\r\n\r\n").status == parse_status::error);
    std::string wire;
    respcache::resp::write_error(wire, p.error_text());
    CHECK(wire == "-ERR Protocol error: expected '$', got ' '\r\n");
}

TEST_CASE("args view the caller's buffer for multibulk commands", "[resp][parser]") {
    const std::string buf = mb({"GET", "key"});
    request_parser p;
    const parse_result r = p.parse(buf);
    REQUIRE(r.status == parse_status::done);
    REQUIRE(p.args().size() == 2);
    // Zero-copy: the views point into the input.
    CHECK(p.args()[0].data() == buf.data() + 8);
    CHECK(p.args()[1].data() == buf.data() + 17);
    CHECK(p.args()[1] == "key");
}

TEST_CASE("last_was_inline follows the kind of the last done command", "[resp][parser]") {
    request_parser p;
    const std::string stream = "PING\r\n*1\r\n$4\r\nPING\r\n\r\n*0\r\n";
    const std::vector<std::pair<std::size_t, bool>> expected = {{6, true}, {14, false}, {2, true}, {4, false}};
    std::string_view rest = stream;
    for (auto [consumed, is_inline] : expected) {
        const parse_result r = p.parse(rest);
        REQUIRE(r.status == parse_status::done);
        CHECK(r.consumed == consumed);
        CHECK(p.last_was_inline() == is_inline);
        rest.remove_prefix(r.consumed);
    }
    CHECK(rest.empty());
}

TEST_CASE("progress reports the bytes of a partial command already examined", "[resp][parser]") {
    struct step {
        std::string input;
        parse_status status;
        std::size_t progress;
    };
    SECTION("multibulk") {
        const std::vector<step> steps = {
            {"*2", parse_status::need_more, 0},                                  // header incomplete
            {"*2\r\n", parse_status::need_more, 4},                              // header parsed
            {"*2\r\n$3\r\nG", parse_status::need_more, 8},                       // bulk header parsed
            {"*2\r\n$3\r\nGET\r\n", parse_status::need_more, 13},                // first argument parsed
            {"*2\r\n$3\r\nGET\r\n$1", parse_status::need_more, 13},              // bulk header incomplete
            {"*2\r\n$3\r\nGET\r\n$1\r\nk", parse_status::need_more, 17},         // payload incomplete
            {"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", parse_status::done, 0},           // done: back to 0
        };
        request_parser p;
        CHECK(p.progress() == 0);
        for (const auto& s : steps) {
            INFO(printable(s.input));
            CHECK(p.parse(s.input).status == s.status);
            CHECK(p.progress() == s.progress);
        }
    }
    SECTION("inline") {
        const std::vector<step> steps = {
            {"GET", parse_status::need_more, 3},
            {"GET k", parse_status::need_more, 5},
            {"GET k\r\n", parse_status::done, 0},
        };
        request_parser p;
        for (const auto& s : steps) {
            INFO(printable(s.input));
            CHECK(p.parse(s.input).status == s.status);
            CHECK(p.progress() == s.progress);
        }
    }
}

TEST_CASE("reset returns the parser to its initial state", "[resp][parser]") {
    SECTION("after an error") {
        request_parser p;
        REQUIRE(p.parse("*1\r\n$-1\r\n").status == parse_status::error);
        REQUIRE(p.error_text() == E + "invalid bulk length");
        p.reset();
        CHECK(p.error_text().empty());
        CHECK(p.progress() == 0);
        const parse_result r = p.parse("GET k\r\n");
        REQUIRE(r.status == parse_status::done);
        CHECK(r.consumed == 7);
        CHECK(std::vector<std::string_view>(p.args().begin(), p.args().end()) ==
              std::vector<std::string_view>{"GET", "k"});
    }
    SECTION("in the middle of a multibulk command") {
        request_parser p;
        REQUIRE(p.parse("*2\r\n$3\r\nGET\r\n$1").status == parse_status::need_more);
        REQUIRE(p.progress() == 13);
        p.reset();
        CHECK(p.progress() == 0);
        CHECK(p.args().empty());
        // A new stream that starts with an inline command is parsed as inline, not as the old multibulk.
        const parse_result r = p.parse("PING\r\n");
        REQUIRE(r.status == parse_status::done);
        CHECK(r.consumed == 6);
        CHECK(p.last_was_inline());
        REQUIRE(p.args().size() == 1);
        CHECK(p.args()[0] == "PING");
    }
    SECTION("in the middle of an inline command") {
        request_parser p;
        REQUIRE(p.parse("GET k").status == parse_status::need_more);
        p.reset();
        const std::string cmd = mb({"PING"});
        const parse_result r = p.parse(cmd);
        REQUIRE(r.status == parse_status::done);
        CHECK(r.consumed == cmd.size());
        CHECK_FALSE(p.last_was_inline());
    }
}

TEST_CASE("empty input needs more", "[resp][parser]") {
    request_parser p;
    const parse_result r = p.parse("");
    CHECK(r.status == parse_status::need_more);
    CHECK(r.consumed == 0);
    CHECK(p.progress() == 0);
}

namespace {

// Runs `fn` in a child process whose address space is capped at its current size plus `headroom` bytes,
// and returns its exit status (-signal if it was killed). An allocation the size of an announced 10 GB
// bulk fails there with bad_alloc instead of succeeding lazily under overcommit.
int run_with_memory_cap(const std::function<int()>& fn, std::size_t headroom) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::alarm(10);
#if !defined(__SANITIZE_ADDRESS__)
        rlimit cur{};
        if (::getrlimit(RLIMIT_AS, &cur) == 0) {
            long pages = 0;
            if (FILE* f = std::fopen("/proc/self/statm", "r")) {
                if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
                std::fclose(f);
            }
            const rlim_t now = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE));
            rlimit cap{now + headroom, cur.rlim_max};
            if (now > 0 && (cur.rlim_cur == RLIM_INFINITY || cap.rlim_cur < cur.rlim_cur))
                ::setrlimit(RLIMIT_AS, &cap);
        }
#else
        (void)headroom;  // ASan reserves terabytes of address space: no cap, the outcome checks remain
#endif
        int code = 99;
        try {
            code = fn();
        } catch (...) {
            code = 98;
        }
        ::_exit(code);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return -WTERMSIG(status);
}

}  // namespace

TEST_CASE("huge announced sizes allocate nothing up front", "[resp][parser]") {
    // With a raised bulk limit the 10 GB header is valid: the parser must wait for the bytes, holding only
    // offsets, not reserve 10 GB. With an announced count of INT_MAX it must not reserve INT_MAX slots.
    SECTION("10 GB bulk under a 16 GB limit") {
        const int code = run_with_memory_cap(
            [] {
                limits lim;
                lim.max_bulk_len = 16ull << 30;
                request_parser p(lim);
                const std::string in = "*1\r\n$10737418240\r\n";
                const parse_result r = p.parse(in);
                if (r.status != parse_status::need_more) return 1;
                if (p.progress() != in.size()) return 2;
                return 0;
            },
            256u << 20);
        CHECK(code == 0);
    }
    SECTION("INT_MAX arguments") {
        const int code = run_with_memory_cap(
            [] {
                request_parser p;
                const std::string in = "*2147483647\r\n$1\r\na\r\n";
                const parse_result r = p.parse(in);
                if (r.status != parse_status::need_more) return 1;
                if (p.progress() != in.size()) return 2;
                return 0;
            },
            256u << 20);
        CHECK(code == 0);
    }
}

TEST_CASE("detail::parse_int64 follows Redis's string2ll", "[resp][parser]") {
    struct row {
        std::string text;
        std::optional<std::int64_t> value;
    };
    const std::vector<row> rows = {
        {"0", 0},
        {"1", 1},
        {"-1", -1},
        {"42", 42},
        {"1234567890", 1234567890},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
        {"9223372036854775806", INT64_MAX - 1},
        {"-9223372036854775807", INT64_MIN + 1},
        {"", std::nullopt},
        {"-", std::nullopt},
        {"+1", std::nullopt},
        {"+0", std::nullopt},
        {"01", std::nullopt},
        {"00", std::nullopt},
        {"-0", std::nullopt},
        {"-01", std::nullopt},
        {" 1", std::nullopt},
        {"1 ", std::nullopt},
        {"1a", std::nullopt},
        {"a1", std::nullopt},
        {"1.0", std::nullopt},
        {"1e3", std::nullopt},
        {"0x10", std::nullopt},
        {"1\r", std::nullopt},
        {"1\0"s, std::nullopt},
        {"--1", std::nullopt},
        {"9223372036854775808", std::nullopt},
        {"-9223372036854775809", std::nullopt},
        {"18446744073709551615", std::nullopt},   // UINT64_MAX
        {"18446744073709551616", std::nullopt},   // UINT64_MAX + 1
        {"99999999999999999999", std::nullopt},   // 20 digits, overflows uint64
        {"-18446744073709551616", std::nullopt},
        {"123456789012345678901", std::nullopt},  // 21 characters
    };
    for (const auto& r : rows) {
        INFO('"' << printable(r.text) << '"');
        std::int64_t out = 12345;
        const bool ok = respcache::resp::detail::parse_int64(r.text, out);
        CHECK(ok == r.value.has_value());
        if (ok && r.value) CHECK(out == *r.value);
    }
}

TEST_CASE("detail::split_inline_args follows Redis's sdssplitargs", "[resp][parser]") {
    struct row {
        std::string line;
        std::optional<std::vector<std::string>> args;  // nullopt: unbalanced quotes
    };
    const std::vector<row> rows = {
        {"", std::vector<std::string>{}},
        {"   ", std::vector<std::string>{}},
        {"a b  c", std::vector<std::string>{"a", "b", "c"}},
        {"\"a b\" 'c d'", std::vector<std::string>{"a b", "c d"}},
        // The line is a C string to sdssplitargs: a NUL byte ends it, quotes after it are not seen.
        {"a b\0c d"s, std::vector<std::string>{"a", "b"}},
        {"a \"b\0\""s, std::nullopt},
        {"\0a"s, std::vector<std::string>{}},
        {"\"x\"y", std::nullopt},
        {"'x", std::nullopt},
    };
    for (const auto& r : rows) {
        INFO('"' << printable(r.line) << '"');
        std::string storage = "prefix";  // appended to, never cleared
        std::vector<std::pair<std::size_t, std::size_t>> spans;
        const bool ok = respcache::resp::detail::split_inline_args(r.line, storage, spans);
        REQUIRE(ok == r.args.has_value());
        if (!ok) continue;
        CHECK(storage.substr(0, 6) == "prefix");
        std::vector<std::string> got;
        for (auto [off, len] : spans) {
            REQUIRE(off >= 6);
            REQUIRE(off + len <= storage.size());
            got.push_back(storage.substr(off, len));
        }
        CHECK(got == *r.args);
    }
}

// Redis 7.0.15 looks for the end of an inline line with strchr() and for the end of a `*N` / `$N` header
// with strchr(), so a NUL byte before the terminator hides it: the command is never executed, Redis waits
// for more bytes and finally answers "too big ... " once the buffer exceeds 64 KB (verified on this
// machine). The parser searches with memchr() and so executes commands Redis would never execute.
TEST_CASE("a NUL byte before the line terminator hides the terminator, as in Redis", "[resp][parser]") {
    const std::vector<parser_case> cases = {
        {"NUL in an inline line", "PING\0\r\n"s, {}, std::nullopt, 7},
        {"NUL in an inline line, then more commands", "ECHO a\0b\r\nPING\r\n"s, {}, std::nullopt, 16},
        {"NUL in an inline line, over the limit", "PING\0\r\nPING\r\n"s, {}, E + "too big inline request", 0,
         small_limits()},
        {"a NUL line after a good command", "PING\r\n\0PING\r\n"s, {I({"PING"}, 6)}, std::nullopt, 7},
        {"NUL in a multibulk header", "*1\0\r\n$4\r\nPING\r\n"s, {}, std::nullopt, 15},
        {"NUL in a multibulk header, over the limit", "*1\0\r\n$4\r\nPING\r\n"s, {},
         E + "too big mbulk count string", 0, small_limits()},
        {"NUL in a bulk header", "*1\r\n$4\0\r\nPING\r\n"s, {}, std::nullopt, 15},
        {"NUL in a bulk header, over the limit", "*1\r\n$4\0\r\nPING\r\n"s, {}, E + "too big bulk count string", 0,
         small_limits()},
    };
    for (const auto& c : cases) run_case(c);
}

TEST_CASE("default header and inline bounds are Redis's 64 KB", "[resp][parser]") {
    // Verified against redis-server 7.0.15: 65536 bytes without a terminator wait, 65537 are an error.
    // Too long to feed byte by byte; fed whole and in a few pieces instead.
    struct row {
        std::string input;
        std::optional<std::string> error;
    };
    const std::vector<row> rows = {
        {std::string(65536, 'A'), std::nullopt},
        {std::string(65537, 'A'), E + "too big inline request"},
        {"*1" + std::string(65534, '2'), std::nullopt},
        {"*1" + std::string(65535, '2'), E + "too big mbulk count string"},
        {"*1\r\n$" + std::string(65535, '1'), std::nullopt},
        {"*1\r\n$" + std::string(65536, '1'), E + "too big bulk count string"},
    };
    for (const auto& r : rows) {
        INFO("size " << r.input.size() << ", starting \"" << printable(r.input.substr(0, 8)) << '"');
        const outcome expected{{}, r.error, r.error ? 0 : r.input.size()};
        CHECK(feed_whole(r.input, {}) == expected);
        CHECK(feed_in_pieces(r.input, {}, {1, 3, 4096, 65535}) == expected);
    }
}
