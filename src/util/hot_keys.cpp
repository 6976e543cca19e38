#include "respcache/util/hot_keys.hpp"

#include <algorithm>
#include <map>
#include <utility>

namespace respcache {

void hot_keys::sample(std::uint32_t db, std::string_view name) {
    std::lock_guard guard(mu_);
    std::size_t least = 0;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i].db == db && slots_[i].name == name) {
            slots_[i].reads += kEvery;
            return;
        }
        if (slots_[i].reads < slots_[least].reads) least = i;
    }
    if (slots_.size() < kCapacity) {
        slots_.push_back({db, std::string(name), kEvery});
        return;
    }
    slots_[least].db = db;
    slots_[least].name.assign(name);
    slots_[least].reads += kEvery;
}

std::vector<hot_keys::key_count> hot_keys::snapshot() const {
    std::lock_guard guard(mu_);
    return slots_;
}

std::vector<hot_keys::key_count> hot_keys::top(const std::vector<const hot_keys*>& all, std::size_t n) {
    std::map<std::pair<std::uint32_t, std::string>, std::uint64_t> merged;
    for (const hot_keys* h : all)
        for (auto& k : h->snapshot()) merged[{k.db, std::move(k.name)}] += k.reads;
    std::vector<key_count> out;
    for (auto& [k, reads] : merged) out.push_back({k.first, k.second, reads});
    std::sort(out.begin(), out.end(), [](const key_count& a, const key_count& b) {
        return a.reads != b.reads ? a.reads > b.reads : a.name < b.name;
    });
    if (out.size() > n) out.resize(n);
    return out;
}

}  // namespace respcache
