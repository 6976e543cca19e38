#include "respcache/config/config.hpp"

#include "options.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/make_shared.hpp>
#include <boost/program_options.hpp>

extern char** environ;

namespace respcache {

namespace po = boost::program_options;
using options::option_row;
using options::option_table;
using options::read_secret_file;

// One io thread per two cores: a caching proxy shares its machine with its clients and often with Redis,
// and on two cores a second io thread only adds hand-offs (GET hits, 50 clients: --threads 1 gave 1.11x
// Redis's throughput and 0.79x its p99, --threads 2 0.99x and 1.09x; see README, Benchmark results).
unsigned default_threads() { return std::max(1u, std::thread::hardware_concurrency() / 2); }

std::vector<std::string> fixed_options_changed(const config& a, const config& b) {
    std::vector<std::string> out;
    auto check = [&](const char* name, bool same) {
        if (!same) out.emplace_back(name);
    };
    check("bind", a.bind == b.bind);
    check("port", a.port == b.port);
    check("tls-port", a.tls_port == b.tls_port);
    check("backend", a.backend.host == b.backend.host && a.backend.port == b.backend.port && a.backend.user == b.backend.user &&
                         a.backend.password == b.backend.password && a.backend.db == b.backend.db &&
                         a.backend.tls == b.backend.tls);
    check("threads", a.threads == b.threads);
    check("cache-shards", a.cache_shards == b.cache_shards);
    check("invalidation", a.invalidation == b.invalidation);
    check("consistency", a.consistency == b.consistency);
    check("tracking-mode", a.tracking == b.tracking);
    check("backend-connections", a.backend_connections == b.backend_connections);
    check("metrics-port", a.metrics_port == b.metrics_port);
    check("log-format", a.log_fmt == b.log_fmt);
    check("client-query-buffer-limit", a.client_query_buffer_limit == b.client_query_buffer_limit);
    check("warm-file", a.warm_file == b.warm_file);
    check("warm-keys", a.warm_keys == b.warm_keys);
    check("warm-interval", a.warm_interval == b.warm_interval);
    return out;
}

std::vector<std::string> process_environment() {
    std::vector<std::string> out;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) out.emplace_back(*e);
    return out;
}

namespace {

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

// Boost's error_with_option_name::what() replaces each "%name%" placeholder of its message until none is
// left: forever when the text put in its place (an unknown option as typed, a config file's line) holds
// that placeholder itself, e.g. `respcache -%original_token%`. That text is shown with its '%' as '?'.
struct placeholder_guard : po::error_with_option_name {
    static std::string what_of(const po::error& e) {
        const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
        if (named == nullptr) return e.what();
        po::error_with_option_name copy(*named);
        for (auto& entry : copy.*(&placeholder_guard::m_substitutions))
            std::replace(entry.second.begin(), entry.second.end(), '%', '?');
        return copy.what();
    }
};

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
        return usage_error(placeholder_guard::what_of(e) + " (see --help)");
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
        if (option.empty() || desc.find_nothrow(option, false) == nullptr || option == "help" || option == "version")
            return usage_error("unknown environment variable RESPCACHE_" + name);
        env_args.push_back("--" + option + "=" + entry.substr(eq + 1));
    }
    try {
        po::store(po::command_line_parser(env_args).options(desc).run(), vm);
    } catch (const po::error& e) {
        return usage_error("in the environment: " + placeholder_guard::what_of(e));
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
        return usage_error("in " + cfg.config_file + ": " + placeholder_guard::what_of(e));
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

// The TLS options that only make sense together (the files themselves are read at start-up).
std::optional<config_outcome> check_tls(const config& cfg) {
    if (cfg.tls_port != 0) {
        if (cfg.tls_cert_file.empty() || cfg.tls_key_file.empty())
            return usage_error("--tls-port needs --tls-cert-file and --tls-key-file");
        if (cfg.tls_auth_clients != net::client_auth::no && cfg.tls_ca_cert_file.empty())
            return usage_error("--tls-auth-clients yes or optional needs --tls-ca-cert-file (the CAs of client "
                               "certificates), or give --tls-auth-clients no");
        if (cfg.tls_port == cfg.port) return usage_error("--tls-port and --port must differ");
    }
    if (cfg.backend_tls_cert_file.empty() != cfg.backend_tls_key_file.empty())
        return usage_error("--backend-tls-cert-file and --backend-tls-key-file: give both or neither");
    const bool backend_files = !cfg.backend_tls_ca_cert_file.empty() || !cfg.backend_tls_cert_file.empty();
    if (backend_files && !cfg.backend.tls)
        return usage_error("--backend-tls-* options need a rediss:// --backend");
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
    cfg.threads = default_threads();
    if (auto early = store_config_file(desc, vm, cfg)) return std::move(*early);
    if (auto early = apply_options(vm, cfg)) return std::move(*early);
    if (vm.count("requirepass") && vm.count("requirepass-file"))
        return usage_error("--requirepass and --requirepass-file: give one of them, not both");
    if (cfg.consistency == consistency_mode::strict && cfg.invalidation != invalidation_mode::tracking)
        return usage_error("--consistency strict needs --invalidation tracking (with ttl, direct writes are seen "
                           "only when entries expire)");
    if (cfg.tracking == tracking_mode::bcast && cfg.invalidation != invalidation_mode::tracking)
        return usage_error("--tracking-mode bcast needs --invalidation tracking (with ttl, nothing is tracked)");
    if (auto early = check_tls(cfg)) return std::move(*early);
    if (!cfg.backend_password_file.empty()) cfg.backend.password = *read_secret_file(cfg.backend_password_file);
    config_outcome out;
    out.cfg = std::move(cfg);
    return out;
}

}  // namespace respcache
