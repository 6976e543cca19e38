#include "respcache/resp/writer.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/resp/parser.hpp"

using namespace std::string_literals;
namespace resp = respcache::resp;

namespace {

struct writer_case {
    std::string name;
    std::function<void(std::string&)> write;
    std::string expected;
};

}  // namespace

TEST_CASE("writer appends the exact bytes of each element", "[resp][writer]") {
    const std::vector<std::string_view> three = {"SET", "k", "v"};
    const std::vector<writer_case> cases = {
        {"simple", [](std::string& o) { resp::write_simple(o, "OK"); }, "+OK\r\n"},
        {"empty simple", [](std::string& o) { resp::write_simple(o, ""); }, "+\r\n"},
        {"error", [](std::string& o) { resp::write_error(o, "ERR unknown command"); }, "-ERR unknown command\r\n"},
        {"empty error", [](std::string& o) { resp::write_error(o, ""); }, "-\r\n"},
        {"error with CRLF", [](std::string& o) { resp::write_error(o, "ERR a\r\nb"); }, "-ERR a  b\r\n"},
        {"error with lone CR and LF", [](std::string& o) { resp::write_error(o, "\rx\ny\r"); }, "- x y \r\n"},
        {"error keeps other control bytes", [](std::string& o) { resp::write_error(o, "a\tb\0c"s); },
         "-a\tb\0c\r\n"s},
        {"integer 0", [](std::string& o) { resp::write_integer(o, 0); }, ":0\r\n"},
        {"integer 42", [](std::string& o) { resp::write_integer(o, 42); }, ":42\r\n"},
        {"integer -1", [](std::string& o) { resp::write_integer(o, -1); }, ":-1\r\n"},
        {"integer max", [](std::string& o) { resp::write_integer(o, INT64_MAX); }, ":9223372036854775807\r\n"},
        {"integer min", [](std::string& o) { resp::write_integer(o, INT64_MIN); }, ":-9223372036854775808\r\n"},
        {"bulk", [](std::string& o) { resp::write_bulk(o, "abc"); }, "$3\r\nabc\r\n"},
        {"empty bulk", [](std::string& o) { resp::write_bulk(o, ""); }, "$0\r\n\r\n"},
        {"binary bulk", [](std::string& o) { resp::write_bulk(o, "a\r\n\0b"s); }, "$5\r\na\r\n\0b\r\n"s},
        {"ten-byte bulk", [](std::string& o) { resp::write_bulk(o, "0123456789"); }, "$10\r\n0123456789\r\n"},
        {"null", [](std::string& o) { resp::write_null(o); }, "$-1\r\n"},
        {"null array", [](std::string& o) { resp::write_null_array(o); }, "*-1\r\n"},
        {"array header 0", [](std::string& o) { resp::write_array_header(o, 0); }, "*0\r\n"},
        {"array header 12", [](std::string& o) { resp::write_array_header(o, 12); }, "*12\r\n"},
        {"command from a list", [](std::string& o) { resp::write_command(o, {"GET", "key"}); },
         "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"},
        {"command from a span",
         [&three](std::string& o) { resp::write_command(o, std::span<const std::string_view>(three)); },
         "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"},
        {"empty command", [](std::string& o) { resp::write_command(o, std::span<const std::string_view>()); },
         "*0\r\n"},
        {"command with empty and binary args", [](std::string& o) { resp::write_command(o, {"ECHO", "", "\r\n"}); },
         "*3\r\n$4\r\nECHO\r\n$0\r\n\r\n$2\r\n\r\n\r\n"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        // Each writer appends and never clears what is already there.
        std::string out = "prefix";
        c.write(out);
        CHECK(out == "prefix" + c.expected);
        c.write(out);
        CHECK(out == "prefix" + c.expected + c.expected);
    }
}

TEST_CASE("a composed array reply", "[resp][writer]") {
    std::string out;
    resp::write_array_header(out, 4);
    resp::write_bulk(out, "a");
    resp::write_null(out);
    resp::write_integer(out, 7);
    resp::write_null_array(out);
    CHECK(out == "*4\r\n$1\r\na\r\n$-1\r\n:7\r\n*-1\r\n");
}

TEST_CASE("bulk_encoded_size is the length write_bulk appends", "[resp][writer]") {
    std::vector<std::size_t> sizes = {0, 1, 2, 9, 10, 11, 99, 100, 101, 999, 1000, 1001, 9999, 10000,
                                      12345, 65535, 65536, 99999, 100000, 999999, 1000000, 1048576};
    for (std::size_t s : sizes) {
        INFO("size " << s);
        std::string out;
        resp::write_bulk(out, std::string(s, 'x'));
        CHECK(resp::bulk_encoded_size(s) == out.size());
        CHECK(out.size() == 1 + std::to_string(s).size() + 2 + s + 2);
    }
    // Sizes too big to materialise: the digit count still matters.
    CHECK(resp::bulk_encoded_size(536870912) == 1 + 9 + 2 + 536870912 + 2);
    CHECK(resp::bulk_encoded_size(10737418240ull) == 1 + 11 + 2 + 10737418240ull + 2);
}

TEST_CASE("write_command output is parsed back to the same arguments", "[resp][writer]") {
    const std::vector<std::vector<std::string>> commands = {
        {"PING"},
        {"SET", "key", "value"},
        {"ECHO", ""},
        {"ECHO", "a\r\n\0b"s},
        {"MSET", std::string(1000, 'k'), std::string(70000, 'v')},
    };
    for (const auto& cmd : commands) {
        std::vector<std::string_view> views(cmd.begin(), cmd.end());
        std::string out;
        resp::write_command(out, views);
        resp::request_parser p;
        const resp::parse_result r = p.parse(out);
        REQUIRE(r.status == resp::parse_status::done);
        CHECK(r.consumed == out.size());
        CHECK(std::vector<std::string>(p.args().begin(), p.args().end()) == cmd);
    }
}
