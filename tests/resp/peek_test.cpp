#include "respcache/resp/peek.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/resp/writer.hpp"

using respcache::resp::leading_get_keys;

namespace {
std::vector<std::string> peek(std::string_view input, std::size_t max = 16) {
    std::array<std::string_view, 16> keys;
    const std::size_t n = leading_get_keys(input, std::span(keys).first(max));
    return {keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(n)};
}
std::string cmd(std::initializer_list<std::string_view> args) {
    std::string out;
    respcache::resp::write_command(out, std::vector<std::string_view>(args));
    return out;
}
}  // namespace

TEST_CASE("leading_get_keys: the keys of a pipeline's front GETs, in order", "[peek]") {
    const std::string pipeline = cmd({"GET", "a"}) + cmd({"get", "key:000000000042"}) + cmd({"GeT", ""});
    CHECK(peek(pipeline) == std::vector<std::string>{"a", "key:000000000042", ""});
    CHECK(peek(pipeline, 2) == std::vector<std::string>{"a", "key:000000000042"});
    CHECK(peek(pipeline, 0).empty());
    // Binary keys: the length decides, not the bytes.
    const std::string binary("k\r\n\0x", 5);
    CHECK(peek(cmd({"GET", binary})) == std::vector<std::string>{binary});
}

TEST_CASE("leading_get_keys: stops at anything that is not a whole multibulk GET", "[peek]") {
    const std::string get_a = cmd({"GET", "a"});
    CHECK(peek(get_a + cmd({"SET", "b", "1"}) + cmd({"GET", "c"})) == std::vector<std::string>{"a"});
    CHECK(peek(cmd({"MGET", "a", "b"}) + get_a).empty());
    CHECK(peek(cmd({"GETEX", "a"})).empty());
    CHECK(peek(cmd({"GET", "a", "b"})).empty());
    CHECK(peek("GET a\r\n" + get_a).empty());  // inline
    for (std::size_t cut = 0; cut < get_a.size(); ++cut)
        CHECK(peek(get_a + get_a.substr(0, cut)) == std::vector<std::string>{"a"});  // the second not whole
    CHECK(peek("*2\r\n$3\r\nGET\r\n$x\r\na\r\n").empty());
    CHECK(peek("*2\r\n$3\r\nGET\r\n$\r\na\r\n").empty());
    CHECK(peek("*2\r\n$3\r\nGET\r\n$-1\r\n").empty());
    CHECK(peek("*2\r\n$3\r\nGET\r\n$2\r\na\r\n\r\n").empty());  // the length and the terminator disagree
    CHECK(peek("*2\r\n$3\r\nGET\r\n$99999999999\r\na\r\n").empty());
    CHECK(peek("*2\r\n$3\r\nGET\r\n$18446744073709551617\r\na\r\n").empty());
}
