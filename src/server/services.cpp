#include "respcache/server/services.hpp"

#include <poll.h>

#include <algorithm>
#include <cstring>

namespace respcache::server {

std::string client_info::describe() const {
    using namespace std::chrono;
    const auto now = steady_clock::now();
    const auto now_ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
    const long long age = duration_cast<seconds>(now - created).count();
    const long long idle = std::max<long long>(0, (now_ms - last_active_ms.load(std::memory_order_relaxed)) / 1000);
    std::string flags;
    if (multi.load() >= 0) flags += 'x';
    if (blocked.load()) flags += 'b';
    if (subscriptions.load() + shard_subscriptions.load() > 0) flags += 'P';
    if (monitor.load()) flags += 'O';
    std::lock_guard guard(mu);
    if (no_evict) flags += 'e';
    if (no_touch) flags += 'T';
    if (flags.empty()) flags = "N";
    std::string out;
    out += "id=" + std::to_string(id);
    out += " addr=" + addr;
    out += " laddr=" + laddr;
    out += " fd=-1";
    out += " name=" + name;
    out += " age=" + std::to_string(age);
    out += " idle=" + std::to_string(idle);
    out += " flags=" + flags;
    out += " db=" + std::to_string(db.load());
    out += " sub=" + std::to_string(subscriptions.load());
    out += " psub=0";
    out += " ssub=" + std::to_string(shard_subscriptions.load());
    out += " multi=" + std::to_string(multi.load());
    out += " qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r";
    out += " cmd=" + last_command;
    out += " user=" + user;
    out += " redir=-1 resp=2";
    out += " lib-name=" + lib_name;
    out += " lib-ver=" + lib_ver;
    return out;
}

void client_info::end() const {
    std::function<void()> f;
    {
        std::lock_guard guard(mu);
        f = kill;
    }
    if (f) f();
}

void client_info::note_command(std::string_view name) {
    char lower[sizeof last_seen_];
    const std::size_t n = std::min(name.size(), sizeof lower);
    for (std::size_t i = 0; i < n; ++i) {
        const char c = name[i];
        lower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    }
    if (n == last_seen_len_ && std::memcmp(lower, last_seen_, n) == 0) return;
    std::memcpy(last_seen_, lower, n);
    last_seen_len_ = static_cast<std::uint8_t>(n);
    std::lock_guard guard(mu);
    last_command.assign(lower, n);
}

bool tracking_state::catch_up() {
    if (!live.load(std::memory_order_seq_cst)) return false;
    int socket = fd.load(std::memory_order_seq_cst);
    if (socket < 0) return false;
    pollfd p{socket, POLLIN, 0};
    const int ready = ::poll(&p, 1, 0);
    // Checked after the socket: bytes taken before our poll are either applied or being applied.
    if (ready == 0 && !draining.load(std::memory_order_seq_cst)) return live.load(std::memory_order_seq_cst);
    std::lock_guard guard(read_mutex);
    socket = fd.load(std::memory_order_seq_cst);
    if (socket < 0 || !live.load(std::memory_order_seq_cst) || !drain) return false;
    if (!drain(socket)) return false;
    return live.load(std::memory_order_seq_cst);
}

void tracking_state::await_barrier(std::function<void(bool)> done) {
    {
        std::lock_guard guard(barrier_mu_);
        // Checked under the lock: barriers_failed() runs after `live` went false, so a waiter added here
        // is either answered or failed by it.
        if (live.load(std::memory_order_seq_cst) && send_barrier) {
            if (!barrier_in_flight_) {
                barrier_in_flight_ = true;
                riding_.push_back(std::move(done));
                send_barrier(++barrier_seq_);
            } else {
                next_.push_back(std::move(done));
            }
            return;
        }
    }
    done(false);
}

void tracking_state::barrier_answered(std::uint64_t seq) {
    std::vector<std::function<void(bool)>> passed;
    {
        std::lock_guard guard(barrier_mu_);
        if (!barrier_in_flight_ || seq != barrier_seq_) return;  // one sent before a loss: its waiters failed
        passed.swap(riding_);
        barrier_in_flight_ = false;
        barriers.fetch_add(1, std::memory_order_relaxed);
        if (!next_.empty()) {
            riding_.swap(next_);
            barrier_in_flight_ = true;
            send_barrier(++barrier_seq_);
        }
    }
    for (auto& f : passed) f(true);
}

void tracking_state::barriers_failed() {
    std::vector<std::function<void(bool)>> failed;
    {
        std::lock_guard guard(barrier_mu_);
        failed.swap(riding_);
        failed.insert(failed.end(), std::make_move_iterator(next_.begin()), std::make_move_iterator(next_.end()));
        next_.clear();
        barrier_in_flight_ = false;
    }
    for (auto& f : failed) f(false);
}

void client_registry::add(std::shared_ptr<client_info> c) {
    std::lock_guard guard(mu_);
    clients_[c->id] = std::move(c);
}

void client_registry::remove(std::uint64_t id) {
    std::lock_guard guard(mu_);
    clients_.erase(id);
}

std::vector<std::shared_ptr<client_info>> client_registry::snapshot() const {
    std::lock_guard guard(mu_);
    std::vector<std::shared_ptr<client_info>> out;
    out.reserve(clients_.size());
    for (auto& [id, c] : clients_) out.push_back(c);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a->id < b->id; });
    return out;
}

std::shared_ptr<client_info> client_registry::find(std::uint64_t id) const {
    std::lock_guard guard(mu_);
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : it->second;
}

std::size_t client_registry::size() const {
    std::lock_guard guard(mu_);
    return clients_.size();
}

services::services(config cfg, cache::lru_cache& cache) : cfg_(std::move(cfg)), cache_(cache) { apply_live(cfg_); }

void services::apply_live(const config& cfg) {
    live_.request_timeout_ms = cfg.request_timeout.count();
    live_.connect_timeout_ms = cfg.connect_timeout.count();
    live_.idle_timeout_ms = cfg.idle_timeout.count();
    live_.max_value_size = cfg.max_value_size;
    live_.output_buffer_limit = cfg.client_output_buffer_limit;
    live_.pubsub_output_buffer_limit = cfg.pubsub_output_buffer_limit;
    live_.max_clients = cfg.max_clients;
    {
        std::lock_guard guard(mu_);
        password_ = cfg.requirepass;
    }
    live_.password_required = !cfg.requirepass.empty();
    cache_.set_limits({cfg.capacity, cfg.max_memory, cfg.ttl.count()});
}

bool services::password_matches(std::string_view password) const {
    std::string expected;
    {
        std::lock_guard guard(mu_);
        expected = password_;
    }
    if (expected.empty()) return false;
    // Constant time in the contents: every byte of the longer string is looked at whatever matches.
    const std::size_t n = std::max(expected.size(), password.size());
    unsigned char diff = expected.size() == password.size() ? 0 : 1;
    for (std::size_t i = 0; i < n; ++i) {
        const unsigned char a = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0;
        const unsigned char b = i < password.size() ? static_cast<unsigned char>(password[i]) : 0;
        diff |= static_cast<unsigned char>(a ^ b);
    }
    return diff == 0;
}

bool services::ready(std::string& why) const {
    const int total = health_.connections.load();
    const int up = health_.up.load();
    if (total == 0 || up < total) {
        std::lock_guard guard(health_.mu);
        why = "backend unreachable (" + std::to_string(up) + " of " + std::to_string(total) +
              " connections up): " + health_.last_error;
        return false;
    }
    if (tracking_wanted() && !tracking_.live.load()) {
        why = "invalidation channel down";
        return false;
    }
    return true;
}

bool services::tracking_wanted() const noexcept {
    return cfg_.invalidation == invalidation_mode::tracking && !tracking_.unsupported.load(std::memory_order_relaxed);
}

bool services::fill_allowed(std::uint64_t connection_epoch) const noexcept {
    if (!tracking_wanted()) return true;
    return tracking_.live.load(std::memory_order_acquire) &&
           connection_epoch == tracking_.epoch.load(std::memory_order_acquire);
}

void services::publish_catalog(std::shared_ptr<const command::catalog> c) {
    {
        std::lock_guard guard(mu_);
        catalog_ = std::move(c);
    }
    catalog_version_.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<const command::catalog> services::catalog() const {
    std::lock_guard guard(mu_);
    return catalog_;
}

void services::set_backend_facts(backend_facts f) {
    std::lock_guard guard(mu_);
    facts_ = std::move(f);
}

backend_facts services::facts() const {
    std::lock_guard guard(mu_);
    return facts_;
}

void services::register_stats(const thread_stats* s) {
    std::lock_guard guard(mu_);
    stats_.push_back(s);
}

std::vector<const thread_stats*> services::all_stats() const {
    std::lock_guard guard(mu_);
    return stats_;
}

}  // namespace respcache::server
