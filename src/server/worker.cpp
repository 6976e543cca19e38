#include "respcache/server/worker.hpp"

#include <memory>
#include <mutex>
#include <vector>

#include "respcache/server/session.hpp"

namespace respcache::server {

worker::worker(services& shared, std::size_t index, backend::connection_options backend_options)
    : index_(index),
      shared_(shared),
      pool_(io_.get_executor(), std::move(backend_options), shared.startup_config().backend_connections) {
    shared_.register_stats(&stats_);
}

worker::~worker() = default;

const command::catalog* worker::catalog() {
    const std::uint64_t v = shared_.catalog_version();
    if (v != catalog_version_) {
        catalog_ = shared_.catalog();
        catalog_version_ = v;
    }
    return catalog_.get();
}

void worker::stop_sessions() {
    std::vector<session*> all(sessions_.begin(), sessions_.end());
    for (session* s : all) s->stop_when_idle();
}

void worker::stop_sessions_now() {
    std::vector<session*> all(sessions_.begin(), sessions_.end());
    for (session* s : all) s->close();
}

void worker::start_backend() {
    auto& health = shared_.health();
    for (auto& c : pool_.shared()) {
        health.connections.fetch_add(1);
        auto counted = std::make_shared<bool>(false);
        c->on_ready([&health, counted] {
            if (!*counted) {
                *counted = true;
                health.up.fetch_add(1);
            }
        });
        backend::connection* conn = c.get();
        services* svc = &shared_;
        c->on_closing([conn, svc] {
            // Redis tracks keys per connection: entries filled through this one will get no invalidation
            // any more. Which entries those are is not recorded, so all go, before the socket does.
            if (conn->tracking_epoch != 0) {
                conn->tracking_epoch = 0;
                svc->cache().flush_all();
                svc->tracking().losses.fetch_add(1, std::memory_order_relaxed);
            }
        });
        c->on_down([&health, counted](std::string_view why) {
            if (*counted) {
                *counted = false;
                health.up.fetch_sub(1);
            }
            health.reconnects.fetch_add(1);
            std::lock_guard guard(health.mu);
            health.last_error = std::string(why);
        });
    }
    pool_.start();
}

void worker::stop_backend() { pool_.close(); }

void worker::apply_timeouts(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds request_timeout) {
    pool_.set_timeouts(connect_timeout, request_timeout);
    for (auto& c : pool_.shared()) c->set_request_timeout(request_timeout);
}

}  // namespace respcache::server
