#include "respcache/server/worker.hpp"

#include <boost/asio/post.hpp>

#include "respcache/cluster/router_link.hpp"
#include "respcache/server/report.hpp"
#include "respcache/server/session.hpp"

namespace respcache::server {

namespace {
std::shared_ptr<cluster::topology> make_topology(boost::asio::io_context& io, const backend::connection_options& o,
                                                 std::size_t index, cluster::counters& counters) {
    if (!o.address.cluster()) return nullptr;
    std::vector<cluster::node_address> seeds;
    for (const auto& [host, port] : o.address.cluster_seeds) seeds.push_back({host, port});
    auto t = std::make_shared<cluster::topology>(io.get_executor(), o, std::move(seeds), index == 0);
    t->count_in(&counters);
    return t;
}
}  // namespace

worker::worker(services& shared, std::size_t index, backend::connection_options backend_options)
    : index_(index),
      shared_(shared),
      topology_(make_topology(io_, backend_options, index, shared.cluster_counters())),
      pool_(io_.get_executor(), backend_options, shared.startup_config().backend_connections, link_factory()),
      tracking_(pool_.shared_slots()),
      backend_options_(std::move(backend_options)),
      env_{*this,           shared.settings(), shared.cache(),           shared.coherence(), pool_, tracking_,
           shared.clients(), shared.client_tracking(), stats_} {
    shared_.register_stats(&stats_);
}

worker::~worker() = default;

backend::pool::link_factory worker::link_factory() {
    if (!topology_) return {};
    return [this](boost::asio::any_io_executor ex, backend::connection_options o) -> std::shared_ptr<backend::pooled_link> {
        auto find = [this](command::args_view args) {
            const command::catalog* c = catalog();
            return c != nullptr ? c->find(args) : nullptr;
        };
        auto redirect_for = [this](std::string_view node) { return shared_.coherence().redirect_for(node); };
        return std::make_shared<cluster::router_link>(ex, std::move(o), topology_, find, redirect_for);
    };
}

void worker::refresh_plan() {
    const std::uint64_t v = shared_.catalog_version();
    if (v != catalog_version_ || plan_ == nullptr) {
        plan_ = shared_.plan();
        catalog_version_ = v;
    }
}

const command::catalog* worker::catalog() {
    refresh_plan();
    return plan_->table();
}

const command::cache_plan& worker::cache_plan() {
    refresh_plan();
    return *plan_;
}

std::string worker::proxy_info() { return proxy_info_section(shared_); }

void worker::post(std::function<void()> f) { boost::asio::post(io_, std::move(f)); }

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
    // Each shared connection, as the pool makes it (the RESP3 ones when first needed), is counted in the
    // health figures, and its closing is coherence's to judge.
    pool_.on_shared([this, &health](std::size_t i, backend::pooled_link& conn) {
        health.connections.fetch_add(1);
        auto counted = std::make_shared<bool>(false);
        conn.on_ready([this, &health, counted] {
            shared_.coherence().end_stale();
            if (!*counted) {
                *counted = true;
                health.up.fetch_add(1);
            }
        });
        conn.on_closing([this, &conn, i] { shared_.coherence().link_closing(tracking_[i], conn); });
        conn.on_down([&health, counted](std::string_view why) {
            if (*counted) {
                *counted = false;
                health.up.fetch_sub(1);
            }
            health.reconnects.fetch_add(1);
            std::lock_guard guard(health.mu);
            health.last_error = std::string(why);
        });
    });
    if (topology_) {
        // Entries filled from a slot's old master are tracked there, not where the slot now is.
        topology_->on_slots_moved([this] {
            shared_.cache().flush_all();
            shared_.coherence().flushed();
        });
        topology_->start();
    }
    pool_.start();
}

void worker::stop_backend() {
    pool_.close();
    if (topology_) topology_->close();
    for (auto& [name, u] : users_) u.pool->close();
}

void worker::apply_timeouts(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds request_timeout) {
    pool_.set_timeouts(connect_timeout, request_timeout);
    for (auto& [name, u] : users_) u.pool->set_timeouts(connect_timeout, request_timeout);
    backend_options_.connect_timeout = connect_timeout;
    backend_options_.request_timeout = request_timeout;
}

proxy::user_links worker::links_for(std::string_view user, std::string_view password) {
    const std::string& own = backend_options_.address.user;
    if (user == (own.empty() ? std::string_view("default") : std::string_view(own))) return {};
    auto it = users_.find(user);
    if (it == users_.end()) {
        backend::connection_options o = backend_options_;
        o.address.user = std::string(user);
        o.address.password = std::string(password);
        user_pool u;
        u.pool = std::make_unique<backend::pool>(io_.get_executor(), std::move(o),
                                                 shared_.startup_config().backend_connections, link_factory());
        u.tracking.resize(u.pool->shared_slots());
        it = users_.emplace(std::string(user), std::move(u)).first;
        user_pool& p = it->second;
        // As for the proxy's own links: Redis forgets what a closing link tracked (invariant 4).
        p.pool->on_shared([this, &p](std::size_t i, backend::pooled_link& conn) {
            conn.on_closing([this, &p, &conn, i] { shared_.coherence().link_closing(p.tracking[i], conn); });
        });
        p.pool->start();
    }
    return {it->second.pool.get(), &it->second.tracking};
}

}  // namespace respcache::server
