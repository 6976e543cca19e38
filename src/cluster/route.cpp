#include "respcache/cluster/route.hpp"

#include <algorithm>
#include <string>

#include "respcache/cluster/slots.hpp"

namespace respcache::cluster {

namespace {

struct splittable {
    std::string_view name;
    std::size_t step;  // arguments per key (MSET: key and value)
    merge merged;
};
constexpr splittable kSplittable[] = {
    {"mget", 1, merge::ordered_array}, {"mset", 2, merge::all_ok}, {"del", 1, merge::sum},
    {"unlink", 1, merge::sum},         {"exists", 1, merge::sum},  {"touch", 1, merge::sum},
};

struct fanned {
    std::string_view name;
    merge merged;
};
constexpr fanned kFanout[] = {
    {"dbsize", merge::sum},          {"keys", merge::concat},          {"flushall", merge::all_ok},
    {"flushdb", merge::all_ok},      {"randomkey", merge::any_value},  {"scan", merge::scan},
    {"script|load", merge::first},   {"script|flush", merge::all_ok},  {"function|load", merge::first},
    {"function|flush", merge::all_ok}, {"function|delete", merge::all_ok}, {"function|restore", merge::all_ok},
};

// The name as the catalog knows it ("script|load"), from the arguments (lower-cased into `buf`) when
// the command is unknown.
std::string_view name_of(std::span<const std::string_view> args, const command::command_info* info,
                         std::span<char> buf) {
    if (info != nullptr) return info->name;
    return util::to_lower(args[0], buf);
}

bool answered_here(std::string_view name) {
    return name == "cluster" || name.starts_with("cluster|") || name == "readonly" || name == "readwrite" ||
           name == "asking";
}

route split_by_slot(std::span<const std::string_view> args, const splittable& s) {
    route r;
    r.how = route::kind::split;
    r.merged = s.merged;
    for (std::size_t i = 1; i + s.step <= args.size(); i += s.step) {
        const std::uint16_t slot = key_slot(args[i]);
        auto g = std::find_if(r.groups.begin(), r.groups.end(), [slot](const group& x) { return x.slot == slot; });
        if (g == r.groups.end()) {
            r.groups.push_back({slot, {}});
            g = r.groups.end() - 1;
        }
        for (std::size_t k = 0; k < s.step; ++k) g->args.push_back(i + k);
    }
    if (r.groups.size() == 1) {
        r.how = route::kind::slot;
        r.slot = r.groups.front().slot;
        r.groups.clear();
    }
    return r;
}

// Decimal text of an unsigned 128-bit number.
std::string to_decimal(unsigned __int128 v) {
    std::string out;
    do {
        out.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
        v /= 10;
    } while (v != 0);
    std::reverse(out.begin(), out.end());
    return out;
}

std::optional<unsigned __int128> from_decimal(std::string_view s) {
    if (s.empty() || s.size() > 38) return std::nullopt;
    unsigned __int128 v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v;
}

}  // namespace

route plan(std::span<const std::string_view> args, const command::command_info* info, command::key_set& keys) {
    route r;
    if (args.empty()) return r;
    char buf[32];
    const std::string_view name = name_of(args, info, buf);
    if (answered_here(name)) {
        r.how = route::kind::local;
        r.reply = kClusterDisabled;
        return r;
    }
    for (const fanned& f : kFanout)
        if (f.name == name) {
            r.how = route::kind::fanout;
            r.merged = f.merged;
            return r;
        }
    for (const splittable& s : kSplittable)
        if (s.name == name && args.size() > s.step) return split_by_slot(args, s);
    if (info == nullptr) return r;
    command::catalog::keys(*info, args, keys);
    if (keys.keys.empty()) return r;
    r.how = route::kind::slot;
    r.slot = key_slot(keys.keys.front());
    for (std::string_view k : keys.keys)
        if (key_slot(k) != r.slot) {
            r.how = route::kind::local;
            r.reply = kCrossSlot;
            return r;
        }
    return r;
}

route plan(std::span<const std::string_view> args, const command::command_info* info) {
    command::key_set keys;
    return plan(args, info, keys);
}

std::optional<scan_position> decode_scan_cursor(std::string_view cursor, std::uint16_t masters) {
    auto v = from_decimal(cursor);
    if (!v || masters == 0) return std::nullopt;
    scan_position p;
    p.node = static_cast<std::uint16_t>(*v % masters);
    p.inner = to_decimal(*v / masters);
    return p;
}

std::string encode_scan_cursor(std::string_view inner, std::uint16_t node, std::uint16_t masters) {
    auto v = from_decimal(inner);
    if (!v) return std::string(inner);
    if (*v == 0) return node + 1 < masters ? std::to_string(node + 1) : "0";
    return to_decimal(*v * masters + node);
}

}  // namespace respcache::cluster
