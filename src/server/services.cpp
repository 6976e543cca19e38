#include "respcache/server/services.hpp"

#include <algorithm>

#include "respcache/util/log.hpp"

namespace respcache::server {

services::services(config cfg, cache::lru_cache& cache)
    : cfg_(std::move(cfg)), cache_(cache), coherence_(cache, cfg_.invalidation, cfg_.consistency, cfg_.tracking) {
    settings_.query_buffer_limit = cfg_.client_query_buffer_limit;
    settings_.start_db = cfg_.backend.db;
    apply_live(cfg_);
    // OPTIN tracking with one channel: a name Redis tracks stays tracked after its entry goes, and its
    // next fill needs no CLIENT CACHING yes (tracker::prepare_fill).
    cache_.remember_tracked(cfg_.invalidation == invalidation_mode::tracking && cfg_.tracking == tracking_mode::optin &&
                            !cfg_.backend.cluster());
    // What the invalidation channel hears of, clients with CLIENT TRACKING hear of.
    coherence_.observe([this](std::span<const std::string_view> keys, bool flush) { client_tracking_.changed(keys, flush); });
}

void services::apply_live(const config& cfg) {
    settings_.request_timeout_ms = cfg.request_timeout.count();
    settings_.connect_timeout_ms = cfg.connect_timeout.count();
    settings_.idle_timeout_ms = cfg.idle_timeout.count();
    settings_.max_value_size = cfg.max_value_size;
    settings_.output_buffer_limit = cfg.client_output_buffer_limit;
    settings_.pubsub_output_buffer_limit = cfg.pubsub_output_buffer_limit;
    settings_.max_clients = cfg.max_clients;
    {
        std::lock_guard guard(mu_);
        password_ = cfg.requirepass;
    }
    settings_.password_required = !cfg.requirepass.empty();
    settings_.cache_missing_keys = cfg.caches_missing_keys();
    coherence_.state().stale_window_ms.store(cfg.stale_if_error.count(), std::memory_order_relaxed);
    cache_.set_limits({cfg.capacity, cfg.max_memory, cfg.ttl.count(), cfg.refresh_ahead,
                       cfg.eviction_policy == config::eviction::tinylfu});
    std::lock_guard guard(mu_);
    if (plan_ == nullptr || !(cache_commands_ == cfg.cache_commands)) {
        cache_commands_ = cfg.cache_commands;
        rebuild_plan();
    }
}

void services::rebuild_plan() {
    plan_ = command::cache_plan::build(catalog_, cache_commands_);
    if (catalog_ != nullptr && !plan_->refused().empty()) {
        std::string names;
        for (const auto& n : plan_->refused()) names += (names.empty() ? "" : ",") + n;
        log::warn("--cache-commands names commands that cannot be cached (unknown to the backend, or not of one key)",
                  {{"commands", names}});
    }
    catalog_version_.fetch_add(1, std::memory_order_acq_rel);
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
    if (!backend_ready(why)) return false;
    if (warming_.load(std::memory_order_acquire)) {
        why = "warming the cache from --warm-file";
        return false;
    }
    return true;
}

bool services::backend_ready(std::string& why) const {
    const int total = health_.connections.load();
    const int up = health_.up.load();
    if (total == 0 || up < total) {
        std::lock_guard guard(health_.mu);
        why = "backend unreachable (" + std::to_string(up) + " of " + std::to_string(total) +
              " connections up): " + health_.last_error;
        return false;
    }
    if (coherence_.tracking_wanted() && !coherence_.live()) {
        why = "invalidation channel down";
        return false;
    }
    return true;
}

void services::publish_catalog(std::shared_ptr<const command::catalog> c) {
    std::lock_guard guard(mu_);
    catalog_ = std::move(c);
    rebuild_plan();
}

std::shared_ptr<const command::cache_plan> services::plan() const {
    std::lock_guard guard(mu_);
    return plan_;
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
