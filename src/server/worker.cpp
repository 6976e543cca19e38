#include "respcache/server/worker.hpp"

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

void worker::start_backend() { pool_.start(); }

void worker::stop_backend() { pool_.close(); }

}  // namespace respcache::server
