// Wiring only: configuration, logging, cache, reaper, backend, io threads, signals.

#include <csignal>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "respcache/cache/clock.hpp"
#include "respcache/cache/lru_cache.hpp"
#include "respcache/cache/reaper.hpp"
#include "respcache/cluster/invalidation_channels.hpp"
#include "respcache/coherence/invalidation_listener.hpp"
#include "respcache/config/config.hpp"
#include "respcache/util/log.hpp"
#include "respcache/server/backend_probe.hpp"
#include "respcache/server/catalog_loader.hpp"
#include "respcache/server/listener.hpp"
#include "respcache/server/metrics_server.hpp"
#include "respcache/server/services.hpp"
#include "respcache/server/tls_setup.hpp"
#include "respcache/server/worker.hpp"
#include "respcache/server/warm_start.hpp"

namespace asio = boost::asio;
using namespace respcache;

namespace {

using listeners = std::vector<std::unique_ptr<server::listener>>;

std::string mode_name(invalidation_mode m) { return m == invalidation_mode::tracking ? "tracking" : "ttl"; }

// Stops accepting, lets every session finish what it has in flight (bounded by --shutdown-timeout),
// then closes the backend connections and lets the io threads run out of work.
class shutdown_sequence {
public:
    shutdown_sequence(std::vector<std::unique_ptr<server::worker>>& workers, server::services& svc,
                      listeners& l, server::catalog_loader& loader, coherence::invalidation_source* inval,
                      std::vector<asio::executor_work_guard<asio::io_context::executor_type>>& guards)
        : workers_(workers), svc_(svc), listeners_(l), loader_(loader), inval_(inval), guards_(guards),
          timer_(workers[0]->io()) {}

    void begin(const char* why) {
        if (started_) return;
        started_ = true;
        log::info("shutting down: no new clients, finishing requests in flight", {{"signal", why}});
        for (auto& l : listeners_) l->stop();
        for (auto& w : workers_) asio::post(w->io(), [wp = w.get()] { wp->stop_sessions(); });
        deadline_ = std::chrono::steady_clock::now() + svc_.startup_config().shutdown_timeout;
        poll();
    }

private:
    void poll() {
        if (svc_.connected_clients().load() == 0 || std::chrono::steady_clock::now() >= deadline_) {
            finish();
            return;
        }
        timer_.expires_after(std::chrono::milliseconds(10));
        timer_.async_wait([this](boost::system::error_code ec) {
            if (!ec) poll();
        });
    }

    void finish() {
        const auto left = svc_.connected_clients().load();
        if (left > 0) log::warn("shutdown timeout: closing clients still connected", {{"clients", left}});
        loader_.close();
        for (auto& g : guards_) g.reset();
        for (auto& w : workers_) {
            asio::post(w->io(), [wp = w.get(), graceful = left == 0] {
                wp->stop_sessions_now();
                wp->stop_backend();
                // With no client left nothing else needs this thread; otherwise the closes just issued
                // get a moment to complete.
                if (graceful) wp->io().stop();
            });
        }
        if (left == 0) return;
        // Whatever still holds work (a client that never drains its socket) must not keep us alive.
        timer_.expires_after(std::chrono::milliseconds(500));
        timer_.async_wait([this](boost::system::error_code) {
            for (auto& w : workers_) w->io().stop();
        });
    }

    std::vector<std::unique_ptr<server::worker>>& workers_;
    server::services& svc_;
    listeners& listeners_;
    server::catalog_loader& loader_;
    coherence::invalidation_source* inval_;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>>& guards_;
    asio::steady_timer timer_;
    std::chrono::steady_clock::time_point deadline_;
    bool started_ = false;
};

// SIGHUP: reads the configuration again (same command line and environment, the file anew) and applies
// what can change while running; names what cannot.
void reload(const std::vector<std::string>& args, const config& startup, server::services& svc, cache::reaper& reaper,
            std::vector<std::unique_ptr<server::worker>>& workers, server::tls_slots& tls) {
    config_outcome o = load_config(args, process_environment());
    if (o.what != config_outcome::action::run) {
        log::error("reload refused: the configuration is invalid; keeping the running one", {{"error", o.message}});
        return;
    }
    const config& next = o.cfg;
    if (std::string error = server::reload_tls(next, tls); !error.empty())
        log::error("TLS certificates not reloaded; new connections keep the running ones", {{"error", error}});
    else if (tls.clients || tls.backend)
        log::info("TLS certificates reloaded: new connections use them");
    svc.apply_live(next);
    reaper.set_interval(next.reaper_interval);
    log::set_level(next.log_level);
    for (auto& w : workers)
        asio::post(w->io(), [wp = w.get(), c = next.connect_timeout, r = next.request_timeout] { wp->apply_timeouts(c, r); });
    log::info("configuration reloaded",
              {{"ttl_ms", static_cast<std::int64_t>(next.ttl.count())},
               {"capacity", next.capacity},
               {"max_memory", next.max_memory},
               {"log_level", next.log_level},
               {"request_timeout_ms", static_cast<std::int64_t>(next.request_timeout.count())},
               {"timeout_ms", static_cast<std::int64_t>(next.idle_timeout.count())},
               {"password_required", !next.requirepass.empty()}});
    const auto fixed = fixed_options_changed(startup, next);
    if (!fixed.empty()) {
        std::string names;
        for (const auto& n : fixed) names += (names.empty() ? "" : ",") + n;
        log::warn("these options changed but only take effect after a restart", {{"options", names}});
    }
}

// Prints what load_config asked to print instead of running: a usage error on stderr, or the help or
// version text on stdout. The process's exit status.
int exit_without_running(const config_outcome& outcome) {
    if (outcome.what == config_outcome::action::exit_usage_error) {
        std::cerr << outcome.message << "\n";
        return 2;
    }
    std::cout << outcome.message;
    return 0;
}

backend::connection_options backend_options_for(const config& cfg, const server::tls_slots& tls) {
    backend::connection_options backend_options;
    backend_options.address = cfg.backend;
    backend_options.connect_timeout = cfg.connect_timeout;
    backend_options.request_timeout = cfg.request_timeout;
    server::use_backend_tls(backend_options, tls.backend);
    return backend_options;
}

std::vector<std::unique_ptr<server::worker>> make_workers(server::services& svc, unsigned threads,
                                                          const backend::connection_options& backend_options) {
    std::vector<std::unique_ptr<server::worker>> workers;
    for (unsigned i = 0; i < threads; ++i) workers.push_back(std::make_unique<server::worker>(svc, i, backend_options));
    return workers;
}

// A work guard per worker, so that each io thread runs until shutdown releases it.
std::vector<asio::executor_work_guard<asio::io_context::executor_type>> hold_work(
    std::vector<std::unique_ptr<server::worker>>& workers) {
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    for (auto& w : workers) guards.push_back(asio::make_work_guard(w->io()));
    return guards;
}

// The TLS contexts `cfg` asks for, into `tls`; false (logged) if a file cannot be used.
bool set_up_tls(const config& cfg, server::tls_slots& tls) {
    const std::string error = server::make_tls_slots(cfg, tls);
    if (!error.empty()) log::error("cannot set up TLS", {{"error", error}});
    return error.empty();
}

// Binds the client ports into `out` (the plain one first, unless --port 0 with --tls-port; then the TLS
// one), handing accepted clients to `workers`; false (logged) if one cannot be bound.
bool open_listeners(listeners& out, asio::io_context& io, const config& cfg,
                    std::vector<std::unique_ptr<server::worker>>& workers, server::services& svc,
                    const server::tls_slots& tls) {
    std::vector<server::worker*> worker_ptrs;
    for (auto& w : workers) worker_ptrs.push_back(w.get());
    auto open = [&](std::uint16_t port, std::shared_ptr<const net::tls_context_slot> slot) {
        try {
            out.push_back(std::make_unique<server::listener>(
                io.get_executor(), asio::ip::tcp::endpoint(asio::ip::make_address(cfg.bind), port), worker_ptrs, svc,
                std::move(slot)));
        } catch (const std::exception& e) {
            log::error("cannot listen", {{"bind", cfg.bind}, {"port", port}, {"error", e.what()}});
            return false;
        }
        return true;
    };
    if ((cfg.port != 0 || cfg.tls_port == 0) && !open(cfg.port, nullptr)) return false;
    return cfg.tls_port == 0 || open(cfg.tls_port, tls.clients);
}

// The port a listener of `ls` is bound to: the plain one (tls false) or the TLS one; 0 if none.
std::uint16_t bound_port(const listeners& ls, const config& cfg, bool tls) {
    const bool has_plain = cfg.port != 0 || cfg.tls_port == 0;
    if (tls) return cfg.tls_port == 0 ? 0 : ls.back()->local_endpoint().port();
    return has_plain ? ls.front()->local_endpoint().port() : 0;
}

// With --metrics-port, binds it into `metrics`; false (logged) if it cannot.
bool open_metrics(std::optional<server::metrics_server>& metrics, asio::io_context& io, const config& cfg,
                  server::services& svc) {
    if (cfg.metrics_port == 0) return true;
    try {
        metrics.emplace(io.get_executor(), asio::ip::tcp::endpoint(asio::ip::make_address(cfg.bind), cfg.metrics_port),
                        svc);
    } catch (const std::exception& e) {
        log::error("cannot serve metrics", {{"bind", cfg.bind}, {"port", cfg.metrics_port}, {"error", e.what()}});
        return false;
    }
    return true;
}

// The invalidation listener of --invalidation tracking, on `io` (one per master of a Redis Cluster);
// null with --invalidation ttl.
std::unique_ptr<coherence::invalidation_source> make_invalidation_listener(
    const config& cfg, asio::io_context& io, const backend::connection_options& backend_options,
    server::services& svc) {
    if (cfg.invalidation != invalidation_mode::tracking) return nullptr;
    const coherence::invalidation_listener::timing timing{std::chrono::milliseconds(1000), cfg.request_timeout};
    if (cfg.backend.cluster()) {
        std::vector<cluster::node_address> seeds;
        for (const auto& [host, port] : cfg.backend.cluster_seeds) seeds.push_back({host, port});
        return std::make_unique<cluster::invalidation_channels>(io.get_executor(), backend_options, std::move(seeds),
                                                                svc.coherence(), timing);
    }
    return std::make_unique<coherence::invalidation_listener>(io.get_executor(), backend_options, svc.coherence(),
                                                              timing);
}

// Queues the start of the backend connections, the invalidation listener, the catalog loader, the
// metrics server and the listener; each starts when its io thread runs.
void start_services(std::vector<std::unique_ptr<server::worker>>& workers, coherence::invalidation_source* inval,
                    asio::io_context& inval_io, server::catalog_loader& loader,
                    std::optional<server::metrics_server>& metrics, listeners& ls) {
    for (auto& w : workers) asio::post(w->io(), [wp = w.get()] { wp->start_backend(); });
    if (inval) asio::post(inval_io, [inval] { inval->start(); });
    // Clients are accepted once the backend's facts (its version for HELLO, its database count) are
    // known, or it could not be reached: connections made before then wait in the listen queue.
    asio::post(workers[0]->io(), [&loader, &metrics, &ls] {
        loader.start([&ls] {
            for (auto& l : ls) l->start();
        });
        if (metrics) metrics->start();
    });
}

void warn_if_exposed(const config& cfg) {
    if (!cfg.bind.starts_with("127.") && cfg.bind != "::1" && cfg.requirepass.empty())
        log::warn("listening on a non-loopback address without --requirepass: anyone who can reach this port can "
                  "read and write the backend through respcache; set --requirepass (or --requirepass-file), or bind "
                  "to 127.0.0.1",
                  {{"bind", cfg.bind}});
}

void log_started(const config& cfg, const listeners& ls, const cache::lru_cache& cache,
                 const std::optional<server::metrics_server>& metrics) {
    log::info("respcache started",
              {{"version", RESPCACHE_VERSION},
               {"bind", cfg.bind},
               {"port", bound_port(ls, cfg, false)},
               {"tls_port", bound_port(ls, cfg, true)},
               {"tls_auth_clients", cfg.tls_port == 0                                  ? "-"
                                    : cfg.tls_auth_clients == net::client_auth::yes ? "yes"
                                    : cfg.tls_auth_clients == net::client_auth::no  ? "no"
                                                                                    : "optional"},
               {"backend", cfg.backend.redacted()},
               {"threads", cfg.threads},
               {"capacity", cfg.capacity},
               {"max_memory", cfg.max_memory},
               {"max_value_size", cfg.max_value_size},
               {"cache_shards", cache.shard_count()},
               {"ttl_ms", static_cast<std::int64_t>(cfg.ttl.count())},
               {"reaper_interval_ms", static_cast<std::int64_t>(cfg.reaper_interval.count())},
               {"invalidation", mode_name(cfg.invalidation)},
               {"consistency", cfg.consistency == consistency_mode::strict ? "strict" : "bounded"},
               {"tracking_mode", cfg.tracking == tracking_mode::bcast ? "bcast" : "optin"},
               {"backend_connections", cfg.backend_connections},
               {"connect_timeout_ms", static_cast<std::int64_t>(cfg.connect_timeout.count())},
               {"request_timeout_ms", static_cast<std::int64_t>(cfg.request_timeout.count())},
               {"max_clients", cfg.max_clients},
               {"timeout_ms", static_cast<std::int64_t>(cfg.idle_timeout.count())},
               {"client_output_buffer_limit", cfg.client_output_buffer_limit},
               {"pubsub_output_buffer_limit", cfg.pubsub_output_buffer_limit},
               {"client_query_buffer_limit", cfg.client_query_buffer_limit},
               {"password_required", !cfg.requirepass.empty()},
               {"metrics_port", metrics ? metrics->local_endpoint().port() : 0},
               {"log_format", cfg.log_fmt == log_format::json ? "json" : "text"},
               {"config_file", cfg.config_file}});
}

// Runs the io threads (the first on this thread) and the invalidation thread until shutdown stops the
// io threads, then closes the invalidation listener and waits for its thread.
void run_until_stopped(std::vector<std::unique_ptr<server::worker>>& workers, asio::io_context& inval_io,
                       asio::executor_work_guard<asio::io_context::executor_type>& inval_guard,
                       coherence::invalidation_source* inval) {
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < workers.size(); ++i) threads.emplace_back([w = workers[i].get()] { w->io().run(); });
    std::thread inval_thread([&inval_io] { inval_io.run(); });
    workers[0]->io().run();
    for (auto& t : threads) t.join();
    asio::post(inval_io, [&] {
        if (inval) inval->close();
        inval_guard.reset();
        inval_io.stop();
    });
    inval_thread.join();
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    config_outcome outcome = load_config(args, process_environment());
    if (outcome.what != config_outcome::action::run) return exit_without_running(outcome);
    log::init(outcome.cfg.log_fmt, outcome.cfg.log_level);
    std::signal(SIGPIPE, SIG_IGN);
    server::detect_cluster(outcome.cfg);
    const config cfg = outcome.cfg;

    cache::steady_clock clock;
    cache::lru_cache cache({cfg.capacity, cfg.max_memory, cfg.ttl.count()}, cfg.cache_shards, clock);
    cache::reaper reaper(cache, cfg.reaper_interval);
    server::services svc(cfg, cache);
    server::tls_slots tls;
    if (!set_up_tls(cfg, tls)) return 1;
    const backend::connection_options backend_options = backend_options_for(cfg, tls);

    std::vector<std::unique_ptr<server::worker>> workers = make_workers(svc, cfg.threads, backend_options);
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards = hold_work(workers);

    asio::io_context& main_io = workers[0]->io();
    listeners listening;
    if (!open_listeners(listening, main_io, cfg, workers, svc, tls)) return 1;

    server::catalog_loader loader(main_io.get_executor(), backend_options, svc);
    svc.set_catalog_refresher([&main_io, &loader] { asio::post(main_io, [&loader] { loader.refresh(); }); });
    // The invalidation listener has a thread of its own, so that an invalidation is applied the moment it
    // arrives rather than when an io thread is done with its clients.
    asio::io_context inval_io(1);
    auto inval_guard = asio::make_work_guard(inval_io);
    std::unique_ptr<coherence::invalidation_source> inval =
        make_invalidation_listener(cfg, inval_io, backend_options, svc);

    std::optional<server::metrics_server> metrics;
    if (!open_metrics(metrics, main_io, cfg, svc)) return 1;

    std::unique_ptr<server::warm_start> warm;
    if (!cfg.warm_file.empty()) warm = std::make_unique<server::warm_start>(*workers[0], svc);

    shutdown_sequence shutdown(workers, svc, listening, loader, inval.get(), guards);
    asio::signal_set signals(main_io, SIGINT, SIGTERM, SIGHUP);
    bool stopping = false;
    std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            reload(args, cfg, svc, reaper, workers, tls);
            signals.async_wait(on_signal);
            return;
        }
        // Kept armed while shutting down, so that a second signal changes nothing (as for Redis's SIGTERM).
        signals.async_wait(on_signal);
        if (stopping) return;
        stopping = true;
        if (metrics) metrics->stop();
        if (warm) warm->stop();  // and saves it: the cache is flushed when the invalidation channel closes
        shutdown.begin(sig == SIGINT ? "SIGINT" : "SIGTERM");
    };
    signals.async_wait(on_signal);

    start_services(workers, inval.get(), inval_io, loader, metrics, listening);
    if (warm) asio::post(main_io, [&warm] { warm->start(); });
    warn_if_exposed(cfg);
    log_started(cfg, listening, cache, metrics);
    run_until_stopped(workers, inval_io, inval_guard, inval.get());
    // Once stopped, a late SIGINT/SIGTERM must not turn the clean exit into death by signal while the
    // objects above are destroyed (clearing the set restores the default action, which is to die).
    signals.clear();
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
    reaper.stop();
    log::info("respcache stopped");
    return 0;
}
