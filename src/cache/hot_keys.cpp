// lru_cache::hottest: the keys a warm start fetches again (see server/warm_start).

#include "lru_shard.hpp"
#include "respcache/cache/lru_cache.hpp"

namespace respcache::cache {

std::vector<lru_cache::saved_key> lru_cache::hottest(std::size_t max) const {
    std::vector<saved_key> out;
    if (max == 0) return out;
    const std::size_t share = (max + shards_.size() - 1) / shards_.size();
    for (const auto& s : shards_) {
        std::lock_guard guard(s->mu_);
        std::size_t taken = 0;
        for (entry* e = s->head_.next; e != &s->head_ && taken < share && out.size() < max; e = e->next, ++taken)
            out.push_back({e->db, std::string(e->name()), std::string(e->variant())});
    }
    return out;
}

}  // namespace respcache::cache
