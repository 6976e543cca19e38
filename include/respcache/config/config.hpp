#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/backend/address.hpp"
#include "respcache/coherence/tracker.hpp"
#include "respcache/command/cache_plan.hpp"
#include "respcache/net/tls_context.hpp"
#include "respcache/util/log.hpp"

namespace respcache {

using std::chrono::milliseconds;

using backend_address = backend::address;

using invalidation_mode = coherence::invalidation_mode;
using consistency_mode = coherence::consistency_mode;
using tracking_mode = coherence::tracking_mode;

// The effective configuration. Every field has the documented default; see README "Options".
struct config {
    // Whether reads of missing keys are cached (--negative-caching): with auto, when tracking is on.
    bool caches_missing_keys() const noexcept {
        return negative_caching == negative::yes ||
               (negative_caching == negative::automatic && invalidation == invalidation_mode::tracking);
    }

    std::string bind = "127.0.0.1";
    // Plain TCP. 0: none when tls_port is set (as in Redis), otherwise a free port (logged at start-up).
    std::uint16_t port = 8001;
    std::uint16_t tls_port = 0;  // 0: no TLS port
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_ca_cert_file;  // the CAs of client certificates
    net::client_auth tls_auth_clients = net::client_auth::yes;
    std::string backend_tls_ca_cert_file;  // empty: the system's CAs (with a rediss:// backend)
    std::string backend_tls_cert_file;     // empty: no client certificate
    std::string backend_tls_key_file;
    backend_address backend;
    std::size_t capacity = 1024;
    std::size_t max_memory = 0;
    std::size_t max_value_size = 1024 * 1024;
    std::size_t cache_shards = 0;  // 0: automatic
    milliseconds ttl{300'000};
    milliseconds reaper_interval{100};
    command::cache_commands cache_commands;            // --cache-commands (default: "default")
    enum class negative { automatic, yes, no } negative_caching = negative::automatic;  // auto: yes with tracking
    enum class eviction { lru, tinylfu } eviction_policy = eviction::lru;  // --eviction-policy
    milliseconds stale_if_error{0};                    // --stale-if-error: 0 = off
    double refresh_ahead = 0;                          // 0: off; else the fraction of an entry's life
    std::string warm_file;                             // empty: no warm start
    std::size_t warm_keys = 10000;
    milliseconds warm_interval{300'000};
    invalidation_mode invalidation = invalidation_mode::tracking;
    consistency_mode consistency = consistency_mode::bounded;  // strict: every hit waits for a read barrier
    tracking_mode tracking = tracking_mode::optin;             // --tracking-mode
    unsigned threads = 1;
    std::size_t backend_connections = 1;  // shared pipelined connections per io thread
    milliseconds connect_timeout{1000};
    milliseconds request_timeout{3000};
    milliseconds shutdown_timeout{5000};
    std::size_t max_clients = 10000;
    milliseconds idle_timeout{0};                     // --timeout: close idle clients; 0 = never
    std::size_t client_output_buffer_limit = 0;                    // normal clients; 0 = none (as Redis)
    std::size_t pubsub_output_buffer_limit = 32ull * 1024 * 1024;  // subscribers, MONITOR; 0 = none
    std::size_t client_query_buffer_limit = 1024ull * 1024 * 1024;
    std::string requirepass;                          // empty: no AUTH required
    std::string requirepass_file;
    std::string backend_password_file;
    std::uint16_t metrics_port = 0;                   // 0: no HTTP endpoint
    std::string log_level = "info";
    log_format log_fmt = log_format::text;
    std::string config_file;  // empty: none
};

// What the command line asked for.
struct config_outcome {
    enum class action { run, exit_success, exit_usage_error } what = action::run;
    config cfg;
    // For exit_success: the text to print on stdout (help or version). For exit_usage_error: the one-line
    // error naming the option and the accepted form.
    std::string message;
};

// Builds the configuration from, in decreasing precedence: the command line, `RESPCACHE_*` variables
// of `environment` (each "NAME=value"; RESPCACHE_MAX_MEMORY sets --max-memory), the file named by
// --config (or RESPCACHE_CONFIG), whose lines are `key = value` with `#` comments, and the defaults.
// Never throws; never exits.
config_outcome load_config(const std::vector<std::string>& args, const std::vector<std::string>& environment);

// The names of the options whose value differs between `a` and `b` and that a running process cannot
// change (SIGHUP applies the others).
std::vector<std::string> fixed_options_changed(const config& a, const config& b);

// --threads when not given: half the cores, at least one.
unsigned default_threads();

// The process's environment as load_config expects it.
std::vector<std::string> process_environment();

// Value parsers shared with the tests; each returns nullopt when the text is not of the accepted form.
namespace detail {
std::optional<milliseconds> parse_duration(std::string_view text);  // 250ms, 30s, 5m, 2h; bare = seconds
std::optional<std::size_t> parse_size(std::string_view text);      // 1024, 64kb, 512mb, 1gb (k = 1000, kb = 1024)
std::optional<backend_address> parse_backend_url(std::string_view text);
}  // namespace detail

}  // namespace respcache
