#include "respcache/proxy/tracking_table.hpp"

#include <algorithm>

namespace respcache::proxy {

void tracking_table::enable(std::uint64_t id, const command::tracking_mode& mode) {
    std::lock_guard guard(mu_);
    auto [it, added] = trackers_.try_emplace(id);
    if (!added && it->second.bcast) --bcast_clients_;
    it->second.bcast = mode.bcast;
    it->second.noloop = mode.noloop;
    it->second.prefixes = mode.prefixes;
    if (mode.bcast) ++bcast_clients_;
}

void tracking_table::disable(std::uint64_t id) {
    // Its remembered keys are dropped lazily, as Redis does: a later change finds no such tracker.
    std::lock_guard guard(mu_);
    auto it = trackers_.find(id);
    if (it == trackers_.end()) return;
    if (it->second.bcast) --bcast_clients_;
    trackers_.erase(it);
}

std::size_t tracking_table::stripe(std::string_view key) noexcept {
    return std::hash<std::string_view>{}(key) % kStripes;
}

void tracking_table::remember(std::uint64_t id, std::span<const std::string_view> keys, const std::uint64_t* since) {
    std::vector<command::tracking_message> told;
    {
        std::lock_guard guard(mu_);
        for (auto k : keys) {
            if (since != nullptr && last_change_[stripe(k)] > *since) {
                // It changed while it was being served: what the client got is what the change replaced
                // (or, for a stripe-mate's change, still current: a needless invalidation, never a lost one).
                auto& m = told.emplace_back();
                m.keys.emplace_back(k);
                m.tracker = id;
                continue;
            }
            auto it = keys_.find(k);
            if (it == keys_.end()) it = keys_.emplace(std::string(k), std::vector<std::uint64_t>{}).first;
            auto& readers = it->second;
            if (std::find(readers.begin(), readers.end(), id) == readers.end()) readers.push_back(id);
        }
    }
    if (told.empty()) return;
    if (auto c = clients_.find(id))
        for (auto& m : told) c->deliver(std::move(m));
}

void tracking_table::wrote(std::uint64_t id, std::span<const std::string_view> keys) {
    std::lock_guard guard(mu_);
    auto t = trackers_.find(id);
    if (t == trackers_.end() || !t->second.noloop) return;
    for (auto k : keys) {
        if (t->second.bcast) {
            t->second.written.emplace(k);
            continue;
        }
        if (auto it = keys_.find(k); it != keys_.end()) std::erase(it->second, id);
    }
}

bool tracking_table::hears_own_write(std::uint64_t id, const command::owned_effect& e) const {
    std::lock_guard guard(mu_);
    auto t = trackers_.find(id);
    if (t == trackers_.end() || t->second.noloop) return false;
    if (e.all || !e.dbs.empty()) return true;  // a flush, or keys unknown
    for (std::size_t i = 0; i < e.key_count(); ++i) {
        const std::string_view k = e.key(i);
        if (t->second.bcast) {
            if (std::any_of(t->second.prefixes.begin(), t->second.prefixes.end(),
                            [&](const std::string& p) { return k.starts_with(p); }))
                return true;
            continue;
        }
        auto it = keys_.find(k);
        if (it != keys_.end() && std::find(it->second.begin(), it->second.end(), id) != it->second.end()) return true;
    }
    return false;
}

void tracking_table::broadcast(std::string_view key, batches& out) {
    for (auto& [id, t] : trackers_) {
        if (!t.bcast) continue;
        // A client's prefixes never overlap: at most one matches.
        const auto match = std::find_if(t.prefixes.begin(), t.prefixes.end(),
                                        [&](const std::string& p) { return key.starts_with(p); });
        if (match == t.prefixes.end()) continue;
        if (t.noloop && t.written.erase(std::string(key)) > 0) continue;
        out[{id, *match}].keys.emplace_back(key);
    }
}

void tracking_table::changed(std::span<const std::string_view> keys, bool flush) {
    batches out;
    // A client in default mode hears of each key in a message of its own, as from Redis, whether the
    // channel brought one key (optin) or an event loop's worth of them (bcast).
    std::vector<command::tracking_message> singles;
    {
        std::lock_guard guard(mu_);
        if (trackers_.empty()) {
            keys_.clear();
            return;
        }
        if (flush) {
            keys_.clear();
            for (auto& [id, t] : trackers_) {
                out[{id, std::string_view()}].flush = true;
                t.written.clear();
            }
        } else {
            const std::uint64_t n = changes_.load(std::memory_order_relaxed) + 1;
            changes_.store(n, std::memory_order_release);
            for (auto k : keys) {
                last_change_[stripe(k)] = n;
                if (auto it = keys_.find(k); it != keys_.end()) {
                    for (std::uint64_t id : it->second) {
                        auto t = trackers_.find(id);
                        if (t != trackers_.end() && !t->second.bcast) {
                            auto& m = singles.emplace_back();
                            m.keys.emplace_back(k);
                            m.tracker = id;
                        }
                    }
                    keys_.erase(it);
                }
                if (bcast_clients_ > 0) broadcast(k, out);
            }
        }
    }
    for (auto& m : singles)
        if (auto c = clients_.find(m.tracker)) c->deliver(std::move(m));
    for (auto& [to, m] : out) {
        m.tracker = to.first;
        if (auto c = clients_.find(to.first)) c->deliver(std::move(m));
    }
}

std::size_t tracking_table::tracking_clients() const {
    std::lock_guard guard(mu_);
    return trackers_.size();
}

}  // namespace respcache::proxy
