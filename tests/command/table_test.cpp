#include "respcache/command/table.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace {

using respcache::command::arity_ok;
using respcache::command::row;
using respcache::command::table;
using respcache::command::unknown_command_error;
using respcache::command::unknown_subcommand_error;
using respcache::command::wrong_arity_error;

using sv_list = std::vector<std::string_view>;

}  // namespace

TEST_CASE("table: find is case-insensitive and exact", "[command][table]") {
    const table& t = table::local();
    const std::pair<std::string_view, std::string_view> found[] = {
        {"get", "get"},         {"GET", "get"},           {"gEt", "get"},
        {"PING", "ping"},       {"auth", "auth"},         {"Client", "client"},
        {"MULTI", "multi"},     {"exec", "exec"},         {"discard", "discard"},
        {"watch", "watch"},     {"UNWATCH", "unwatch"},   {"select", "select"},
        {"SUBSCRIBE", "subscribe"}, {"punsubscribe", "punsubscribe"}, {"SUNSUBSCRIBE", "sunsubscribe"},
        {"quit", "quit"},       {"reset", "reset"},       {"hello", "hello"},
        {"monitor", "monitor"}, {"echo", "echo"},         {"sync", "sync"},
        {"psync", "psync"},
    };
    for (auto [query, name] : found) {
        CAPTURE(query);
        const row* r = t.find(query);
        REQUIRE(r != nullptr);
        CHECK(r->name == name);
        CHECK(r->fn != nullptr);
    }
    const std::string_view missing[] = {
        "", "g", "ge", "gett", "get ", " get", "set", "mge", "mgett", "getex", "a", "zzzz",
        "subscribe_", "punsubscribex", std::string_view("get\0", 4),
        "averyveryverylongname",    // longer than any local command
        "punsubscribepunsubscribe",
    };
    for (auto query : missing) {
        CAPTURE(query);
        CHECK(t.find(query) == nullptr);
    }
}

TEST_CASE("table: the local rows have Redis's arities", "[command][table]") {
    const table& t = table::local();
    const std::pair<std::string_view, int> rows[] = {
        {"get", 2},     {"echo", 2},       {"select", 2},       {"ping", -1},   {"auth", -2},
        {"client", -2}, {"multi", 1},      {"exec", 1},         {"discard", 1}, {"watch", -2},
        {"unwatch", 1}, {"subscribe", -2}, {"unsubscribe", -1}, {"quit", -1},   {"reset", 1},
        {"hello", -1},  {"monitor", 1},
    };
    for (auto [name, arity] : rows) {
        CAPTURE(name);
        const row* r = t.find(name);
        REQUIRE(r != nullptr);
        CHECK(r->arity == arity);
    }
}

TEST_CASE("table: a table built from rows sorts them and finds each", "[command][table]") {
    const table t({
        {"zeta", 1, 0, nullptr},
        {"alpha", -2, 1, nullptr},
        {"mid", 3, 2, nullptr},
    });
    REQUIRE(t.find("ALPHA") != nullptr);
    CHECK(t.find("ALPHA")->arity == -2);
    CHECK(t.find("Mid")->flags == 2);
    CHECK(t.find("zeta")->arity == 1);
    CHECK(t.find("beta") == nullptr);
    CHECK(t.find("zz") == nullptr);
    CHECK(t.find("a") == nullptr);

    const table empty({});
    CHECK(empty.find("get") == nullptr);
}

TEST_CASE("table: arity_ok", "[command][table]") {
    struct row_case {
        int arity;
        std::size_t argc;
        bool ok;
    };
    const row_case rows[] = {
        {2, 2, true},  {2, 1, false}, {2, 3, false}, {1, 1, true},  {1, 0, false}, {1, 2, false},
        {-1, 1, true}, {-1, 5, true}, {-1, 0, false}, {-2, 1, false}, {-2, 2, true}, {-2, 100, true},
        {-3, 2, false}, {-3, 3, true}, {0, 0, true}, {0, 1, false},
    };
    for (const auto& r : rows) {
        CAPTURE(r.arity, r.argc);
        CHECK(arity_ok(r.arity, r.argc) == r.ok);
    }
    static_assert(arity_ok(2, 2) && !arity_ok(-3, 2), "arity_ok is usable at compile time");
}

TEST_CASE("table: wrong_arity_error is Redis's text", "[command][table]") {
    CHECK(wrong_arity_error("get") == "ERR wrong number of arguments for 'get' command");
    CHECK(wrong_arity_error("client|kill") == "ERR wrong number of arguments for 'client|kill' command");
}

TEST_CASE("table: unknown_command_error is Redis's text", "[command][table]") {
    struct row_case {
        sv_list args;
        std::string expected;
    };
    const std::string long_name(200, 'n');
    const std::string long_arg(200, 'a');
    const std::string a100(100, 'x');
    const std::string b50(50, 'y');
    const row_case rows[] = {
        {{"foo"}, "ERR unknown command 'foo', with args beginning with: "},
        {{"FOO", "bar"}, "ERR unknown command 'FOO', with args beginning with: 'bar' "},
        {{"foo", "a", "b c", ""}, "ERR unknown command 'foo', with args beginning with: 'a' 'b c' '' "},
        // The name is cut at 128 bytes.
        {{long_name}, "ERR unknown command '" + std::string(128, 'n') + "', with args beginning with: "},
        // One long argument is cut so that it fits in 128 bytes; nothing follows it.
        {{"foo", long_arg, "next"},
         "ERR unknown command 'foo', with args beginning with: '" + std::string(128, 'a') + "' "},
        // Arguments are added while the quoted text is under 128 bytes: the second gets the room left.
        {{"foo", a100, b50, "never"},
         "ERR unknown command 'foo', with args beginning with: '" + a100 + "' '" + std::string(25, 'y') + "' "},
    };
    for (const auto& r : rows) {
        CAPTURE(r.args.size());
        CHECK(unknown_command_error(r.args) == r.expected);
    }
}

TEST_CASE("table: unknown_subcommand_error is Redis's text", "[command][table]") {
    CHECK(unknown_subcommand_error("nope", "client") == "ERR unknown subcommand 'nope'. Try CLIENT HELP.");
    CHECK(unknown_subcommand_error("Nope", "Object") == "ERR unknown subcommand 'Nope'. Try OBJECT HELP.");
    CHECK(unknown_subcommand_error(std::string(300, 's'), "config") ==
          "ERR unknown subcommand '" + std::string(128, 's') + "'. Try CONFIG HELP.");
}
