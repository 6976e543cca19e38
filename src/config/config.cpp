#include "respcache/config/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/make_shared.hpp>
#include <boost/program_options.hpp>

extern char** environ;

namespace respcache {

namespace po = boost::program_options;


std::vector<std::string> fixed_options_changed(const config& a, const config& b) {
    std::vector<std::string> out;
    auto check = [&](const char* name, bool same) {
        if (!same) out.emplace_back(name);
    };
    check("bind", a.bind == b.bind);
    check("port", a.port == b.port);
    check("backend", a.backend.host == b.backend.host && a.backend.port == b.backend.port && a.backend.user == b.backend.user &&
                         a.backend.password == b.backend.password && a.backend.db == b.backend.db);
    check("threads", a.threads == b.threads);
    check("cache-shards", a.cache_shards == b.cache_shards);
    check("invalidation", a.invalidation == b.invalidation);
    check("consistency", a.consistency == b.consistency);
    check("backend-connections", a.backend_connections == b.backend_connections);
    check("metrics-port", a.metrics_port == b.metrics_port);
    check("log-format", a.log_fmt == b.log_fmt);
    check("client-query-buffer-limit", a.client_query_buffer_limit == b.client_query_buffer_limit);
    return out;
}

std::vector<std::string> process_environment() {
    std::vector<std::string> out;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) out.emplace_back(*e);
    return out;
}

namespace {

// One option: its name, its help text with the accepted form, and how to apply a value to a config.
// Returning false means "not of the accepted form".
struct option_row {
    const char* name;
    const char* form;  // the accepted form, quoted in errors and in --help
    const char* help;
    std::function<bool(config&, const std::string&)> apply;
};

// The first line of a file, without its line ending; nullopt if the file cannot be read.
std::optional<std::string> read_secret_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    return line;
}

bool is_ip_address(const std::string& s) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

template <typename T>
std::function<bool(config&, const std::string&)> integer_in(T config::*field, std::uint64_t lo, std::uint64_t hi) {
    return [=](config& c, const std::string& v) {
        std::uint64_t n = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < lo || n > hi) return false;
        c.*field = static_cast<T>(n);
        return true;
    };
}

std::function<bool(config&, const std::string&)> duration_at_least(milliseconds config::*field, milliseconds lo) {
    return [=](config& c, const std::string& v) {
        auto d = detail::parse_duration(v);
        if (!d || *d < lo) return false;
        c.*field = *d;
        return true;
    };
}

std::function<bool(config&, const std::string&)> size_at_least(std::size_t config::*field, std::size_t lo) {
    return [=](config& c, const std::string& v) {
        auto n = detail::parse_size(v);
        if (!n || *n < lo) return false;
        c.*field = *n;
        return true;
    };
}

// Where to listen and which Redis to serve.
std::vector<option_row> listening_options() {
    return {
        {"bind", "an IP address such as 127.0.0.1 or ::1", "address to listen on (default 127.0.0.1)",
         [](config& c, const std::string& v) {
             if (!is_ip_address(v)) return false;
             c.bind = v;
             return true;
         }},
        {"port", "a port number from 0 to 65535", "port to listen on; 0 picks a free one (default 8001)",
         integer_in(&config::port, 0, 65535)},
        {"backend", "redis://[user:password@]host:port[/db]",
         "the backing Redis (default redis://127.0.0.1:6379)",
         [](config& c, const std::string& v) {
             auto a = detail::parse_backend_url(v);
             if (!a) return false;
             c.backend = *a;
             return true;
         }},
    };
}

// The cache: its size bounds, sharding and entry lifetimes.
std::vector<option_row> cache_options() {
    return {
        {"capacity", "a whole number of keys, 0 disables the cache", "most keys cached (default 1024)",
         integer_in(&config::capacity, 0, UINT32_MAX)},
        {"max-memory", "a size such as 0, 1048576, 64mb or 1gb",
         "most bytes cached, entries' bookkeeping included; 0 = no byte bound (default 0)",
         size_at_least(&config::max_memory, 0)},
        {"max-value-size", "a size of at least 1 byte, such as 4096, 512kb or 1mb",
         "largest value cached; larger ones are served but not cached (default 1mb)",
         size_at_least(&config::max_value_size, 1)},
        {"cache-shards", "a whole number from 0 to 1024 (0 = automatic)",
         "lock shards of the cache, rounded up to a power of two (default 0 = automatic)",
         integer_in(&config::cache_shards, 0, 1024)},
        {"ttl", "a duration from 1ms to 24 days, such as 300s, 1500ms or 5m",
         "longest life of a cached entry (default 300s)",
         [](config& c, const std::string& v) {
             auto d = detail::parse_duration(v);
             if (!d || *d < milliseconds(1) || *d > milliseconds(24LL * 24 * 3600 * 1000)) return false;
             c.ttl = *d;
             return true;
         }},
        {"reaper-interval", "a duration of at least 1ms, such as 100ms or 1s",
         "how often expired entries are removed (default 100ms)",
         duration_at_least(&config::reaper_interval, milliseconds(1))},
    };
}

// How the cache learns of writes, and what a hit may miss.
std::vector<option_row> coherence_options() {
    return {
        {"invalidation", "tracking or ttl",
         "tracking: Redis client tracking invalidates entries written by anyone; ttl: entries live until "
         "their TTL unless written through this proxy (default tracking)",
         [](config& c, const std::string& v) {
             if (v == "tracking")
                 c.invalidation = invalidation_mode::tracking;
             else if (v == "ttl")
                 c.invalidation = invalidation_mode::ttl;
             else
                 return false;
             return true;
         }},
        {"consistency", "bounded or strict",
         "bounded: a hit may miss a direct write acknowledged under a millisecond earlier; strict: every batch of "
         "hits first waits for a PING round trip on the invalidation channel, so none can (default bounded)",
         [](config& c, const std::string& v) {
             if (v == "bounded")
                 c.consistency = consistency_mode::bounded;
             else if (v == "strict")
                 c.consistency = consistency_mode::strict;
             else
                 return false;
             return true;
         }},
    };
}

// io threads and backend connections, and how long to wait for the backend and at shutdown.
std::vector<option_row> io_options() {
    return {
        {"threads", "a whole number from 1 to 256", "io threads (default: the number of cores)",
         integer_in(&config::threads, 1, 256)},
        {"backend-connections", "a whole number from 1 to 64",
         "shared pipelined backend connections per io thread (default 1)",
         integer_in(&config::backend_connections, 1, 64)},
        {"connect-timeout", "a duration of at least 1ms, such as 1s or 500ms",
         "longest wait for a backend connection (default 1s)",
         duration_at_least(&config::connect_timeout, milliseconds(1))},
        {"request-timeout", "a duration of at least 1ms, such as 3s or 500ms",
         "longest wait for a backend reply (default 3s)",
         duration_at_least(&config::request_timeout, milliseconds(1))},
        {"shutdown-timeout", "a duration such as 5s or 0",
         "on SIGINT/SIGTERM, longest wait for in-flight requests (default 5s)",
         duration_at_least(&config::shutdown_timeout, milliseconds(0))},
    };
}

// Limits on clients.
std::vector<option_row> client_limit_options() {
    return {
        {"max-clients", "a whole number from 1 to 1000000", "most connected clients (default 10000)",
         integer_in(&config::max_clients, 1, 1'000'000)},
        {"timeout", "a duration such as 0, 300s or 5m",
         "close a client idle this long (not subscribers or blocked clients); 0 = never (default 0)",
         duration_at_least(&config::idle_timeout, milliseconds(0))},
        {"client-output-buffer-limit", "a size such as 0, 64mb or 1gb",
         "a client whose replies waiting to be written pass this is closed; 0 = no limit, as Redis for normal "
         "clients (default 0)",
         size_at_least(&config::client_output_buffer_limit, 0)},
        {"pubsub-output-buffer-limit", "a size such as 0, 32mb or 1gb",
         "the same for subscribers and MONITOR, who are sent messages whether they read or not (default 32mb)",
         size_at_least(&config::pubsub_output_buffer_limit, 0)},
        {"client-query-buffer-limit", "a size of at least 1kb, such as 1gb or 64mb",
         "bytes of one unfinished command a client may send (default 1gb)",
         size_at_least(&config::client_query_buffer_limit, 1024)},
    };
}

// Passwords, for clients and for the backend.
std::vector<option_row> password_options() {
    return {
        {"requirepass", "a password of 1 to 512 bytes", "clients must AUTH with this password (default: none)",
         [](config& c, const std::string& v) {
             if (v.empty() || v.size() > 512) return false;
             c.requirepass = v;
             return true;
         }},
        {"requirepass-file", "a readable file holding the password on its first line",
         "like --requirepass, read from a file (kept out of ps and the environment)",
         [](config& c, const std::string& v) {
             auto secret = read_secret_file(v);
             if (!secret || secret->empty() || secret->size() > 512) return false;
             c.requirepass_file = v;
             c.requirepass = *secret;
             return true;
         }},
        {"backend-password-file", "a readable file holding the backend's password on its first line",
         "the backend's password, instead of the one in --backend",
         [](config& c, const std::string& v) {
             auto secret = read_secret_file(v);
             if (!secret || secret->empty()) return false;
             c.backend_password_file = v;
             return true;
         }},
    };
}

// Metrics and logging.
std::vector<option_row> operations_options() {
    return {
        {"metrics-port", "a port number from 0 to 65535 (0 = off)",
         "serve /metrics, /healthz and /readyz over HTTP on this port, at the --bind address (default 0 = off)",
         integer_in(&config::metrics_port, 0, 65535)},
        {"log-level", "one of trace, debug, info, warn, error, critical, off", "log level (default info)",
         [](config& c, const std::string& v) {
             static const char* levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
             if (std::find(std::begin(levels), std::end(levels), v) == std::end(levels)) return false;
             c.log_level = v;
             return true;
         }},
        {"log-format", "text or json", "log line format (default text)",
         [](config& c, const std::string& v) {
             if (v == "text")
                 c.log_fmt = log_format::text;
             else if (v == "json")
                 c.log_fmt = log_format::json;
             else
                 return false;
             return true;
         }},
    };
}

// Every option, in the order of --help; load_config applies them, and reports their errors, in this order.
const std::vector<option_row>& option_table() {
    static const std::vector<option_row> rows = [] {
        std::vector<option_row> all;
        for (auto* group : {listening_options, cache_options, coherence_options, io_options, client_limit_options,
                            password_options, operations_options}) {
            std::vector<option_row> part = group();
            std::move(part.begin(), part.end(), std::back_inserter(all));
        }
        return all;
    }();
    return rows;
}

po::options_description describe() {
    po::options_description desc("Options");
    desc.add_options()("help,h", "print this help and exit")("version", "print the version and exit")(
        "config", po::value<std::string>()->value_name("FILE"),
        "read `key = value` lines from FILE (lowest precedence after the defaults)");
    for (const auto& row : option_table()) {
        std::string help = std::string(row.help) + "; " + row.form;
        desc.add(boost::make_shared<po::option_description>(
            row.name, po::value<std::string>()->value_name("VALUE"), help.c_str()));
    }
    return desc;
}

std::string env_to_option(std::string_view name) {
    std::string out(name);
    for (char& c : out) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

config_outcome usage_error(std::string text) {
    config_outcome out;
    out.what = config_outcome::action::exit_usage_error;
    out.message = "respcache: " + std::move(text);
    return out;
}

// The first word of `args` that is neither an option nor an option's value.
std::string first_stray_word(const std::vector<std::string>& args) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i].starts_with("-")) {
            // An option given as "--name value" takes the next word.
            if (args[i].find('=') == std::string::npos && i + 1 < args.size() &&
                args[i] != "--help" && args[i] != "-h" && args[i] != "--version")
                ++i;
            continue;
        }
        return args[i];
    }
    return std::string();
}

// Each helper of load_config below returns the outcome to return at once, or nullopt to go on.

std::optional<config_outcome> store_command_line(const std::vector<std::string>& args,
                                                 const po::options_description& desc, po::variables_map& vm) {
    try {
        // No positional arguments: a stray word (a forgotten --port) is an error, not silently dropped.
        po::store(po::command_line_parser(args).options(desc).positional(po::positional_options_description{}).run(), vm);
    } catch (const po::too_many_positional_options_error&) {
        const std::string stray = first_stray_word(args);
        return usage_error("unexpected argument '" + stray + "': options are written --name value (see --help)");
    } catch (const po::error& e) {
        return usage_error(std::string(e.what()) + " (see --help)");
    }
    return std::nullopt;
}

std::optional<config_outcome> help_or_version(const po::variables_map& vm, const po::options_description& desc) {
    if (vm.count("help")) {
        std::ostringstream text;
        text << "Usage: respcache [options]\n\nA caching proxy for Redis: serves GET from an in-process LRU cache "
                "and forwards everything else.\n"
             << "Every option may also be set as RESPCACHE_<NAME> in the environment (e.g. "
                "RESPCACHE_MAX_MEMORY=64mb) or as `name = value` in the --config file;\nthe command line wins "
                "over the environment, which wins over the file.\n\n"
             << desc;
        config_outcome out;
        out.what = config_outcome::action::exit_success;
        out.message = text.str();
        return out;
    }
    if (vm.count("version")) {
        config_outcome out;
        out.what = config_outcome::action::exit_success;
        out.message = std::string("respcache ") + RESPCACHE_VERSION + "\n";
        return out;
    }
    return std::nullopt;
}

std::optional<config_outcome> store_environment(const std::vector<std::string>& environment,
                                                const po::options_description& desc, po::variables_map& vm) {
    std::vector<std::string> env_args;
    for (const auto& entry : environment) {
        constexpr std::string_view prefix = "RESPCACHE_";
        auto eq = entry.find('=');
        if (eq == std::string::npos || entry.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string name = entry.substr(prefix.size(), eq - prefix.size());
        const std::string option = env_to_option(name);
        if (desc.find_nothrow(option, false) == nullptr || option == "help" || option == "version")
            return usage_error("unknown environment variable RESPCACHE_" + name);
        env_args.push_back("--" + option + "=" + entry.substr(eq + 1));
    }
    try {
        po::store(po::command_line_parser(env_args).options(desc).run(), vm);
    } catch (const po::error& e) {
        return usage_error(std::string("in the environment: ") + e.what());
    }
    return std::nullopt;
}

// With --config, records the file's name in `cfg` and stores its options.
std::optional<config_outcome> store_config_file(const po::options_description& desc, po::variables_map& vm,
                                                config& cfg) {
    if (!vm.count("config")) return std::nullopt;
    cfg.config_file = vm["config"].as<std::string>();
    std::error_code fs_error;
    if (!std::filesystem::is_regular_file(cfg.config_file, fs_error))
        return usage_error("--config: '" + cfg.config_file + "' is not a readable file");
    std::ifstream file(cfg.config_file);
    if (!file) return usage_error("--config: cannot read '" + cfg.config_file + "': " + std::strerror(errno));
    try {
        po::store(po::parse_config_file(file, desc, false), vm);
    } catch (const po::error& e) {
        return usage_error("in " + cfg.config_file + ": " + e.what());
    }
    return std::nullopt;
}

// Applies every option given to `cfg`, in the order of option_table.
std::optional<config_outcome> apply_options(const po::variables_map& vm, config& cfg) {
    for (const auto& row : option_table()) {
        if (!vm.count(row.name)) continue;
        const std::string& value = vm[row.name].as<std::string>();
        if (!row.apply(cfg, value)) {
            // Secrets are never echoed back.
            const bool secret = std::string_view(row.name) == "requirepass";
            return usage_error(std::string("--") + row.name + ": invalid value" +
                               (secret ? std::string() : " '" + value + "'") + " (expected " + row.form + ")");
        }
    }
    return std::nullopt;
}

}  // namespace

config_outcome load_config(const std::vector<std::string>& args, const std::vector<std::string>& environment) {
    const po::options_description desc = describe();
    po::variables_map vm;
    if (auto early = store_command_line(args, desc, vm)) return std::move(*early);
    if (auto early = help_or_version(vm, desc)) return std::move(*early);
    if (auto early = store_environment(environment, desc, vm)) return std::move(*early);

    config cfg;
    cfg.threads = std::max(1u, std::thread::hardware_concurrency());
    if (auto early = store_config_file(desc, vm, cfg)) return std::move(*early);
    if (auto early = apply_options(vm, cfg)) return std::move(*early);
    if (vm.count("requirepass") && vm.count("requirepass-file"))
        return usage_error("--requirepass and --requirepass-file: give one of them, not both");
    if (cfg.consistency == consistency_mode::strict && cfg.invalidation != invalidation_mode::tracking)
        return usage_error("--consistency strict needs --invalidation tracking (with ttl, direct writes are seen "
                           "only when entries expire)");
    if (!cfg.backend_password_file.empty()) cfg.backend.password = *read_secret_file(cfg.backend_password_file);
    config_outcome out;
    out.cfg = std::move(cfg);
    return out;
}

}  // namespace respcache
