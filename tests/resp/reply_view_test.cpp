#include "respcache/resp/reply_view.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using namespace std::string_view_literals;
namespace resp = respcache::resp;

TEST_CASE("array_elements splits an array into its encoded elements", "[resp][reply_view]") {
    using elements = std::vector<std::string_view>;
    struct row {
        std::string reply;
        std::optional<elements> expected;
    };
    const std::vector<row> rows = {
        {"*0\r\n", elements{}},
        {"*1\r\n+OK\r\n", elements{"+OK\r\n"}},
        {"*3\r\n$3\r\nfoo\r\n:1\r\n-ERR x\r\n", elements{"$3\r\nfoo\r\n", ":1\r\n", "-ERR x\r\n"}},
        {"*2\r\n$5\r\na\r\n\0b\r\n$0\r\n\r\n"s, elements{"$5\r\na\r\n\0b\r\n"sv, "$0\r\n\r\n"}},
        {"*3\r\n$-1\r\n*-1\r\n*0\r\n", elements{"$-1\r\n", "*-1\r\n", "*0\r\n"}},
        // Nested: each top-level element is returned whole, inner arrays included.
        {"*2\r\n*2\r\n:1\r\n:2\r\n$1\r\na\r\n", elements{"*2\r\n:1\r\n:2\r\n", "$1\r\na\r\n"}},
        {"*2\r\n*1\r\n*1\r\n:7\r\n*0\r\n", elements{"*1\r\n*1\r\n:7\r\n", "*0\r\n"}},
        // The shape of an EXEC reply holding a MGET reply.
        {"*2\r\n+OK\r\n*2\r\n$1\r\nv\r\n$-1\r\n", elements{"+OK\r\n", "*2\r\n$1\r\nv\r\n$-1\r\n"}},
        {"*3\r\n_\r\n#t\r\n%1\r\n+k\r\n:1\r\n", elements{"_\r\n", "#t\r\n", "%1\r\n+k\r\n:1\r\n"}},
        // Not arrays.
        {"*-1\r\n", std::nullopt},
        {"+OK\r\n", std::nullopt},
        {"$3\r\nfoo\r\n", std::nullopt},
        {"%1\r\n+k\r\n:1\r\n", std::nullopt},
        {"~1\r\n:1\r\n", std::nullopt},
        {"", std::nullopt},
        // Malformed or truncated.
        {"*2\r\n:1\r\n", std::nullopt},
        {"*1\r\n$3\r\nfo", std::nullopt},
        {"*x\r\n", std::nullopt},
        {"*1", std::nullopt},
    };
    for (const auto& r : rows) {
        INFO(r.reply);
        const auto got = resp::array_elements(r.reply);
        REQUIRE(got.has_value() == r.expected.has_value());
        if (!got) continue;
        CHECK(*got == *r.expected);
        // Views into the reply, not copies.
        for (auto e : *got) {
            CHECK(e.data() >= r.reply.data());
            CHECK(e.data() + e.size() <= r.reply.data() + r.reply.size());
        }
    }
}

TEST_CASE("string_value reads bulk, simple and error payloads", "[resp][reply_view]") {
    struct row {
        std::string reply;
        std::optional<std::string> expected;
    };
    const std::vector<row> rows = {
        {"$3\r\nabc\r\n", "abc"},
        {"$0\r\n\r\n", ""},
        {"$7\r\na\r\nb\0c\r\r\n"s, "a\r\nb\0c\r"s},
        {"+OK\r\n", "OK"},
        {"+\r\n", ""},
        {"-ERR wrong number of arguments for 'get' command\r\n", "ERR wrong number of arguments for 'get' command"},
        {"$-1\r\n", std::nullopt},
        {"*-1\r\n", std::nullopt},
        {":1\r\n", std::nullopt},
        {"*1\r\n$1\r\na\r\n", std::nullopt},
        {"_\r\n", std::nullopt},
        {"", std::nullopt},
        {"+OK", std::nullopt},
        {"$5\r\nab", std::nullopt},  // payload shorter than announced
        {"$x\r\nabc\r\n", std::nullopt},
    };
    for (const auto& r : rows) {
        INFO(r.reply);
        const auto got = resp::string_value(r.reply);
        REQUIRE(got.has_value() == r.expected.has_value());
        if (got) CHECK(std::string(*got) == *r.expected);
    }
}

TEST_CASE("integer_value reads integer replies", "[resp][reply_view]") {
    struct row {
        std::string reply;
        std::optional<std::int64_t> expected;
    };
    const std::vector<row> rows = {
        {":0\r\n", 0},
        {":42\r\n", 42},
        {":-7\r\n", -7},
        {":9223372036854775807\r\n", INT64_MAX},
        {":-9223372036854775808\r\n", INT64_MIN},
        {":9223372036854775808\r\n", std::nullopt},
        {":\r\n", std::nullopt},
        {":abc\r\n", std::nullopt},
        {":01\r\n", std::nullopt},
        {":42", std::nullopt},
        {"+42\r\n", std::nullopt},
        {"$2\r\n42\r\n", std::nullopt},
        {"", std::nullopt},
    };
    for (const auto& r : rows) {
        INFO(r.reply);
        CHECK(resp::integer_value(r.reply) == r.expected);
    }
}

TEST_CASE("is_error, is_ok and is_bulk classify replies", "[resp][reply_view]") {
    struct row {
        std::string reply;
        bool error, ok, bulk;
    };
    const std::vector<row> rows = {
        {"+OK\r\n", false, true, false},
        {"+OKAY\r\n", false, false, false},
        {"+ok\r\n", false, false, false},
        {"+QUEUED\r\n", false, false, false},
        {"-ERR x\r\n", true, false, false},
        {"-MOVED 1 a:1\r\n", true, false, false},
        {"$2\r\nOK\r\n", false, false, true},
        {"$0\r\n\r\n", false, false, true},
        {"$-1\r\n", false, false, false},
        {"*1\r\n$1\r\na\r\n", false, false, false},
        {":1\r\n", false, false, false},
        {"", false, false, false},
    };
    for (const auto& r : rows) {
        INFO(r.reply);
        CHECK(resp::is_error(r.reply) == r.error);
        CHECK(resp::is_ok(r.reply) == r.ok);
        CHECK(resp::is_bulk(r.reply) == r.bulk);
    }
}
