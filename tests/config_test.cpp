#include "respcache/config/config.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace {

using respcache::backend_address;
using respcache::config;
using respcache::config_outcome;
using respcache::invalidation_mode;
using respcache::load_config;
using respcache::log_format;
using respcache::milliseconds;
using action = respcache::config_outcome::action;
namespace detail = respcache::detail;
namespace fs = std::filesystem;

using args_t = std::vector<std::string>;

// A directory of its own under the system's temp dir, removed with everything in it.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "respcache-config-test-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    // Writes `text` to a file named `name` in the directory and returns its path.
    std::string write(const std::string& name, const std::string& text) const {
        const fs::path p = path_ / name;
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

config_outcome run_ok(const args_t& args, const args_t& env = {}) {
    config_outcome out = load_config(args, env);
    INFO("message: " << out.message);
    REQUIRE(out.what == action::run);
    return out;
}

void require_usage_error(const config_outcome& out, const std::vector<std::string>& mentions) {
    INFO("message: " << out.message);
    REQUIRE(out.what == action::exit_usage_error);
    CHECK(out.message.find('\n') == std::string::npos);
    CHECK_FALSE(out.message.empty());
    for (const auto& m : mentions) {
        INFO("expected to mention: " << m);
        CHECK(out.message.find(m) != std::string::npos);
    }
}

}  // namespace

TEST_CASE("config: every option has its documented default", "[config]") {
    const config cfg = run_ok({}).cfg;
    CHECK(cfg.bind == "127.0.0.1");
    CHECK(cfg.port == 8001);
    CHECK(cfg.backend.host == "127.0.0.1");
    CHECK(cfg.backend.port == 6379);
    CHECK(cfg.backend.user.empty());
    CHECK(cfg.backend.password.empty());
    CHECK(cfg.backend.db == 0);
    CHECK(cfg.capacity == 1024);
    CHECK(cfg.max_memory == 0);
    CHECK(cfg.max_value_size == 1024 * 1024);
    CHECK(cfg.cache_shards == 0);
    CHECK(cfg.ttl == milliseconds(300'000));
    CHECK(cfg.reaper_interval == milliseconds(100));
    CHECK(cfg.invalidation == invalidation_mode::tracking);
    CHECK(cfg.consistency == respcache::consistency_mode::bounded);
    // "default: half the number of cores, at least 1" (--help).
    CHECK(cfg.threads == std::max(1u, std::thread::hardware_concurrency() / 2));
    CHECK(cfg.threads == respcache::default_threads());
    CHECK(cfg.backend_connections == 1);
    CHECK(cfg.connect_timeout == milliseconds(1000));
    CHECK(cfg.request_timeout == milliseconds(3000));
    CHECK(cfg.shutdown_timeout == milliseconds(5000));
    CHECK(cfg.max_clients == 10000);
    CHECK(cfg.log_level == "info");
    CHECK(cfg.log_fmt == log_format::text);
    CHECK(cfg.config_file.empty());
}

TEST_CASE("config: every option is read from the command line", "[config]") {
    const config cfg = run_ok({"--bind", "::1", "--port", "0", "--backend", "redis://u:p@10.0.0.2:7000/3",
                               "--capacity", "0", "--max-memory", "64mb", "--max-value-size", "512kb",
                               "--cache-shards", "8", "--ttl", "5m", "--reaper-interval", "250ms",
                               "--invalidation", "ttl", "--threads", "3", "--backend-connections", "4",
                               "--connect-timeout", "2s", "--request-timeout", "1500ms", "--shutdown-timeout",
                               "0", "--max-clients", "7", "--log-level", "debug", "--log-format", "json"})
                           .cfg;
    CHECK(cfg.bind == "::1");
    CHECK(cfg.port == 0);
    CHECK(cfg.backend.host == "10.0.0.2");
    CHECK(cfg.backend.port == 7000);
    CHECK(cfg.backend.user == "u");
    CHECK(cfg.backend.password == "p");
    CHECK(cfg.backend.db == 3);
    CHECK(cfg.capacity == 0);
    CHECK(cfg.max_memory == 64u * 1024 * 1024);
    CHECK(cfg.max_value_size == 512u * 1024);
    CHECK(cfg.cache_shards == 8);
    CHECK(cfg.ttl == milliseconds(300'000));
    CHECK(cfg.reaper_interval == milliseconds(250));
    CHECK(cfg.invalidation == invalidation_mode::ttl);
    CHECK(cfg.threads == 3);
    CHECK(cfg.backend_connections == 4);
    CHECK(cfg.connect_timeout == milliseconds(2000));
    CHECK(cfg.request_timeout == milliseconds(1500));
    CHECK(cfg.shutdown_timeout == milliseconds(0));
    CHECK(cfg.max_clients == 7);
    CHECK(cfg.log_level == "debug");
    CHECK(cfg.log_fmt == log_format::json);
}

TEST_CASE("config: --name=value and --name value are the same", "[config]") {
    CHECK(run_ok({"--ttl=7s"}).cfg.ttl == milliseconds(7000));
    CHECK(run_ok({"--ttl", "7s"}).cfg.ttl == milliseconds(7000));
    CHECK(run_ok({"--capacity=12", "--log-format=json"}).cfg.capacity == 12);
}

TEST_CASE("config: precedence is flag > environment > file > default", "[config]") {
    struct option_case {
        const char* option;  // as on the command line, without "--"
        const char* env;     // the RESPCACHE_ variable
        const char* file_value;
        const char* env_value;
        const char* flag_value;
        std::function<std::string(const config&)> read;
        std::string default_value;
    };
    const option_case cases[] = {
        {"ttl", "RESPCACHE_TTL", "10s", "20s", "30s",
         [](const config& c) { return std::to_string(c.ttl.count()); }, "300000"},
        {"capacity", "RESPCACHE_CAPACITY", "11", "22", "33",
         [](const config& c) { return std::to_string(c.capacity); }, "1024"},
        {"max-memory", "RESPCACHE_MAX_MEMORY", "1kb", "2kb", "3kb",
         [](const config& c) { return std::to_string(c.max_memory); }, "0"},
        {"log-level", "RESPCACHE_LOG_LEVEL", "warn", "error", "trace",
         [](const config& c) { return c.log_level; }, "info"},
        {"backend", "RESPCACHE_BACKEND", "redis://file-host:1", "redis://env-host:2", "redis://flag-host:3",
         [](const config& c) { return c.backend.host + ":" + std::to_string(c.backend.port); },
         "127.0.0.1:6379"},
        {"request-timeout", "RESPCACHE_REQUEST_TIMEOUT", "1s", "2s", "3s",
         [](const config& c) { return std::to_string(c.request_timeout.count()); }, "3000"},
    };
    auto value_in = [](const option_case& c, const char* v) {
        if (std::string(c.option) == "max-memory") return std::to_string(std::stoul(v) * 1024);
        if (std::string(c.option) == "ttl" || std::string(c.option) == "request-timeout")
            return std::to_string(std::stoul(v) * 1000);
        if (std::string(c.option) == "backend") {
            std::string s(v);
            s = s.substr(std::string("redis://").size());
            return s;
        }
        return std::string(v);
    };

    temp_dir dir;
    for (const auto& c : cases) {
        CAPTURE(c.option);
        const std::string file = dir.write(std::string(c.option) + ".conf",
                                           std::string(c.option) + " = " + c.file_value + "\n");
        const std::string env = std::string(c.env) + "=" + c.env_value;
        const args_t flag = {std::string("--") + c.option, c.flag_value};
        const args_t with_file = {"--config", file};

        CHECK(c.read(run_ok({}).cfg) == c.default_value);
        CHECK(c.read(run_ok(with_file).cfg) == value_in(c, c.file_value));
        CHECK(c.read(run_ok({}, {env}).cfg) == value_in(c, c.env_value));
        CHECK(c.read(run_ok(with_file, {env}).cfg) == value_in(c, c.env_value));
        CHECK(c.read(run_ok(flag).cfg) == value_in(c, c.flag_value));
        CHECK(c.read(run_ok(flag, {env}).cfg) == value_in(c, c.flag_value));
        args_t all = flag;
        all.insert(all.end(), with_file.begin(), with_file.end());
        CHECK(c.read(run_ok(all, {env}).cfg) == value_in(c, c.flag_value));
        CHECK(c.read(run_ok(all).cfg) == value_in(c, c.flag_value));
    }
}

TEST_CASE("config: options from different sources combine", "[config]") {
    temp_dir dir;
    const std::string file = dir.write("respcache.conf", "capacity = 5\nttl = 9s\nlog-level = warn\n");
    const config cfg = run_ok({"--config", file, "--ttl", "1s"}, {"RESPCACHE_LOG_LEVEL=error"}).cfg;
    CHECK(cfg.capacity == 5);
    CHECK(cfg.ttl == milliseconds(1000));
    CHECK(cfg.log_level == "error");
    CHECK(cfg.config_file == file);
}

TEST_CASE("config: the config file has key = value lines and # comments", "[config]") {
    temp_dir dir;
    const std::string file = dir.write("respcache.conf",
                                       "# respcache settings\n"
                                       "\n"
                                       "capacity = 77\n"
                                       "   ttl=45s   \n"
                                       "max-memory = 2mb # two megabytes\n"
                                       "# ttl = 1s\n"
                                       "backend = redis://secret@cache.internal:6390/2\n");
    const config cfg = run_ok({"--config", file}).cfg;
    CHECK(cfg.capacity == 77);
    CHECK(cfg.ttl == milliseconds(45'000));
    CHECK(cfg.max_memory == 2u * 1024 * 1024);
    CHECK(cfg.backend.host == "cache.internal");
    CHECK(cfg.backend.port == 6390);
    CHECK(cfg.backend.password == "secret");
    CHECK(cfg.backend.db == 2);
}

TEST_CASE("config: RESPCACHE_CONFIG names the config file", "[config]") {
    temp_dir dir;
    const std::string file = dir.write("from-env.conf", "capacity = 99\n");
    const config cfg = run_ok({}, {"RESPCACHE_CONFIG=" + file}).cfg;
    CHECK(cfg.capacity == 99);
    CHECK(cfg.config_file == file);
}

TEST_CASE("config: environment variables without the RESPCACHE_ prefix are ignored", "[config]") {
    const config cfg =
        run_ok({}, {"PATH=/usr/bin", "HOME=/root", "TTL=1s", "RESPCACHE=1", "XRESPCACHE_TTL=1s", "NOEQUALS"}).cfg;
    CHECK(cfg.ttl == milliseconds(300'000));
}

TEST_CASE("config: a bad value names the option and the accepted form, from every source", "[config]") {
    struct bad {
        const char* option;
        const char* value;
        const char* form;  // a piece of the accepted form the message must quote
    };
    const bad rows[] = {
        {"bind", "localhost", "IP address"},
        {"bind", "1.2.3", "IP address"},
        {"port", "65536", "0 to 65535"},
        {"port", "-1", "0 to 65535"},
        {"port", "http", "0 to 65535"},
        {"backend", "127.0.0.1:6379", "redis://[user:password@]host:port[/db]"},
        {"backend", "redis://host:0", "redis://[user:password@]host:port[/db]"},
        {"capacity", "-5", "whole number of keys"},
        {"capacity", "4294967296", "whole number of keys"},
        {"capacity", "10k", "whole number of keys"},
        {"max-memory", "lots", "64mb"},
        {"max-memory", "1tb", "64mb"},
        {"max-memory", "-1", "64mb"},
        {"max-value-size", "0", "at least 1 byte"},
        {"max-value-size", "1.5mb", "at least 1 byte"},
        {"cache-shards", "1025", "0 to 1024"},
        {"cache-shards", "x", "0 to 1024"},
        {"ttl", "0", "from 1ms to 24 days"},
        {"ttl", "0ms", "from 1ms to 24 days"},
        {"ttl", "5d", "from 1ms to 24 days"},
        {"ttl", "1.5s", "from 1ms to 24 days"},
        {"ttl", "-1s", "from 1ms to 24 days"},
        {"ttl", "577h", "from 1ms to 24 days"},
        {"reaper-interval", "0s", "at least 1ms"},
        {"reaper-interval", "soon", "at least 1ms"},
        {"invalidation", "none", "tracking or ttl"},
        {"invalidation", "TRACKING", "tracking or ttl"},
        {"consistency", "linearizable", "bounded or strict"},
        {"threads", "0", "1 to 256"},
        {"threads", "257", "1 to 256"},
        {"backend-connections", "0", "1 to 64"},
        {"backend-connections", "65", "1 to 64"},
        {"connect-timeout", "0", "at least 1ms"},
        {"connect-timeout", "1 s", "at least 1ms"},
        {"request-timeout", "0ms", "at least 1ms"},
        {"request-timeout", "3sec", "at least 1ms"},
        {"shutdown-timeout", "forever", "5s or 0"},
        {"shutdown-timeout", "-5s", "5s or 0"},
        {"max-clients", "0", "1 to 1000000"},
        {"max-clients", "1000001", "1 to 1000000"},
        {"log-level", "verbose", "trace, debug, info, warn, error, critical, off"},
        {"log-format", "xml", "text or json"},
        {"cache-commands", "get,,hget", "get,hget"},
        {"cache-commands", "-hget", "default,-hgetall"},
        {"negative-caching", "maybe", "auto, yes or no"},
        {"refresh-ahead", "0.3", "from 0.5 to 0.99"},
        {"refresh-ahead", "1", "from 0.5 to 0.99"},
        {"refresh-ahead", "soon", "from 0.5 to 0.99"},
        {"warm-keys", "0", "1 to 10000000"},
        {"warm-interval", "500ms", "at least 1s"},
    };
    temp_dir dir;
    for (const auto& r : rows) {
        CAPTURE(r.option, r.value);
        const std::string flag = std::string("--") + r.option;
        const std::vector<std::string> mentions = {flag, r.form, r.value};
        require_usage_error(load_config({flag, r.value}, {}), mentions);
        require_usage_error(load_config({flag + "=" + r.value}, {}), mentions);

        std::string env_name = r.option;
        for (char& ch : env_name) ch = ch == '-' ? '_' : static_cast<char>(std::toupper(ch));
        require_usage_error(load_config({}, {"RESPCACHE_" + env_name + "=" + r.value}), mentions);

        const std::string file = dir.write("bad.conf", std::string(r.option) + " = " + r.value + "\n");
        require_usage_error(load_config({"--config", file}, {}), mentions);
    }
}

TEST_CASE("config: a bad value wins over nothing: a good value elsewhere does not hide it", "[config]") {
    // The flag's bad value is reported even though the environment has a good one.
    require_usage_error(load_config({"--ttl", "never"}, {"RESPCACHE_TTL=5s"}), {"--ttl", "never"});
    // A bad value in a lower-precedence source is shadowed by the higher one and never read.
    CHECK(run_ok({"--ttl", "5s"}, {"RESPCACHE_TTL=never"}).cfg.ttl == milliseconds(5000));
}

TEST_CASE("config: durations accept ms, s, m, h and bare seconds", "[config]") {
    const std::pair<const char*, std::int64_t> good[] = {
        {"0", 0},           {"1", 1000},        {"250ms", 250},       {"0ms", 0},
        {"30s", 30'000},    {"5m", 300'000},    {"2h", 7'200'000},    {"1500ms", 1500},
        {"10S", 10'000},    {"3MS", 3},         {"1H", 3'600'000},    {"007s", 7000},
    };
    for (auto [text, ms] : good) {
        CAPTURE(text);
        const auto d = detail::parse_duration(text);
        REQUIRE(d);
        CHECK(d->count() == ms);
    }
    const char* bad[] = {"", "s", "ms", "-1s", "+1s", "1.5s", "1 s", " 1s", "1s ", "1d", "1sec", "1min",
                         "1hr", "1m30s", "1e3", "99999999999999999999", "9223372036854775807h"};
    for (const char* text : bad) {
        CAPTURE(text);
        CHECK_FALSE(detail::parse_duration(text));
    }
}

TEST_CASE("config: sizes accept k = 1000 and kb = 1024, and their larger kin", "[config]") {
    const std::pair<const char*, std::uint64_t> good[] = {
        {"0", 0},
        {"1024", 1024},
        {"10b", 10},
        {"1k", 1000},
        {"1kb", 1024},
        {"64kb", 65536},
        {"2m", 2'000'000},
        {"512mb", 512ull * 1024 * 1024},
        {"3g", 3'000'000'000ull},
        {"1gb", 1024ull * 1024 * 1024},
        {"1KB", 1024},
        {"1Mb", 1024 * 1024},
        {"4GB", 4ull * 1024 * 1024 * 1024},
    };
    for (auto [text, bytes] : good) {
        CAPTURE(text);
        const auto n = detail::parse_size(text);
        REQUIRE(n);
        CHECK(*n == bytes);
    }
    const char* bad[] = {"", "kb", "-1", "+1", "1.5mb", "1 kb", "1kib", "1tb", "1t", "1bytes", "0x10",
                         "99999999999999999999", "18446744073709551615gb"};
    for (const char* text : bad) {
        CAPTURE(text);
        CHECK_FALSE(detail::parse_size(text));
    }
}

TEST_CASE("config: backend URLs", "[config]") {
    struct good {
        const char* url;
        const char* host;
        std::uint16_t port;
        const char* user;
        const char* password;
        std::uint32_t db;
    };
    const good rows[] = {
        {"redis://localhost:6379", "localhost", 6379, "", "", 0},
        {"redis://10.1.2.3:7000", "10.1.2.3", 7000, "", "", 0},
        {"redis://cache", "cache", 6379, "", "", 0},
        {"redis://cache/4", "cache", 6379, "", "", 4},
        {"redis://cache:6380/15", "cache", 6380, "", "", 15},
        {"redis://cache:6380/", "cache", 6380, "", "", 0},
        {"redis://alice:s3cret@cache:6380", "cache", 6380, "alice", "s3cret", 0},
        {"redis://s3cret@cache:6380", "cache", 6380, "", "s3cret", 0},
        {"redis://:s3cret@cache", "cache", 6379, "", "s3cret", 0},
        {"redis://alice:p:w@cache", "cache", 6379, "alice", "p:w", 0},
        {"redis://alice:p@ss@cache", "cache", 6379, "alice", "p@ss", 0},
        {"redis://alice:p%40ss%3A@cache", "cache", 6379, "alice", "p@ss:", 0},
        {"redis://[::1]:6380", "::1", 6380, "", "", 0},
        {"redis://[::1]", "::1", 6379, "", "", 0},
        {"redis://[::1]/2", "::1", 6379, "", "", 2},
        {"redis://u:p@[fe80::1]:1/9", "fe80::1", 1, "u", "p", 9},
        {"redis://h:65535", "h", 65535, "", "", 0},
    };
    for (const auto& r : rows) {
        CAPTURE(r.url);
        const auto a = detail::parse_backend_url(r.url);
        REQUIRE(a);
        CHECK(a->host == r.host);
        CHECK(a->port == r.port);
        CHECK(a->user == r.user);
        CHECK(a->password == r.password);
        CHECK(a->db == r.db);
    }
    const char* bad[] = {
        "",
        "cache:6379",
        "http://cache:6379",
        "rediss://",
        "redisss://cache:6379",
        "redis://",
        "redis://:6379",
        "redis://cache:",
        "redis://cache:0",
        "redis://cache:65536",
        "redis://cache:port",
        "redis://cache:-1",
        "redis://cache/x",
        "redis://cache/-1",
        "redis://cache/1/2",
        "redis://cache/4294967296",
        "redis://[::1",
        "redis://[::1]6380",
        "redis://[]:6379",
        "redis://ca che",
        "redis://u:p@",
        "redis://u:%zz@cache",
        "redis://u:%4@cache",
    };
    for (const char* url : bad) {
        CAPTURE(url);
        CHECK_FALSE(detail::parse_backend_url(url));
    }
}

TEST_CASE("config: rediss:// is a TLS backend, redis:// a plain one", "[config]") {
    const auto tls = detail::parse_backend_url("rediss://alice:pw@cache.example:6380/2");
    REQUIRE(tls);
    CHECK(tls->tls);
    CHECK(tls->host == "cache.example");
    CHECK(tls->port == 6380);
    CHECK(tls->db == 2);
    CHECK(tls->redacted() == "rediss://alice:***@cache.example:6380/2");
    const auto plain = detail::parse_backend_url("redis://cache.example:6380");
    REQUIRE(plain);
    CHECK_FALSE(plain->tls);
}

TEST_CASE("config: an unbracketed IPv6 address is not taken apart at its last colon", "[config]") {
    // Reading "::1" as host ":" port 1 would point the proxy at a host that does not exist: an IPv6
    // address is written in brackets, and without them it is refused.
    CHECK_FALSE(detail::parse_backend_url("redis://::1"));
    CHECK_FALSE(detail::parse_backend_url("redis://::1:6380"));
    const auto a = detail::parse_backend_url("redis://[::1]");
    REQUIRE(a);
    CHECK(a->host == "::1");
    CHECK(a->port == 6379);
}

TEST_CASE("config: an empty port after a bracketed host is refused, as after a name", "[config]") {
    REQUIRE_FALSE(detail::parse_backend_url("redis://cache:"));
    CHECK_FALSE(detail::parse_backend_url("redis://[::1]:"));
    CHECK_FALSE(detail::parse_backend_url("redis://[::1]:/2"));
}

TEST_CASE("config: backend_address::redacted never shows the password", "[config]") {
    struct row {
        backend_address a;
        const char* expected;
    };
    const row rows[] = {
        {{"127.0.0.1", 6379, "", "", 0, false, {}}, "redis://127.0.0.1:6379"},
        {{"cache", 6380, "", "Pa55w0rd!", 0, false, {}}, "redis://:***@cache:6380"},
        {{"cache", 6380, "alice", "Pa55w0rd!", 0, false, {}}, "redis://alice:***@cache:6380"},
        {{"cache", 6380, "alice", "", 0, false, {}}, "redis://alice@cache:6380"},
        {{"cache", 6380, "alice", "Pa55w0rd!", 3, false, {}}, "redis://alice:***@cache:6380/3"},
        {{"::1", 7000, "", "Pa55w0rd!", 0, false, {}}, "redis://:***@[::1]:7000"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.expected);
        const std::string text = r.a.redacted();
        CHECK(text == r.expected);
        CHECK(text.find("Pa55w0rd!") == std::string::npos);
    }
    // Parsed from a URL and back: the password never comes out.
    const auto parsed = detail::parse_backend_url("redis://bob:Xy%2FzSECRET@db.example:6390/1");
    REQUIRE(parsed);
    CHECK(parsed->password == "Xy/zSECRET");
    CHECK(parsed->redacted() == "redis://bob:***@db.example:6390/1");
    CHECK(parsed->redacted().find("SECRET") == std::string::npos);
}

TEST_CASE("config: a redis+cluster:// backend names its seeds", "[config][cluster]") {
    auto a = detail::parse_backend_url("redis+cluster://bob:s3cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002");
    REQUIRE(a);
    CHECK(a->cluster());
    CHECK(a->host == "10.0.0.1");
    CHECK(a->port == 7000);
    CHECK(a->user == "bob");
    CHECK(a->password == "s3cret");
    REQUIRE(a->cluster_seeds.size() == 3);
    CHECK(a->cluster_seeds[1] == std::pair<std::string, std::uint16_t>{"10.0.0.2", 7001});
    CHECK(a->cluster_seeds[2] == std::pair<std::string, std::uint16_t>{"::1", 7002});
    CHECK(a->redacted() == "redis+cluster://bob:***@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002");
    CHECK_FALSE(detail::parse_backend_url("redis+cluster://"));
    CHECK_FALSE(detail::parse_backend_url("redis+cluster://a:1,,b:2"));
    CHECK_FALSE(detail::parse_backend_url("redis+cluster://a:1/2"));
    CHECK_FALSE(detail::parse_backend_url("redis+cluster://a:0"));
    CHECK_FALSE(detail::parse_backend_url("redis://a:1")->cluster());

    const config_outcome o = load_config({"--backend", "redis+cluster://127.0.0.1:7000"}, {});
    REQUIRE(o.what == config_outcome::action::run);
    CHECK(o.cfg.backend.cluster());
}

TEST_CASE("config: unknown options and variables are usage errors", "[config]") {
    require_usage_error(load_config({"--no-such-option", "1"}, {}), {"no-such-option"});
    require_usage_error(load_config({"--ttl"}, {}), {"ttl"});  // value missing
    require_usage_error(load_config({}, {"RESPCACHE_NO_SUCH=1"}), {"RESPCACHE_NO_SUCH"});
    require_usage_error(load_config({}, {"RESPCACHE_HELP=1"}), {"RESPCACHE_HELP"});
    require_usage_error(load_config({}, {"RESPCACHE_VERSION=1"}), {"RESPCACHE_VERSION"});
    require_usage_error(load_config({"--ttl", "1s", "--ttl", "2s"}, {}), {"ttl"});
}

TEST_CASE("config: a stray positional argument is a usage error, not silently ignored", "[config]") {
    // `respcache 6380` (a forgotten --port) must not start on the default port.
    require_usage_error(load_config({"6380"}, {}), {"6380"});
    require_usage_error(load_config({"--ttl", "1s", "stray"}, {}), {"stray"});
}

TEST_CASE("config: config file errors are usage errors naming the file", "[config]") {
    temp_dir dir;
    SECTION("a missing file") {
        const std::string missing = (dir.path() / "missing.conf").string();
        require_usage_error(load_config({"--config", missing}, {}), {"--config", missing});
        require_usage_error(load_config({}, {"RESPCACHE_CONFIG=" + missing}), {"--config", missing});
    }
    SECTION("an unknown key") {
        const std::string file = dir.write("unknown.conf", "capacity = 5\nno-such-key = 1\n");
        require_usage_error(load_config({"--config", file}, {}), {file, "no-such-key"});
    }
    SECTION("a line that is not key = value") {
        const std::string file = dir.write("garbage.conf", "capacity 5\n");
        require_usage_error(load_config({"--config", file}, {}), {file});
    }
    SECTION("a bad value names the option") {
        const std::string file = dir.write("badvalue.conf", "ttl = forever\n");
        require_usage_error(load_config({"--config", file}, {}), {"--ttl", "forever"});
    }
}

TEST_CASE("config: a directory given as --config is refused", "[config]") {
    temp_dir dir;
    const std::string path = dir.path().string();
    require_usage_error(load_config({"--config", path}, {}), {"--config", path});
}

TEST_CASE("config: the options of what is cached and how it is kept warm", "[config]") {
    const config d = run_ok({}).cfg;
    CHECK(d.cache_commands == respcache::command::cache_commands{});
    CHECK(d.caches_missing_keys());
    CHECK(d.refresh_ahead == 0);
    CHECK(d.warm_file.empty());
    CHECK(d.warm_keys == 10000);
    CHECK(d.warm_interval == milliseconds(300'000));
    // auto: missing keys are cached only where Redis announces their creation.
    CHECK_FALSE(run_ok({"--invalidation", "ttl"}).cfg.caches_missing_keys());
    CHECK(run_ok({"--invalidation", "ttl", "--negative-caching", "yes"}).cfg.caches_missing_keys());
    CHECK_FALSE(run_ok({"--negative-caching", "no"}).cfg.caches_missing_keys());
    const config c = run_ok({"--cache-commands", "default,-hgetall", "--refresh-ahead", "0.8", "--warm-file",
                             "/tmp/w", "--warm-keys", "50", "--warm-interval", "1m"})
                         .cfg;
    CHECK(c.cache_commands.defaults);
    CHECK(c.cache_commands.removed == std::vector<std::string>{"hgetall"});
    CHECK(c.refresh_ahead == 0.8);
    CHECK(c.warm_file == "/tmp/w");
    CHECK(c.warm_keys == 50);
    CHECK(c.warm_interval == milliseconds(60'000));
    CHECK(run_ok({"--refresh-ahead", "0"}).cfg.refresh_ahead == 0);
}

TEST_CASE("config: --consistency strict needs client tracking", "[config]") {
    CHECK(run_ok({"--consistency", "strict"}).cfg.consistency == respcache::consistency_mode::strict);
    CHECK(run_ok({"--consistency", "bounded", "--invalidation", "ttl"}).cfg.consistency ==
          respcache::consistency_mode::bounded);
    require_usage_error(load_config({"--consistency", "strict", "--invalidation", "ttl"}, {}),
                        {"--consistency strict", "--invalidation tracking"});
    require_usage_error(load_config({"--invalidation", "ttl"}, {"RESPCACHE_CONSISTENCY=strict"}),
                        {"--consistency strict"});
}

TEST_CASE("config: --help and --version exit with text", "[config]") {
    for (const args_t& args : {args_t{"--help"}, args_t{"-h"}, args_t{"--ttl", "1s", "--help"}}) {
        const config_outcome out = load_config(args, {});
        REQUIRE(out.what == action::exit_success);
        CHECK(out.message.find("Usage") != std::string::npos);
        for (const char* option : {"--bind", "--port", "--backend", "--capacity", "--max-memory",
                                   "--max-value-size", "--cache-shards", "--ttl", "--reaper-interval",
                                   "--invalidation", "--consistency", "--threads", "--backend-connections", "--connect-timeout",
                                   "--request-timeout", "--shutdown-timeout", "--max-clients", "--log-level",
                                   "--log-format", "--config", "--version", "RESPCACHE_"}) {
            CAPTURE(option);
            CHECK(out.message.find(option) != std::string::npos);
        }
    }
    // --help wins even over a bad value.
    CHECK(load_config({"--ttl", "never", "--help"}, {}).what == action::exit_success);

    const config_outcome v = load_config({"--version"}, {});
    REQUIRE(v.what == action::exit_success);
    CHECK(v.message == std::string("respcache ") + RESPCACHE_VERSION + "\n");
}

TEST_CASE("config: process_environment returns NAME=value strings of this process", "[config]") {
    ::setenv("RESPCACHE_CONFIG_TEST_PROBE", "x=y", 1);
    const auto env = respcache::process_environment();
    ::unsetenv("RESPCACHE_CONFIG_TEST_PROBE");
    CHECK(std::find(env.begin(), env.end(), "RESPCACHE_CONFIG_TEST_PROBE=x=y") != env.end());
}

TEST_CASE("config: the TLS options and what they need", "[config]") {
    const config defaults = run_ok({}).cfg;
    CHECK(defaults.tls_port == 0);
    CHECK(defaults.tls_auth_clients == respcache::net::client_auth::yes);
    const config cfg = run_ok({"--tls-port", "6380", "--tls-cert-file", "s.crt", "--tls-key-file", "s.key",
                               "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "optional", "--backend",
                               "rediss://db:6379", "--backend-tls-ca-cert-file", "bca.crt", "--backend-tls-cert-file",
                               "c.crt", "--backend-tls-key-file", "c.key"})
                           .cfg;
    CHECK(cfg.tls_port == 6380);
    CHECK(cfg.tls_cert_file == "s.crt");
    CHECK(cfg.tls_key_file == "s.key");
    CHECK(cfg.tls_ca_cert_file == "ca.crt");
    CHECK(cfg.tls_auth_clients == respcache::net::client_auth::optional);
    CHECK(cfg.backend.tls);
    CHECK(cfg.backend_tls_ca_cert_file == "bca.crt");
    CHECK(cfg.backend_tls_cert_file == "c.crt");
    CHECK(cfg.backend_tls_key_file == "c.key");
    CHECK(run_ok({"--tls-port", "6380", "--tls-cert-file", "s.crt", "--tls-key-file", "s.key", "--tls-auth-clients",
                  "no"})
              .cfg.tls_ca_cert_file.empty());

    struct bad {
        args_t args;
        const char* mention;
    };
    const bad rows[] = {
        {{"--tls-port", "6380"}, "--tls-port needs --tls-cert-file and --tls-key-file"},
        {{"--tls-port", "6380", "--tls-cert-file", "s.crt"}, "--tls-port needs --tls-cert-file and --tls-key-file"},
        {{"--tls-port", "6380", "--tls-cert-file", "s.crt", "--tls-key-file", "s.key"}, "needs --tls-ca-cert-file"},
        {{"--tls-port", "8001", "--tls-cert-file", "s.crt", "--tls-key-file", "s.key", "--tls-auth-clients", "no"},
         "--tls-port and --port must differ"},
        {{"--tls-auth-clients", "maybe"}, "yes, no or optional"},
        {{"--tls-cert-file", ""}, "PEM file path"},
        {{"--backend-tls-ca-cert-file", "ca.crt"}, "need a rediss:// --backend"},
        {{"--backend", "rediss://db:6379", "--backend-tls-cert-file", "c.crt"}, "give both or neither"},
        {{"--backend", "rediss://db:6379", "--backend-tls-key-file", "c.key"}, "give both or neither"},
    };
    for (const auto& r : rows) require_usage_error(load_config(r.args, {}), {r.mention});
}

TEST_CASE("config: --tls-port cannot change on reload; the certificate files can", "[config]") {
    const args_t base = {"--tls-port", "6380", "--tls-cert-file", "s.crt", "--tls-key-file", "s.key",
                         "--tls-auth-clients", "no"};
    const config a = run_ok(base).cfg;
    args_t moved = base;
    moved[1] = "6381";
    CHECK(fixed_options_changed(a, run_ok(moved).cfg) == std::vector<std::string>{"tls-port"});
    args_t renamed = base;
    renamed[3] = "other.crt";
    CHECK(fixed_options_changed(a, run_ok(renamed).cfg).empty());
    const config tls = run_ok({"--backend", "rediss://127.0.0.1:6379"}).cfg;
    CHECK(fixed_options_changed(run_ok({}).cfg, tls) == std::vector<std::string>{"backend"});
}
