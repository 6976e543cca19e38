#include "respcache/resp/reply_framer.hpp"

#include <catch2/catch.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using respcache::resp::frame_result;
using respcache::resp::frame_status;
using respcache::resp::limits;
using respcache::resp::reply_framer;

namespace {

// Everything observable about feeding a byte stream to a framer until it stops.
struct outcome {
    std::vector<std::size_t> lengths;   // length of each framed reply, in order
    std::optional<std::string> error = std::nullopt;   // set if the stream ended in an error
    std::size_t leftover = 0;           // unframed bytes at the end (when it ended in need_more)
    bool operator==(const outcome&) const = default;
};

std::string printable(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c == '\r') out += "\\r";
        else if (c == '\n') out += "\\n";
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
    s << "lengths:";
    for (auto l : o.lengths) s << ' ' << l;
    if (o.error) s << "; error: " << printable(*o.error);
    else s << "; need_more, leftover=" << o.leftover;
    return s.str();
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<outcome> {
    static std::string convert(const outcome& o) { return describe(o); }
};
}  // namespace Catch

namespace {

void check_invariants(const reply_framer& f, frame_result r, std::size_t given) {
    if (r.status == frame_status::done) {
        REQUIRE(r.length > 0);
        REQUIRE(r.length <= given);
    } else {
        REQUIRE(r.length == 0);
    }
    if (r.status == frame_status::error) REQUIRE_FALSE(f.error_text().empty());
}

outcome feed_whole(std::string_view input, limits lim) {
    reply_framer f(lim);
    outcome o;
    std::size_t off = 0;
    for (;;) {
        const std::string_view rest = input.substr(off);
        const frame_result r = f.next(rest);
        check_invariants(f, r, rest.size());
        if (r.status == frame_status::done) {
            o.lengths.push_back(r.length);
            off += r.length;
            continue;
        }
        if (r.status == frame_status::error) o.error = f.error_text();
        else o.leftover = input.size() - off;
        return o;
    }
}

// Growing prefixes, one more byte each time, every call on a fresh copy of the unframed bytes.
outcome feed_bytewise(std::string_view input, limits lim) {
    reply_framer f(lim);
    outcome o;
    std::size_t off = 0;
    for (std::size_t end = 1; end <= input.size(); ++end) {
        for (;;) {
            const std::string chunk(input.substr(off, end - off));
            const frame_result r = f.next(chunk);
            check_invariants(f, r, chunk.size());
            if (r.status == frame_status::need_more) break;
            if (r.status == frame_status::error) {
                o.error = f.error_text();
                return o;
            }
            o.lengths.push_back(r.length);
            off += r.length;
            if (off == end) break;
        }
    }
    o.leftover = input.size() - off;
    return o;
}

struct framer_case {
    std::string name;
    std::string input;
    std::vector<std::size_t> lengths;
    std::optional<std::string> error = std::nullopt;
    std::size_t leftover = 0;
    limits lim = {};
};

void run_case(const framer_case& c) {
    INFO("case: " << c.name << "\ninput: \"" << printable(c.input) << '"');
    const outcome expected{c.lengths, c.error, c.error ? 0 : c.leftover};
    const outcome whole = feed_whole(c.input, c.lim);
    CHECK(whole == expected);
    const outcome split = feed_bytewise(c.input, c.lim);
    CHECK(split == expected);
}

// One case per reply: the reply alone must be framed as exactly its own length.
framer_case one(std::string name, std::string reply) {
    const std::size_t n = reply.size();
    return {std::move(name), std::move(reply), {n}};
}

std::string nested_arrays(int depth, std::string_view leaf) {
    std::string s;
    for (int i = 0; i < depth; ++i) s += "*1\r\n";
    s += leaf;
    return s;
}

limits depth_limit(std::size_t d) {
    limits lim;
    lim.max_reply_depth = d;
    return lim;
}

limits bulk_limit(std::size_t n) {
    limits lim;
    lim.max_bulk_len = n;
    return lim;
}

const std::string spec_attribute =  // the attribute example of the RESP3 specification
    "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n";

}  // namespace

TEST_CASE("framer frames every RESP2 and RESP3 type, whole and split at every byte", "[resp][framer]") {
    const std::vector<framer_case> cases = {
        // RESP2
        one("simple string", "+OK\r\n"),
        one("empty simple string", "+\r\n"),
        one("error", "-ERR unknown command 'FOO'\r\n"),
        one("integer", ":42\r\n"),
        one("negative integer", ":-1\r\n"),
        one("bulk", "$3\r\nabc\r\n"),
        one("empty bulk", "$0\r\n\r\n"),
        one("binary bulk with CRLF inside", "$6\r\na\r\nb\0c\r\n"s),
        one("bulk that looks like protocol", "$8\r\n*1\r\n:1\r\n\r\n"),
        one("nil bulk", "$-1\r\n"),
        one("nil array", "*-1\r\n"),
        one("empty array", "*0\r\n"),
        one("flat array", "*3\r\n$3\r\nfoo\r\n:1\r\n+bar\r\n"),
        one("array with nils", "*3\r\n$-1\r\n*-1\r\n*0\r\n"),
        one("nested arrays", "*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*0\r\n"),
        one("array whose last element closes several levels", "*2\r\n:0\r\n*2\r\n:1\r\n*2\r\n:2\r\n*1\r\n:3\r\n"),
        one("nested arrays of depth 25", nested_arrays(25, ":1\r\n")),
        one("nested arrays of depth 25 ending in nil", nested_arrays(25, "$-1\r\n")),
        one("nested arrays of depth 30 ending in an empty array", nested_arrays(30, "*0\r\n")),
        // RESP3
        one("null", "_\r\n"),
        one("boolean true", "#t\r\n"),
        one("boolean false", "#f\r\n"),
        one("double", ",3.14\r\n"),
        one("double inf", ",-inf\r\n"),
        one("big number", "(3492890328409238509324850943850943825024385\r\n"),
        one("blob error", "!21\r\nSYNTAX invalid syntax\r\n"),
        one("empty blob error", "!0\r\n\r\n"),
        one("verbatim string", "=15\r\ntxt:Some string\r\n"),
        one("map", "%2\r\n+first\r\n:1\r\n+second\r\n*2\r\n:2\r\n:3\r\n"),
        one("empty map", "%0\r\n"),
        one("set", "~3\r\n:1\r\n$1\r\na\r\n_\r\n"),
        one("empty set", "~0\r\n"),
        one("push", ">3\r\n$7\r\nmessage\r\n$7\r\nchannel\r\n$5\r\nhello\r\n"),
        one("invalidation push with nil", ">2\r\n$10\r\ninvalidate\r\n_\r\n"),
        one("attribute followed by its reply", spec_attribute),
        one("attribute followed by a scalar", "|1\r\n+ttl\r\n:3600\r\n$3\r\nabc\r\n"),
        one("attribute inside an array", "*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n"),
        one("attribute on an attribute", "|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n+OK\r\n"),
        one("map of maps and sets", "%1\r\n%1\r\n~1\r\n#t\r\n*0\r\n>1\r\n,1.5\r\n"),
        // Several replies back to back: each frame is exactly one reply.
        {"replies back to back", "+OK\r\n:1\r\n$1\r\na\r\n*1\r\n+x\r\n$-1\r\n_\r\n", {5, 4, 7, 8, 5, 3}},
        {"arrays back to back", "*2\r\n:1\r\n:2\r\n*0\r\n*1\r\n*1\r\n:3\r\n", {12, 4, 12}},
        {"attribute reply then another reply", spec_attribute + "+OK\r\n", {spec_attribute.size(), 5}},
        // Incomplete tails.
        {"a reply then an incomplete array", "+OK\r\n*2\r\n:1\r\n", {5}, std::nullopt, 8},
        {"a reply then an incomplete bulk", "+OK\r\n$5\r\nab", {5}, std::nullopt, 6},
        {"a bulk missing its CRLF", "$3\r\nabc", {}, std::nullopt, 7},
        {"a header without LF", ":1\r", {}, std::nullopt, 3},
        {"an attribute without its reply", "|1\r\n+a\r\n:1\r\n", {}, std::nullopt, 12},
        // Bulk limit (max_bulk_len applies to $, ! and =).
        {"bulk of exactly max_bulk_len", "$4\r\nabcd\r\n", {10}, std::nullopt, 0, bulk_limit(4)},
        {"bulk over max_bulk_len", "$5\r\nabcde\r\n", {}, "invalid bulk length in reply", 0, bulk_limit(4)},
        {"blob error over max_bulk_len", "!5\r\nabcde\r\n", {}, "invalid bulk length in reply", 0, bulk_limit(4)},
        {"verbatim over max_bulk_len", "=9\r\ntxt:abcde\r\n", {}, "invalid bulk length in reply", 0, bulk_limit(4)},
        // Depth limit.
        {"depth of exactly max_reply_depth", nested_arrays(3, ":1\r\n"), {16}, std::nullopt, 0, depth_limit(3)},
        {"depth over max_reply_depth", nested_arrays(4, ":1\r\n"), {}, "reply nested too deeply", 0,
         depth_limit(3)},
        {"sibling aggregates do not add up to depth", "*3\r\n*1\r\n:1\r\n*1\r\n:1\r\n*1\r\n:1\r\n", {28},
         std::nullopt, 0, depth_limit(2)},
        // Errors.
        {"bad type byte", "?x\r\n", {}, "invalid reply type byte '?'"},
        {"bad type byte inside an array", "*2\r\n:1\r\nX\r\n", {}, "invalid reply type byte 'X'"},
        {"bad type byte after a good reply", "+OK\r\n@\r\n", {5}, "invalid reply type byte '@'"},
        {"empty line", "\r\n", {}, "invalid reply type byte '\r'"},
        {"bulk length -2", "$-2\r\n", {}, "invalid bulk length in reply"},
        {"bulk length not a number", "$abc\r\n", {}, "invalid bulk length in reply"},
        {"bulk length with leading zero", "$01\r\na\r\n", {}, "invalid bulk length in reply"},
        {"bulk length missing", "$\r\n", {}, "invalid bulk length in reply"},
        {"nil blob error", "!-1\r\n", {}, "invalid bulk length in reply"},
        {"nil verbatim string", "=-1\r\n", {}, "invalid bulk length in reply"},
        {"array length -2", "*-2\r\n", {}, "invalid aggregate length in reply"},
        {"array length not a number", "*x\r\n", {}, "invalid aggregate length in reply"},
        {"array length missing", "*\r\n", {}, "invalid aggregate length in reply"},
        {"array length over INT32_MAX", "*2147483648\r\n", {}, "invalid aggregate length in reply"},
        {"nil map", "%-1\r\n", {}, "invalid aggregate length in reply"},
        {"nil set", "~-1\r\n", {}, "invalid aggregate length in reply"},
        {"nil push", ">-1\r\n", {}, "invalid aggregate length in reply"},
        {"nil attribute", "|-1\r\n", {}, "invalid aggregate length in reply"},
        {"bad length deep inside", "*1\r\n*1\r\n$x\r\n", {}, "invalid bulk length in reply"},
    };
    for (const auto& c : cases) run_case(c);
}

TEST_CASE("framer accepts an array of INT32_MAX elements and waits for them", "[resp][framer]") {
    reply_framer f;
    const frame_result r = f.next("*2147483647\r\n:1\r\n");
    CHECK(r.status == frame_status::need_more);
    CHECK(r.length == 0);
}

TEST_CASE("framer reset forgets a partial reply and an error", "[resp][framer]") {
    SECTION("partial aggregate") {
        reply_framer f;
        REQUIRE(f.next("*3\r\n:1\r\n").status == frame_status::need_more);
        f.reset();
        const frame_result r = f.next("+OK\r\n");
        CHECK(r.status == frame_status::done);
        CHECK(r.length == 5);
    }
    SECTION("error") {
        reply_framer f;
        REQUIRE(f.next("*1\r\n?\r\n").status == frame_status::error);
        CHECK(f.error_text() == "invalid reply type byte '?'");
        f.reset();
        CHECK(f.error_text().empty());
        const frame_result r = f.next("*1\r\n:1\r\n");
        CHECK(r.status == frame_status::done);
        CHECK(r.length == 8);
    }
}

TEST_CASE("framer handles very deep nesting without recursion", "[resp][framer]") {
    // 100000 levels: a recursive framer would blow a debug build's stack long before this.
    const std::string deep = nested_arrays(100000, ":1\r\n");
    reply_framer f;
    const frame_result r = f.next(deep);
    CHECK(r.status == frame_status::done);
    CHECK(r.length == deep.size());
}

// An attribute map is followed by the reply it annotates, whatever its size. With `|0` the framer opens no
// aggregate at all and ends the frame after "|0\r\n", splitting one reply into two frames.
TEST_CASE("an empty attribute is framed together with its reply", "[resp][framer]") {
    const std::vector<framer_case> cases = {
        one("empty attribute then a scalar", "|0\r\n+OK\r\n"),
        one("empty attribute inside an array", "*2\r\n|0\r\n:1\r\n:2\r\n"),
    };
    for (const auto& c : cases) run_case(c);
}
