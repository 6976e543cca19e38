#include "respcache/command/catalog.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fakes/redis7_catalog.hpp"

namespace {

using respcache::command::catalog;
using respcache::command::command_info;
using respcache::command::flag;
using respcache::command::key_set;
using respcache::fakes::redis7_catalog;
using respcache::fakes::redis7_command_reply;
namespace cmd = respcache::command;

using sv_list = std::vector<std::string_view>;

const command_info& info_for(const sv_list& args) {
    const command_info* info = redis7_catalog()->find(args);
    INFO("command: " << args.at(0));
    REQUIRE(info != nullptr);
    return *info;
}

// Every key must be one of the arguments after the name, as a view into it (not a copy, not beyond the end).
void require_views_into(const key_set& ks, const sv_list& args) {
    for (auto key : ks.keys) {
        bool inside = false;
        for (std::size_t i = 1; i < args.size(); ++i)
            if (key.data() == args[i].data() && key.size() == args[i].size()) inside = true;
        INFO("key: " << key);
        REQUIRE(inside);
    }
}

// The names of the entries (commands and "container|sub" subcommands) in a COMMAND reply: each entry
// is an array of 10 elements whose first is its name as a bulk string.
std::vector<std::string> entry_names(std::string_view reply) {
    std::vector<std::string> names;
    constexpr std::string_view head = "*10\r\n$";
    for (auto pos = reply.find(head); pos != std::string_view::npos; pos = reply.find(head, pos + 1)) {
        const auto len_begin = pos + head.size();
        const auto len_end = reply.find("\r\n", len_begin);
        const auto len = std::stoul(std::string(reply.substr(len_begin, len_end - len_begin)));
        names.emplace_back(reply.substr(len_end + 2, len));
    }
    return names;
}

}  // namespace

TEST_CASE("catalog: builds from a real Redis 7 COMMAND reply", "[command][catalog]") {
    const auto cat = redis7_catalog();
    REQUIRE(cat != nullptr);
    REQUIRE(redis7_command_reply().rfind("*240\r\n", 0) == 0);
    CHECK(cat->size() == 240);
}

TEST_CASE("catalog: every command and subcommand of the reply is found by name", "[command][catalog]") {
    const auto cat = redis7_catalog();
    const auto names = entry_names(redis7_command_reply());
    std::size_t commands = 0, subcommands = 0;
    for (const auto& name : names) {
        CAPTURE(name);
        const auto bar = name.find('|');
        std::string upper = name;
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        sv_list args;
        if (bar == std::string::npos) {
            args = {upper};
            ++commands;
        } else {
            args = {std::string_view(upper).substr(0, bar), std::string_view(upper).substr(bar + 1)};
            ++subcommands;
        }
        const command_info* info = cat->find(args);
        REQUIRE(info != nullptr);
        CHECK(info->name == name);
    }
    CHECK(commands == 240);
    CHECK(subcommands > 50);
}

TEST_CASE("catalog: find resolves commands, subcommands and containers", "[command][catalog]") {
    const auto cat = redis7_catalog();
    struct row {
        sv_list args;
        const char* name;  // nullptr: not found
        int arity;
    };
    const row rows[] = {
        {{"GET", "k"}, "get", 2},
        {{"get"}, "get", 2},
        {{"gEt", "k"}, "get", 2},
        {{"SET", "k", "v"}, "set", -3},
        {{"CLIENT", "LIST"}, "client|list", -2},
        {{"client", "list", "TYPE", "normal"}, "client|list", -2},
        {{"Client", "Kill", "ID", "1"}, "client|kill", -3},
        {{"OBJECT", "ENCODING", "k"}, "object|encoding", 3},
        {{"object", "freq", "k"}, "object|freq", 3},
        {{"CONFIG", "SET", "x", "y"}, "config|set", -4},
        {{"OBJECT"}, "object", -2},                   // a container alone
        {{"OBJECT", "NOSUCHSUB", "k"}, "object", -2},  // an unknown subcommand: the container
        {{"GET", "LIST"}, "get", 2},                  // no subcommands: args[1] is just an argument
        {{"NOSUCHCOMMAND"}, nullptr, 0},
        {{""}, nullptr, 0},
        {{std::string_view("get\0", 4)}, nullptr, 0},
        {{"GETX"}, nullptr, 0},
        {{"GE"}, nullptr, 0},
    };
    for (const auto& r : rows) {
        CAPTURE(r.args.front(), r.args.size());
        const command_info* info = cat->find(r.args);
        if (r.name == nullptr) {
            CHECK(info == nullptr);
            continue;
        }
        REQUIRE(info != nullptr);
        CHECK(info->name == r.name);
        CHECK(info->arity == r.arity);
    }
    CHECK(cat->find(sv_list{}) == nullptr);
    const std::string long_name(100, 'G');
    CHECK(cat->find(sv_list{long_name}) == nullptr);
    const std::string long_sub(100, 'L');
    CHECK(cat->find(sv_list{"CLIENT", long_sub})->name == "client");
}

TEST_CASE("catalog: flags are read from the reply", "[command][catalog]") {
    struct row {
        sv_list args;
        std::uint32_t set;
        std::uint32_t unset;
    };
    const row rows[] = {
        {{"GET"}, cmd::flag_readonly | cmd::flag_fast, cmd::flag_write | cmd::flag_movablekeys},
        {{"SET"}, cmd::flag_write, cmd::flag_readonly | cmd::flag_fast},
        {{"DEL"}, cmd::flag_write, cmd::flag_readonly},
        {{"BLPOP"}, cmd::flag_write | cmd::flag_blocking | cmd::flag_noscript, cmd::flag_readonly},
        {{"XREAD"}, cmd::flag_readonly | cmd::flag_blocking | cmd::flag_movablekeys, cmd::flag_write},
        {{"SUBSCRIBE"}, cmd::flag_pubsub | cmd::flag_noscript, cmd::flag_write | cmd::flag_readonly},
        {{"EVAL"}, cmd::flag_noscript | cmd::flag_movablekeys, cmd::flag_write | cmd::flag_readonly},
        {{"ZUNIONSTORE"}, cmd::flag_write | cmd::flag_movablekeys, cmd::flag_readonly},
        {{"SORT"}, cmd::flag_write | cmd::flag_movablekeys, cmd::flag_readonly},
        {{"SORT_RO"}, cmd::flag_readonly | cmd::flag_movablekeys, cmd::flag_write},
        {{"FLUSHALL"}, cmd::flag_write, cmd::flag_readonly},
        {{"SWAPDB"}, cmd::flag_write | cmd::flag_fast, cmd::flag_readonly},
        {{"CLIENT", "LIST"}, cmd::flag_admin | cmd::flag_noscript, cmd::flag_write | cmd::flag_readonly},
        {{"OBJECT", "ENCODING"}, cmd::flag_readonly, cmd::flag_write | cmd::flag_admin},
        {{"PUBLISH"}, cmd::flag_pubsub | cmd::flag_fast, cmd::flag_write},
        {{"OBJECT"}, 0, ~0u},
    };
    for (const auto& r : rows) {
        CAPTURE(r.args.front(), r.args.size());
        const command_info& info = info_for(r.args);
        CHECK((info.flags & r.set) == r.set);
        CHECK((info.flags & r.unset) == 0);
    }
    CHECK(info_for({"GET"}).has(cmd::flag_readonly));
    CHECK_FALSE(info_for({"GET"}).has(cmd::flag_write));
}

TEST_CASE("catalog: legacy key positions and key specs are read", "[command][catalog]") {
    const command_info& mset = info_for({"MSET"});
    CHECK(mset.first_key == 1);
    CHECK(mset.last_key == -1);
    CHECK(mset.key_step == 2);
    REQUIRE(mset.key_specs.size() == 1);
    CHECK(mset.key_specs[0].begin_kind == cmd::key_spec::begin::index);
    CHECK(mset.key_specs[0].index == 1);
    CHECK(mset.key_specs[0].find_kind == cmd::key_spec::find::range);
    CHECK(mset.key_specs[0].last_key == -1);
    CHECK(mset.key_specs[0].key_step == 2);

    const command_info& migrate = info_for({"MIGRATE"});
    REQUIRE(migrate.key_specs.size() == 2);
    CHECK_FALSE(migrate.key_specs[0].incomplete);
    CHECK(migrate.key_specs[1].incomplete);
    CHECK(migrate.key_specs[1].begin_kind == cmd::key_spec::begin::keyword);
    CHECK(migrate.key_specs[1].keyword == "keys");
    CHECK(migrate.key_specs[1].start_from == -2);

    const command_info& eval = info_for({"EVAL"});
    REQUIRE(eval.key_specs.size() == 1);
    CHECK(eval.key_specs[0].find_kind == cmd::key_spec::find::keynum);
    CHECK(eval.key_specs[0].keynum_index == 0);
    CHECK(eval.key_specs[0].first_key == 1);

    const command_info& sort = info_for({"SORT"});
    REQUIRE(sort.key_specs.size() == 3);
    CHECK(sort.key_specs[2].begin_kind == cmd::key_spec::begin::unknown);
    CHECK(sort.key_specs[2].find_kind == cmd::key_spec::find::unknown);

    CHECK(info_for({"OBJECT"}).subcommands.count("encoding") == 1);
    CHECK(info_for({"CLIENT"}).subcommands.size() > 10);
}

TEST_CASE("catalog: keys() finds the keys Redis's key specs designate", "[command][catalog]") {
    struct row {
        sv_list args;
        sv_list keys;
        bool complete;
    };
    const row rows[] = {
        {{"GET", "k"}, {"k"}, true},
        {{"SET", "k", "v", "EX", "10", "GET"}, {"k"}, true},
        {{"MSET", "k1", "v1", "k2", "v2"}, {"k1", "k2"}, true},
        {{"MSET", "k1", "v1", "k2", "v2", "k3", "v3"}, {"k1", "k2", "k3"}, true},
        {{"DEL", "k1", "k2"}, {"k1", "k2"}, true},
        {{"del", "only"}, {"only"}, true},
        {{"RENAME", "a", "b"}, {"a", "b"}, true},
        {{"ZUNIONSTORE", "dest", "2", "a", "b", "WEIGHTS", "1", "2"}, {"dest", "a", "b"}, true},
        {{"ZUNIONSTORE", "dest", "1", "a"}, {"dest", "a"}, true},
        {{"EVAL", "return 1", "2", "k1", "k2", "arg"}, {"k1", "k2"}, true},
        {{"EVAL", "return 1", "0", "arg"}, {}, true},
        {{"EVALSHA", "abc", "1", "k1"}, {"k1"}, true},
        {{"FCALL", "fn", "2", "k1", "k2", "a1", "a2"}, {"k1", "k2"}, true},
        {{"FCALL", "fn", "0"}, {}, true},
        {{"XREAD", "STREAMS", "s1", "s2", "0", "0"}, {"s1", "s2"}, true},
        {{"XREAD", "COUNT", "5", "BLOCK", "0", "streams", "s1", "$"}, {"s1"}, true},
        {{"LMOVE", "src", "dst", "LEFT", "RIGHT"}, {"src", "dst"}, true},
        {{"GEORADIUS", "g", "15", "37", "200", "km", "STORE", "x"}, {"g", "x"}, true},
        {{"GEORADIUS", "g", "15", "37", "200", "km", "storedist", "y"}, {"g", "y"}, true},
        {{"GEORADIUS", "g", "15", "37", "200", "km", "WITHDIST"}, {"g"}, true},
        {{"COPY", "src", "dst", "DB", "1"}, {"src", "dst"}, true},
        {{"COPY", "src", "dst", "DB", "1", "REPLACE"}, {"src", "dst"}, true},
        {{"OBJECT", "ENCODING", "k"}, {"k"}, true},
        {{"BLPOP", "a", "b", "0"}, {"a", "b"}, true},
        {{"CLIENT", "LIST"}, {}, true},
        // Redis marks these incomplete: there may be keys the specs cannot show.
        {{"SORT", "k"}, {"k"}, false},
        {{"SORT", "k", "BY", "w_*", "STORE", "d"}, {"k"}, false},
        {{"MIGRATE", "host", "6379", "key", "0", "5000"}, {"key"}, false},
    };
    const auto cat = redis7_catalog();
    for (const auto& r : rows) {
        CAPTURE(r.args.front(), r.args.size());
        const key_set ks = catalog::keys(info_for(r.args), r.args);
        CHECK(ks.keys == r.keys);
        CHECK(ks.complete == r.complete);
        require_views_into(ks, r.args);
    }
}

TEST_CASE("catalog: MIGRATE ... KEYS k1 k2 finds the keys after KEYS and is incomplete", "[command][catalog]") {
    const sv_list args = {"MIGRATE", "host", "6379", "", "0", "5000", "COPY", "KEYS", "k1", "k2"};
    const key_set ks = catalog::keys(info_for(args), args);
    CHECK_FALSE(ks.complete);
    REQUIRE(ks.keys.size() >= 2);
    CHECK(ks.keys[ks.keys.size() - 2] == "k1");
    CHECK(ks.keys[ks.keys.size() - 1] == "k2");
    require_views_into(ks, args);
}

TEST_CASE("catalog: keys() with too few arguments stays in bounds and says it is incomplete",
          "[command][catalog]") {
    struct row {
        sv_list args;
        sv_list keys;
    };
    const row rows[] = {
        {{"GET"}, {}},
        {{"RENAME", "a"}, {"a"}},
        {{"LMOVE", "src"}, {"src"}},
        {{"ZUNIONSTORE", "dest"}, {"dest"}},
        {{"ZUNIONSTORE", "dest", "3", "a"}, {"dest", "a"}},
        {{"EVAL", "s"}, {}},
        {{"EVAL", "s", "5", "k1"}, {}},
        {{"EVAL", "s", "2", "k1"}, {"k1"}},
        {{"EVAL", "s", "x", "k1"}, {}},
        {{"EVAL", "s", "-1", "k1"}, {}},
        {{"EVAL", "s", "99999999999999999999", "k1"}, {}},
        {{"FCALL", "fn", "3", "k1", "k2"}, {"k1", "k2"}},
        {{"COPY", "src"}, {"src"}},
        {{"OBJECT", "ENCODING"}, {}},
        {{"GEORADIUS", "g", "1", "2", "3", "km", "STORE"}, {"g"}},
    };
    for (const auto& r : rows) {
        CAPTURE(r.args.front(), r.args.size());
        const key_set ks = catalog::keys(info_for(r.args), r.args);
        CHECK(ks.keys == r.keys);
        CHECK_FALSE(ks.complete);
        require_views_into(ks, r.args);
    }
}

TEST_CASE("catalog: keys() of every command on every short argument list stays in bounds", "[command][catalog]") {
    // Each command of the reply, with 0 to 9 arguments drawn from words that steer key specs (numbers
    // for numkeys, the keywords that start key ranges): every key found must be one of the arguments.
    const auto cat = redis7_catalog();
    const std::array<std::string_view, 7> words = {"3", "KEYS", "STREAMS", "STORE", "1", "-2", "k"};
    std::size_t calls = 0;
    for (const auto& name : entry_names(redis7_command_reply())) {
        const auto bar = name.find('|');
        for (std::size_t extra = 0; extra < 10; ++extra) {
            for (std::size_t w = 0; w < words.size(); ++w) {
                sv_list args;
                args.push_back(bar == std::string::npos ? std::string_view(name)
                                                        : std::string_view(name).substr(0, bar));
                if (bar != std::string::npos) args.push_back(std::string_view(name).substr(bar + 1));
                for (std::size_t i = 0; i < extra; ++i) args.push_back(words[(w + i) % words.size()]);
                const command_info* info = cat->find(args);
                REQUIRE(info != nullptr);
                const key_set ks = catalog::keys(*info, args);
                ++calls;
                CAPTURE(name, args.size());
                require_views_into(ks, args);
            }
        }
    }
    CHECK(calls > 2000);
}

TEST_CASE("catalog: replies it does not understand give nullptr", "[command][catalog]") {
    const std::string& full = redis7_command_reply();
    const std::string inputs[] = {
        "",
        "+OK\r\n",
        "-ERR unknown command 'COMMAND'\r\n",
        ":1\r\n",
        "*0\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*2\r\n$3\r\nget\r\n:2\r\n",  // an entry too short to be a command
        "not resp at all",
        full.substr(0, full.size() / 2),  // truncated
        full.substr(0, full.size() - 1),
    };
    for (const auto& in : inputs) {
        CAPTURE(in.substr(0, 40), in.size());
        CHECK(catalog::from_reply(in) == nullptr);
    }
}

namespace {

// A COMMAND entry as Redis 6 sends it: no key specs, no subcommands.
std::string legacy_entry(std::string_view name, int arity, std::initializer_list<std::string_view> flags, int first,
                         int last, int step) {
    // Appended piece by piece (GCC 12 reports a false -Wrestrict on long chains of operator+).
    std::string out = "*7\r\n$";
    out.append(std::to_string(name.size())).append("\r\n").append(name).append("\r\n:");
    out.append(std::to_string(arity)).append("\r\n*").append(std::to_string(flags.size())).append("\r\n");
    for (auto f : flags) out.append("+").append(f).append("\r\n");
    for (int v : {first, last, step}) out.append(":").append(std::to_string(v)).append("\r\n");
    out.append("*0\r\n");
    return out;
}

}  // namespace

TEST_CASE("catalog: a Redis 6 reply uses the legacy key positions", "[command][catalog]") {
    const std::string reply = "*5\r\n" + legacy_entry("MSET", -3, {"write", "denyoom"}, 1, -1, 2) +
                              legacy_entry("get", 2, {"readonly", "fast"}, 1, 1, 1) +
                              legacy_entry("eval", -3, {"noscript", "movablekeys"}, 0, 0, 0) +
                              legacy_entry("blpop", -3, {"write", "noscript"}, 1, -2, 1) +
                              legacy_entry("ping", -1, {"stale", "fast"}, 0, 0, 0);
    const auto cat = catalog::from_reply(reply);
    REQUIRE(cat != nullptr);
    CHECK(cat->size() == 5);

    struct row {
        sv_list args;
        sv_list keys;
        bool complete;
    };
    const row rows[] = {
        {{"mset", "a", "1", "b", "2"}, {"a", "b"}, true},
        {{"GET", "k"}, {"k"}, true},
        {{"GET"}, {}, true},
        {{"EVAL", "s", "1", "k"}, {}, false},
        {{"BLPOP", "a", "b", "0"}, {"a", "b"}, true},
        {{"PING"}, {}, true},
    };
    for (const auto& r : rows) {
        CAPTURE(r.args.front(), r.args.size());
        const command_info* info = cat->find(r.args);
        REQUIRE(info != nullptr);
        CHECK(info->key_specs.empty());
        const key_set ks = catalog::keys(*info, r.args);
        CHECK(ks.keys == r.keys);
        CHECK(ks.complete == r.complete);
        require_views_into(ks, r.args);
    }
    CHECK(cat->find(sv_list{"MSET"})->name == "mset");
    CHECK(cat->find(sv_list{"MSET"})->has(cmd::flag_write));
}

TEST_CASE("catalog: to_lower lowers ASCII letters only, into the buffer", "[command][catalog]") {
    char buf[8];
    CHECK(cmd::to_lower("GeT", buf) == "get");
    CHECK(cmd::to_lower("A-Z_09", buf) == "a-z_09");
    CHECK(cmd::to_lower("", buf).empty());
    CHECK(cmd::to_lower("\xC3\x89T", buf) == "\xC3\x89t");
    const std::string_view longer = "TOOLONGNAME";
    const std::string_view same = cmd::to_lower(longer, buf);
    CHECK(same.data() == longer.data());
    CHECK(same == "TOOLONGNAME");
}
