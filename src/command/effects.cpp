#include "respcache/command/effects.hpp"

#include <algorithm>

#include "respcache/util/ascii.hpp"

namespace respcache::command {


namespace {

bool parse_db(std::string_view s, std::uint32_t& out) {
    std::int64_t v = 0;
    if (!util::parse_int64(s, v) || v < 0 || v > UINT32_MAX) return false;
    out = static_cast<std::uint32_t>(v);
    return true;
}

// Scripts and functions before Redis 7 have no key specs: their keys follow a numkeys argument.
bool numkeys_keys(args_view args, cache_effect& out) {
    if (args.size() < 3) return false;
    std::int64_t n = 0;
    if (!util::parse_int64(args[2], n) || n < 0 || static_cast<std::size_t>(n) > args.size() - 3) return false;
    for (std::int64_t i = 0; i < n; ++i) out.keys.push_back(args[3 + i]);
    return true;
}
}  // namespace

cache_effect effect_of(const command_info* info, args_view args, std::uint32_t db) {
    cache_effect out;
    effect_of(info, args, db, out);
    return out;
}

void effect_of(const command_info* info, args_view args, std::uint32_t db, cache_effect& out) {
    out.keys.clear();
    out.dbs.clear();
    out.all = false;
    if (args.empty()) return;
    // Read-only commands first: the common case on this path.
    if (info != nullptr && info->has(flag_readonly)) return;
    const std::string_view name = args[0];
    if (iequals(name, "flushall")) {
        out.all = true;
        return;
    }
    if (iequals(name, "acl") && args.size() > 1 &&
        (iequals(args[1], "setuser") || iequals(args[1], "deluser") || iequals(args[1], "load"))) {
        // A user's permissions changed: what Redis let it read may now be refused (the cache is per user).
        out.all = true;
        return;
    }
    if (iequals(name, "flushdb")) {
        out.dbs.push_back(db);
        return;
    }
    if (iequals(name, "swapdb")) {
        std::uint32_t a = 0, b = 0;
        if (args.size() == 3 && parse_db(args[1], a) && parse_db(args[2], b)) {
            out.dbs.push_back(a);
            out.dbs.push_back(b);
        } else {
            out.all = true;
        }
        return;
    }
    if (info == nullptr) {
        out.dbs.push_back(db);
        return;
    }
    if (iequals(name, "sort")) {
        // SORT writes only with STORE <destination>; its key spec for the destination is "incomplete".
        for (std::size_t i = 2; i + 1 < args.size(); ++i)
            if (iequals(args[i], "store")) out.keys.push_back(args[i + 1]);
        return;
    }
    if (info->key_specs.empty() && (iequals(name, "eval") || iequals(name, "evalsha") || iequals(name, "fcall"))) {
        if (!numkeys_keys(args, out)) out.dbs.push_back(db);
        return;
    }
    thread_local key_set ks;  // reused: no allocation per write
    catalog::keys(*info, args, ks);
    out.keys.assign(ks.keys.begin(), ks.keys.end());
    if (!ks.complete) out.dbs.push_back(db);
}

void owned_effect::add_key(std::string_view name, std::uint64_t hash) {
    spans_.emplace_back(arena_.size(), name.size());
    arena_.append(name);
    hashes.push_back(hash);
}

void owned_effect::add(const cache_effect& e) {
    for (auto k : e.keys) add_key(k, cache::hash_name(k));
    for (auto d : e.dbs)
        if (std::find(dbs.begin(), dbs.end(), d) == dbs.end()) dbs.push_back(d);
    all = all || e.all;
}

void owned_effect::add(const owned_effect& e) {
    for (std::size_t i = 0; i < e.key_count(); ++i) add_key(e.key(i), e.hashes[i]);
    for (auto d : e.dbs)
        if (std::find(dbs.begin(), dbs.end(), d) == dbs.end()) dbs.push_back(d);
    all = all || e.all;
}

void owned_effect::clear() {
    arena_.clear();
    spans_.clear();
    hashes.clear();
    dbs.clear();
    all = false;
}

bool owned_effect::touches(const cache::key& k) const noexcept {
    if (all) return true;
    for (auto d : dbs)
        if (d == k.db) return true;
    for (std::size_t i = 0; i < spans_.size(); ++i)
        if (hashes[i] == k.hash && key(i) == k.name) return true;
    return false;
}

void owned_effect::apply(cache::lru_cache& cache) const {
    if (all) {
        cache.flush_all();
        return;
    }
    for (auto d : dbs) cache.flush_db(d);
    for (std::size_t i = 0; i < spans_.size(); ++i) cache.invalidate(key(i), hashes[i]);
}

}  // namespace respcache::command
