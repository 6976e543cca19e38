#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/cache/lru_cache.hpp"
#include "respcache/command/catalog.hpp"
#include "respcache/command/table.hpp"

namespace respcache::command {

// What a forwarded command may change in the cache's view of Redis, so that it can be invalidated.
// Keys are invalidated by name in every database (a key name is all that Redis client tracking reports,
// and it makes MOVE, COPY ... DB and scripts that SELECT safe without parsing them).
struct cache_effect {
    std::vector<std::string_view> keys;  // names written (views into the command's arguments)
    std::vector<std::uint32_t> dbs;      // databases wholly changed (FLUSHDB, SWAPDB, unknown keys)
    bool all = false;                    // everything changed (FLUSHALL)

    bool empty() const noexcept { return keys.empty() && dbs.empty() && !all; }
};

// The effect of `args` run in database `db`, according to the backend's description `info` (nullptr
// when the backend's table is unknown: then the whole database is assumed changed). Read-only commands
// change nothing; commands whose keys cannot all be found change their whole database.
cache_effect effect_of(const command_info* info, args_view args, std::uint32_t db);
// The same into `out`, whose vectors keep their capacity: no allocation once warm (the write path).
void effect_of(const command_info* info, args_view args, std::uint32_t db, cache_effect& out);

// A cache_effect that owns its bytes, to outlive the request buffer: accumulated over a transaction, or
// kept while a write is in flight. Names live in one buffer; clear() keeps every capacity, so a reused
// owned_effect allocates nothing.
struct owned_effect {
    std::vector<std::uint64_t> hashes;  // hash_name of each name, in order
    std::vector<std::uint32_t> dbs;
    bool all = false;

    std::size_t key_count() const noexcept { return spans_.size(); }
    std::string_view key(std::size_t i) const noexcept { return {arena_.data() + spans_[i].first, spans_[i].second}; }

    void add(const cache_effect& e);
    void add(const owned_effect& e);
    void clear();
    bool empty() const noexcept { return spans_.empty() && dbs.empty() && !all; }
    // Whether a GET of `k` could observe this effect.
    bool touches(const cache::key& k) const noexcept;
    // Removes what the effect changed from `cache` (and fails fills in flight for it).
    void apply(cache::lru_cache& cache) const;

private:
    void add_key(std::string_view name, std::uint64_t hash);

    std::string arena_;
    std::vector<std::pair<std::size_t, std::size_t>> spans_;  // (offset, length) of each name in arena_
};

}  // namespace respcache::command
