#include "options.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>

namespace respcache::options {

std::optional<std::string> read_secret_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    return line;
}

namespace {

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

// A value that is one of a few words, each standing for one value of the field's enumeration.
template <typename E>
std::function<bool(config&, const std::string&)> one_of(E config::*field,
                                                         std::vector<std::pair<std::string, E>> words) {
    return [field, words = std::move(words)](config& c, const std::string& v) {
        for (const auto& [word, value] : words)
            if (v == word) {
                c.*field = value;
                return true;
            }
        return false;
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
        {"port", "a port number from 0 to 65535",
         "plain TCP port to listen on; 0: none when --tls-port is given, otherwise a free one (default 8001)",
         integer_in(&config::port, 0, 65535)},
        {"backend", "redis://[user:password@]host:port[/db], rediss:// for TLS, or redis+cluster://[user:password@]host:port[,host:port...]",
         "the backing Redis, or the seed nodes of a Redis Cluster (default redis://127.0.0.1:6379)",
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

// Which reads are cached, and how entries are kept warm.
std::vector<option_row> read_options() {
    return {
        {"cache-commands", "default, or a list of command names such as get,hget or default,-hgetall,+object|encoding",
         "the reads served through the cache: default is every read-only, deterministic command of one key "
         "that the backend's command table describes (plus MGET); names add to it, -names take from it "
         "(default: default)",
         [](config& c, const std::string& v) {
             std::string error;
             auto parsed = command::cache_commands::parse(v, error);
             if (!parsed) return false;
             c.cache_commands = std::move(*parsed);
             return true;
         }},
        {"negative-caching", "auto, yes or no",
         "cache reads of missing keys (Redis tracks them and announces their creation); auto: yes with "
         "--invalidation tracking, no with ttl (default auto)",
         one_of(&config::negative_caching, {{"auto", config::negative::automatic},
                                            {"yes", config::negative::yes},
                                            {"no", config::negative::no}})},
        {"eviction-policy", "lru or tinylfu",
         "lru: a new entry evicts the least recently used one; tinylfu: only if its key is asked for more often "
         "than that one's, by a frequency sketch of recent reads (default lru)",
         one_of(&config::eviction_policy, {{"lru", config::eviction::lru}, {"tinylfu", config::eviction::tinylfu}})},
        {"refresh-ahead", "0 (off) or a fraction from 0.5 to 0.99, such as 0.8",
         "a hit on an entry past this fraction of its life has it read again in the background, so that a hot "
         "key never misses at its TTL (default 0 = off)",
         [](config& c, const std::string& v) {
             double f = 0;
             auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), f);
             if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return false;
             if (f != 0 && (f < 0.5 || f > 0.99)) return false;
             c.refresh_ahead = f;
             return true;
         }},
        {"warm-file", "a path whose directory is writable",
         "the keys of the hottest entries are saved there (not their values) at shutdown and every "
         "--warm-interval, and read again from Redis at start-up before respcache reports ready (default: none)",
         [](config& c, const std::string& v) {
             if (v.empty()) return false;
             c.warm_file = v;
             return true;
         }},
        {"warm-keys", "a whole number from 1 to 10000000", "most entries saved in --warm-file (default 10000)",
         integer_in(&config::warm_keys, 1, 10'000'000)},
        {"warm-interval", "a duration of at least 1s, such as 300s or 5m",
         "how often --warm-file is saved (default 5m)", duration_at_least(&config::warm_interval, milliseconds(1000))},
    };
}

// How the cache learns of writes, and what a hit may miss.
std::vector<option_row> coherence_options() {
    return {
        {"invalidation", "tracking or ttl",
         "tracking: Redis client tracking invalidates entries written by anyone; ttl: entries live until "
         "their TTL unless written through this proxy (default tracking)",
         one_of(&config::invalidation, {{"tracking", invalidation_mode::tracking}, {"ttl", invalidation_mode::ttl}})},
        {"consistency", "bounded or strict",
         "bounded: a hit may miss a direct write acknowledged under a millisecond earlier; strict: every batch of "
         "hits first waits for a PING round trip on the invalidation channel, so none can (default bounded)",
         one_of(&config::consistency, {{"bounded", consistency_mode::bounded}, {"strict", consistency_mode::strict}})},
        {"tracking-mode", "optin or bcast",
         "optin: Redis remembers every key a fill read and announces its next write; bcast: Redis remembers "
         "nothing and announces every write of every key, so a fill costs it less and each write a message "
         "(default optin)",
         one_of(&config::tracking, {{"optin", tracking_mode::optin}, {"bcast", tracking_mode::bcast}})},
    };
}

// io threads and backend connections, and how long to wait for the backend and at shutdown.
std::vector<option_row> io_options() {
    return {
        {"threads", "a whole number from 1 to 256", "io threads (default: half the number of cores, at least 1)",
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
        {"stale-if-error", "a duration such as 0, 30s or 5m",
         "with --invalidation tracking: when the backend becomes unreachable, hits are served from the cache "
         "for at most this long, though no invalidation can reach them; 0 = never (default 0)",
         duration_at_least(&config::stale_if_error, milliseconds(0))},
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

// A non-empty path into `field`.
std::function<bool(config&, const std::string&)> path_into(std::string config::*field) {
    return [=](config& c, const std::string& v) {
        if (v.empty()) return false;
        c.*field = v;
        return true;
    };
}

// TLS for clients (redis.conf's names) and for the backend. The files are read again on SIGHUP.
std::vector<option_row> tls_options() {
    return {
        {"tls-port", "a port number from 0 to 65535 (0 = off)", "TLS port to listen on (default 0 = off)",
         integer_in(&config::tls_port, 0, 65535)},
        {"tls-cert-file", "a PEM file path", "the certificate (chain) of the TLS port", path_into(&config::tls_cert_file)},
        {"tls-key-file", "a PEM file path", "its private key", path_into(&config::tls_key_file)},
        {"tls-ca-cert-file", "a PEM file path", "the CAs whose client certificates the TLS port accepts",
         path_into(&config::tls_ca_cert_file)},
        {"tls-auth-clients", "yes, no or optional",
         "yes: TLS clients must show a certificate the CA signed; optional: one they show must be valid; "
         "no: none is asked for (default yes)",
         one_of(&config::tls_auth_clients, {{"yes", net::client_auth::yes},
                                            {"optional", net::client_auth::optional},
                                            {"no", net::client_auth::no}})},
        {"backend-tls-ca-cert-file", "a PEM file path",
         "the CAs that sign a rediss:// backend's certificate, whose name or IP must match --backend "
         "(default: the system's CAs)",
         path_into(&config::backend_tls_ca_cert_file)},
        {"backend-tls-cert-file", "a PEM file path", "a client certificate for a rediss:// backend (default: none)",
         path_into(&config::backend_tls_cert_file)},
        {"backend-tls-key-file", "a PEM file path", "its private key", path_into(&config::backend_tls_key_file)},
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
         one_of(&config::log_fmt, {{"text", log_format::text}, {"json", log_format::json}})},
    };
}

}  // namespace

const std::vector<option_row>& option_table() {
    static const std::vector<option_row> rows = [] {
        std::vector<option_row> all;
        for (auto* group : {listening_options, cache_options, read_options, coherence_options, io_options, client_limit_options,
                            password_options, tls_options, operations_options}) {
            std::vector<option_row> part = group();
            std::move(part.begin(), part.end(), std::back_inserter(all));
        }
        return all;
    }();
    return rows;
}

}  // namespace respcache::options
