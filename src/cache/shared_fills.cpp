// Sharing a miss (lru_cache::join_or_lead, end_fill): the fills others may wait for are kept
// per shard, under the shard's lock, so that joining one and invalidating its key are ordered.

#include <memory>
#include <string>

#include "lru_shard.hpp"
#include "respcache/cache/lru_cache.hpp"

namespace respcache::cache {

namespace {
// (db, name, variant) as one string: the name length-prefixed, so no two keys give the same text.
void flight_key(const key& k, std::string& out) {
    out.clear();
    out.push_back(static_cast<char>(k.db));
    const auto n = static_cast<std::uint32_t>(k.name.size());
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out.append(k.name);
    out.append(k.variant);
}
}  // namespace

bool lru_cache::join_or_lead(const key& k, fill_waiter& w, fill_token& token, std::uint64_t& id) {
    if (!cacheable_key(k)) {
        token = begin_fill(k);
        id = 0;
        return false;
    }
    std::string id_key;
    flight_key(k, id_key);
    shard& s = shard_for(k.hash);
    std::lock_guard guard(s.mu_);
    token = s.token_for(k);
    auto [it, fresh] = s.flights_.try_emplace(std::move(id_key));
    if (!fresh && s.token_current(k, it->second.token)) {
        it->second.waiters.push_back(std::move(w));
        return true;
    }
    it->second.id = id = ++s.next_flight_;  // an earlier, invalidated fill's waiters now wait for this one
    it->second.token = token;
    return false;
}

void lru_cache::end_fill(const key& k, std::uint64_t id, std::string_view reply, bool answered) {
    if (id == 0) return;
    std::string id_key;
    flight_key(k, id_key);
    std::vector<fill_waiter> waiters;
    {
        shard& s = shard_for(k.hash);
        std::lock_guard guard(s.mu_);
        auto it = s.flights_.find(std::string_view(id_key));
        if (it == s.flights_.end() || it->second.id != id) return;  // a later fill took its waiters over
        waiters = std::move(it->second.waiters);
        s.flights_.erase(it);
    }
    if (waiters.empty()) return;
    const auto shared = std::make_shared<const std::string>(reply);
    for (auto& w : waiters) w(shared, answered);
}

}  // namespace respcache::cache
