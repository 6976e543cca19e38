#include "respcache/server/report.hpp"

#include <chrono>
#include <cstdio>
#include <vector>

#include "respcache/command/cache_plan.hpp"

namespace respcache::server {

namespace {

struct totals {
    std::uint64_t commands = 0, hits = 0, misses = 0, shared_misses = 0, refreshes = 0, stale_hits = 0, forwarded = 0, backend_errors = 0, connections = 0,
                  rejected = 0, protocol_errors = 0, output_limit = 0, idle = 0, auth_failures = 0, pinned = 0,
                  in_flight = 0;
};

totals sum(services& s) {
    totals t;
    for (const thread_stats* st : s.all_stats()) {
        t.commands += st->commands.get();
        t.hits += st->hits.get();
        t.misses += st->misses.get();
        t.shared_misses += st->shared_misses.get();
        t.refreshes += st->refreshes.get();
        t.stale_hits += st->stale_hits.get();
        t.forwarded += st->forwarded.get();
        t.backend_errors += st->backend_errors.get();
        t.connections += st->connections.get();
        t.rejected += st->rejected_connections.get();
        t.protocol_errors += st->protocol_errors.get();
        t.output_limit += st->output_limit_disconnects.get();
        t.idle += st->idle_disconnects.get();
        t.auth_failures += st->auth_failures.get();
        t.pinned += st->pinned.get();
        t.in_flight += st->in_flight.get();
    }
    return t;
}

// One cached command's figures summed over the io threads.
struct command_totals {
    std::string name;
    std::uint64_t hits = 0, misses = 0, partial = 0;
};

// The cached commands that have been read at least once, by statistics slot.
std::vector<command_totals> per_command(services& s) {
    std::vector<command_totals> out;
    for (std::size_t i = 0; i < kCachedCommandSlots; ++i) {
        command_totals c;
        for (const thread_stats* st : s.all_stats()) {
            c.hits += st->cached_commands[i].hits.get();
            c.misses += st->cached_commands[i].misses.get();
            c.partial += st->cached_commands[i].partial.get();
        }
        if (c.hits + c.misses + c.partial == 0) continue;
        c.name = command::stat_name(i);
        out.push_back(std::move(c));
    }
    return out;
}

// The hottest keys of every io thread together.
std::vector<hot_keys::key_count> hottest(services& s) {
    std::vector<const hot_keys*> all;
    for (const thread_stats* st : s.all_stats()) all.push_back(&st->hot);
    return hot_keys::top(all, 10);
}

// A key name as INFO shows it: printable ASCII as is, but ',', '=', a backslash and any other byte as \xHH.
std::string printable(std::string_view name) {
    std::string out;
    for (unsigned char c : name) {
        if (c > 32 && c < 127 && c != ',' && c != '=' && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            char buf[5];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

std::string backend_state(services& s) {
    const int total = s.health().connections.load();
    const int up = s.health().up.load();
    if (total > 0 && up == total) return "up";
    if (up == 0) return "down";
    return "degraded";
}

std::string channel_state(services& s) {
    if (s.startup_config().invalidation == invalidation_mode::ttl) return "off";
    if (s.tracking().unsupported.load()) return "unsupported";
    return s.tracking().live.load() ? "live" : "down";
}

std::string ratio(std::uint64_t hits, std::uint64_t misses) {
    char buf[32];
    const double r = hits + misses == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(hits + misses);
    std::snprintf(buf, sizeof buf, "%.4f", r);
    return buf;
}

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
    return out;
}

long long uptime_seconds(services& s) {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - s.started()).count();
}

// One metric with its HELP and TYPE lines.
void append_metric(std::string& out, const char* name, const char* type, const char* help, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", value);
    out += "# HELP respcache_";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE respcache_";
    out += name;
    out += ' ';
    out += type;
    out += "\nrespcache_";
    out += name;
    out += ' ';
    out += buf;
    out += '\n';
}

// Every counter and gauge, in the order of the exposition.
void append_metrics(std::string& out, services& s, const totals& t, const cache::counters& c) {
    auto metric = [&out](const char* name, const char* type, const char* help, double value) {
        append_metric(out, name, type, help, value);
    };
    auto d = [](std::uint64_t v) { return static_cast<double>(v); };
    metric("uptime_seconds", "gauge", "Seconds since start.", static_cast<double>(uptime_seconds(s)));
    metric("connected_clients", "gauge", "Clients connected now.", d(s.connected_clients().load()));
    metric("connections_received_total", "counter", "Clients accepted.", d(t.connections));
    metric("rejected_connections_total", "counter", "Clients refused at --max-clients.", d(t.rejected));
    metric("commands_total", "counter", "Commands processed.", d(t.commands));
    metric("cache_hits_total", "counter", "Cache lookups that hit (each key of an MGET counts).", d(t.hits));
    metric("cache_misses_total", "counter", "Cache lookups that missed (each key of an MGET counts).", d(t.misses));
    metric("cache_shared_misses_total", "counter", "Misses that waited for another client's request of the entry.",
           d(t.shared_misses));
    metric("cache_refreshes_total", "counter", "Entries read again ahead of their TTL (--refresh-ahead).", d(t.refreshes));
    metric("cache_stale_hits_total", "counter", "Hits served while the backend was unreachable (--stale-if-error).",
           d(t.stale_hits));
    metric("cache_evictions_total", "counter", "Entries evicted by capacity or max-memory.", d(c.evictions));
    metric("cache_expirations_total", "counter", "Entries expired.", d(c.expirations));
    metric("cache_invalidations_total", "counter", "Entries removed by writes or invalidations.", d(c.invalidations));
    metric("cache_fills_dropped_total", "counter", "Fills refused because their key changed meanwhile.", d(c.fills_dropped));
    metric("cache_fills_not_admitted_total", "counter",
           "Fills refused by --eviction-policy tinylfu (the entry they would evict is read more often).",
           d(c.fills_not_admitted));
    metric("cache_keys", "gauge", "Entries cached now.", d(c.entries));
    metric("cache_bytes", "gauge", "Bytes charged by cached entries now.", d(c.bytes));
    metric("forwarded_commands_total", "counter", "Commands other than GET sent to the backend.", d(t.forwarded));
    metric("backend_inflight_requests", "gauge", "Backend requests awaiting replies.", d(t.in_flight));
    metric("backend_up", "gauge", "1 when every shared backend connection is up.", backend_state(s) == "up" ? 1 : 0);
    metric("backend_reconnects_total", "counter", "Backend connections lost or failed.", d(s.health().reconnects.load()));
    if (s.startup_config().backend.cluster()) {
        const cluster::counters& cc = s.cluster_counters();
        metric("cluster_masters", "gauge", "Masters in the last Redis Cluster slot map.", d(cc.masters.load()));
        metric("cluster_slot_map_refreshes_total", "counter", "CLUSTER SLOTS answers learned.", d(cc.refreshes.load()));
        metric("cluster_moved_redirections_total", "counter", "MOVED redirections followed.", d(cc.moved.load()));
        metric("cluster_ask_redirections_total", "counter", "ASK redirections followed.", d(cc.ask.load()));
    }
    metric("backend_errors_total", "counter", "Requests answered 'backend unavailable'.", d(t.backend_errors));
    metric("pinned_connections", "gauge", "Clients holding a dedicated backend connection.", d(t.pinned));
    metric("invalidation_channel_up", "gauge", "1 when the client-tracking invalidation channel is live.",
           channel_state(s) == "live" ? 1 : 0);
    metric("invalidation_messages_total", "counter", "Invalidation messages received.", d(s.tracking().invalidations.load()));
    metric("invalidation_channel_losses_total", "counter", "Times the invalidation channel was lost.",
           d(s.tracking().losses.load()));
    metric("read_barriers_total", "counter", "Read barriers passed (--consistency strict).", d(s.tracking().barriers.load()));
    metric("fills_pre_tracked_total", "counter", "Fills sent without CLIENT CACHING yes: Redis tracked the key already.",
           d(s.tracking().fills_pre_tracked.load()));
    metric("cache_tracked_names", "gauge", "Names remembered as tracked by Redis after their entries went.",
           d(c.tracked_names));
    metric("protocol_errors_total", "counter", "Clients closed for malformed input.", d(t.protocol_errors));
    metric("output_buffer_disconnects_total", "counter", "Clients closed at --client-output-buffer-limit.", d(t.output_limit));
    metric("idle_disconnects_total", "counter", "Clients closed by --timeout.", d(t.idle));
    metric("auth_failures_total", "counter", "AUTH attempts refused.", d(t.auth_failures));
}

// The buckets, sum and count of the GET latency histogram for `result` ("hit" or "miss"), summed over
// the io threads.
void append_latency_histogram(std::string& out, services& s, const char* result) {
    const bool hit = result[0] == 'h';
    std::uint64_t cumulative = 0;
    std::uint64_t sum_ns = 0;
    std::array<std::uint64_t, latency_histogram::bounds_us.size() + 1> buckets{};
    for (const thread_stats* st : s.all_stats()) {
        const latency_histogram& h = hit ? st->hit_latency : st->miss_latency;
        for (std::size_t i = 0; i < buckets.size(); ++i) buckets[i] += h.bucket(i);
        sum_ns += h.sum_ns();
    }
    char buf[160];
    for (std::size_t i = 0; i < latency_histogram::bounds_us.size(); ++i) {
        cumulative += buckets[i];
        std::snprintf(buf, sizeof buf, "respcache_request_duration_seconds_bucket{result=\"%s\",le=\"%g\"} %llu\n",
                      result, static_cast<double>(latency_histogram::bounds_us[i]) / 1e6,
                      static_cast<unsigned long long>(cumulative));
        out += buf;
    }
    cumulative += buckets.back();
    std::snprintf(buf, sizeof buf, "respcache_request_duration_seconds_bucket{result=\"%s\",le=\"+Inf\"} %llu\n",
                  result, static_cast<unsigned long long>(cumulative));
    out += buf;
    std::snprintf(buf, sizeof buf, "respcache_request_duration_seconds_sum{result=\"%s\"} %.9f\n", result,
                  static_cast<double>(sum_ns) / 1e9);
    out += buf;
    std::snprintf(buf, sizeof buf, "respcache_request_duration_seconds_count{result=\"%s\"} %llu\n", result,
                  static_cast<unsigned long long>(cumulative));
    out += buf;
}

// Per cached command: requests answered from the cache, sent to Redis, and (MGET) answered in part.
void append_command_metrics(std::string& out, services& s) {
    const auto rows = per_command(s);
    const char* kinds[] = {"hits", "misses", "partial"};
    const char* helps[] = {"answered from the cache", "sent to the backend", "answered partly from the cache (MGET)"};
    for (int k = 0; k < 3; ++k) {
        out += std::string("# HELP respcache_cached_command_") + kinds[k] + "_total Requests of a cached command " +
               helps[k] + ".\n# TYPE respcache_cached_command_" + kinds[k] + "_total counter\n";
        for (const auto& r : rows) {
            const std::uint64_t v = k == 0 ? r.hits : k == 1 ? r.misses : r.partial;
            out += std::string("respcache_cached_command_") + kinds[k] + "_total{command=\"" + r.name + "\"} " +
                   std::to_string(v) + "\n";
        }
    }
}

}  // namespace

std::string proxy_info_section(services& s) {
    const totals t = sum(s);
    const cache::counters c = s.cache().stats();
    const cache::limits lim = s.cache().current_limits();
    std::string last_error;
    {
        std::lock_guard guard(s.health().mu);
        last_error = s.health().last_error;
    }
    for (char& ch : last_error)
        if (ch == '\r' || ch == '\n') ch = ' ';
    std::string out = "# Proxy\r\n";
    auto line = [&](const char* k, const std::string& v) {
        out += k;
        out += ':';
        out += v;
        out += "\r\n";
    };
    auto num = [&](const char* k, std::uint64_t v) { line(k, std::to_string(v)); };
    line("proxy_version", RESPCACHE_VERSION);
    num("uptime_in_seconds", static_cast<std::uint64_t>(uptime_seconds(s)));
    num("io_threads", s.startup_config().threads);
    num("connected_clients", s.connected_clients().load());
    num("total_connections_received", t.connections);
    num("rejected_connections", t.rejected);
    num("total_commands_processed", t.commands);
    num("cache_hits", t.hits);
    num("cache_misses", t.misses);
    line("cache_hit_ratio", ratio(t.hits, t.misses));
    num("cache_shared_misses", t.shared_misses);
    num("cache_refreshes", t.refreshes);
    num("cache_stale_hits", t.stale_hits);
    num("cache_evictions", c.evictions);
    num("cache_expirations", c.expirations);
    num("cache_invalidations", c.invalidations);
    num("cache_fills_dropped", c.fills_dropped);
    num("cache_fills_not_admitted", c.fills_not_admitted);
    num("cached_keys", c.entries);
    num("cached_bytes", c.bytes);
    num("cache_capacity", lim.capacity);
    num("cache_max_memory", lim.max_memory);
    num("cache_ttl_ms", static_cast<std::uint64_t>(lim.ttl));
    num("forwarded_commands", t.forwarded);
    num("backend_inflight_requests", t.in_flight);
    line("backend_state", backend_state(s));
    line("backend_mode", s.startup_config().backend.cluster() ? "cluster" : "standalone");
    if (s.startup_config().backend.cluster()) {
        const cluster::counters& cc = s.cluster_counters();
        num("cluster_masters", cc.masters.load());
        num("cluster_slot_map_refreshes", cc.refreshes.load());
        num("cluster_moved_redirections", cc.moved.load());
        num("cluster_ask_redirections", cc.ask.load());
    }
    num("backend_connections_up", static_cast<std::uint64_t>(s.health().up.load()));
    num("backend_connections", static_cast<std::uint64_t>(s.health().connections.load()));
    num("backend_reconnects", s.health().reconnects.load());
    line("backend_last_error", last_error);
    num("backend_errors", t.backend_errors);
    num("pinned_connections", t.pinned);
    line("invalidation_mode", s.startup_config().invalidation == invalidation_mode::tracking ? "tracking" : "ttl");
    line("tracking_mode", s.startup_config().tracking == tracking_mode::bcast ? "bcast" : "optin");
    line("invalidation_channel", channel_state(s));
    num("invalidation_messages", s.tracking().invalidations.load());
    num("invalidation_channel_losses", s.tracking().losses.load());
    line("consistency", s.startup_config().consistency == consistency_mode::strict ? "strict" : "bounded");
    num("read_barriers", s.tracking().barriers.load());
    num("fills_pre_tracked", s.tracking().fills_pre_tracked.load());
    num("cache_tracked_names", c.tracked_names);
    num("protocol_errors", t.protocol_errors);
    num("output_buffer_disconnects", t.output_limit);
    num("idle_disconnects", t.idle);
    num("auth_failures", t.auth_failures);
    line("cached_commands", join(s.plan()->names()));
    for (const auto& r : per_command(s))
        line(("cached_" + r.name).c_str(), "hits=" + std::to_string(r.hits) + ",misses=" + std::to_string(r.misses) +
                                               ",partial=" + std::to_string(r.partial));
    int rank = 0;
    for (const auto& k : hottest(s))
        line(("hot_key_" + std::to_string(++rank)).c_str(),
             "db=" + std::to_string(k.db) + ",key=" + printable(k.name) + ",reads=" + std::to_string(k.reads));
    return out;
}

std::string prometheus_text(services& s) {
    const totals t = sum(s);
    const cache::counters c = s.cache().stats();
    std::string out;
    append_metrics(out, s, t, c);
    out += "# HELP respcache_request_duration_seconds Time from reading a GET to its reply being ready.\n";
    out += "# TYPE respcache_request_duration_seconds histogram\n";
    for (const char* result : {"hit", "miss"}) append_latency_histogram(out, s, result);
    append_command_metrics(out, s);
    out += "# HELP respcache_hot_key_reads Estimated reads of the most read keys (sampled).\n"
           "# TYPE respcache_hot_key_reads gauge\n";
    int rank = 0;
    for (const auto& k : hottest(s)) {
        std::string label;
        for (char c : printable(k.name)) label += c == '\\' ? "\\\\" : std::string(1, c);  // \ escaped
        out += "respcache_hot_key_reads{rank=\"" + std::to_string(++rank) + "\",db=\"" + std::to_string(k.db) +
               "\",key=\"" + label + "\"} " + std::to_string(k.reads) + "\n";
    }
    return out;
}

}  // namespace respcache::server
