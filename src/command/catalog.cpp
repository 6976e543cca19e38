#include "respcache/command/catalog.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "respcache/util/ascii.hpp"

namespace respcache::command {


namespace {

struct reply_deleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// Decodes one reply with hiredis's reader. The control replies read here (COMMAND) nest at most 8
// levels, which Debian's hiredis handles; the data path never decodes replies, it only frames them.
reply_ptr decode(std::string_view bytes) {
    redisReader* reader = redisReaderCreate();
    if (reader == nullptr) return nullptr;
    reader->maxbuf = 0;
    void* out = nullptr;
    reply_ptr result;
    if (redisReaderFeed(reader, bytes.data(), bytes.size()) == REDIS_OK &&
        redisReaderGetReply(reader, &out) == REDIS_OK && out != nullptr)
        result.reset(static_cast<redisReply*>(out));
    redisReaderFree(reader);
    return result;
}

std::string_view text(const redisReply* r) {
    if (r == nullptr) return {};
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) return {r->str, r->len};
    return {};
}

std::string lowered(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// The value under `name` in a RESP2-encoded map (a flat array of name, value, name, value...).
const redisReply* map_get(const redisReply* map, std::string_view name) {
    if (map == nullptr || map->type != REDIS_REPLY_ARRAY) return nullptr;
    for (std::size_t i = 0; i + 1 < map->elements; i += 2)
        if (text(map->element[i]) == name) return map->element[i + 1];
    return nullptr;
}

int map_int(const redisReply* map, std::string_view name, int fallback) {
    const redisReply* v = map_get(map, name);
    return (v != nullptr && v->type == REDIS_REPLY_INTEGER) ? static_cast<int>(v->integer) : fallback;
}

std::uint32_t parse_flags(const redisReply* flags) {
    static const std::pair<std::string_view, std::uint32_t> names[] = {
        {"readonly", flag_readonly},   {"write", flag_write},           {"blocking", flag_blocking},
        {"pubsub", flag_pubsub},       {"movablekeys", flag_movablekeys}, {"may_replicate", flag_may_replicate},
        {"admin", flag_admin},         {"noscript", flag_noscript},     {"fast", flag_fast},
    };
    std::uint32_t out = 0;
    if (flags == nullptr || flags->type != REDIS_REPLY_ARRAY) return out;
    for (std::size_t i = 0; i < flags->elements; ++i) {
        auto name = text(flags->element[i]);
        for (auto& [n, f] : names)
            if (name == n) out |= f;
    }
    return out;
}

key_spec parse_key_spec(const redisReply* spec) {
    key_spec out;
    if (const redisReply* flags = map_get(spec, "flags"); flags != nullptr && flags->type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i < flags->elements; ++i) {
            if (text(flags->element[i]) == "incomplete")
                out.incomplete = true;
            else if (text(flags->element[i]) == "RO")
                out.read_only = true;
        }
    }
    const redisReply* begin = map_get(spec, "begin_search");
    const std::string_view begin_type = text(map_get(begin, "type"));
    const redisReply* begin_spec = map_get(begin, "spec");
    if (begin_type == "index") {
        out.begin_kind = key_spec::begin::index;
        out.index = map_int(begin_spec, "index", 0);
    } else if (begin_type == "keyword") {
        out.begin_kind = key_spec::begin::keyword;
        out.keyword = lowered(text(map_get(begin_spec, "keyword")));
        out.start_from = map_int(begin_spec, "startfrom", 1);
    }
    const redisReply* find = map_get(spec, "find_keys");
    const std::string_view find_type = text(map_get(find, "type"));
    const redisReply* find_spec = map_get(find, "spec");
    if (find_type == "range") {
        out.find_kind = key_spec::find::range;
        out.last_key = map_int(find_spec, "lastkey", 0);
        out.key_step = map_int(find_spec, "keystep", 1);
        out.limit = map_int(find_spec, "limit", 0);
    } else if (find_type == "keynum") {
        out.find_kind = key_spec::find::keynum;
        out.keynum_index = map_int(find_spec, "keynumidx", 0);
        out.first_key = map_int(find_spec, "firstkey", 1);
        out.key_step = map_int(find_spec, "keystep", 1);
    }
    if (out.key_step <= 0) out.key_step = 1;
    return out;
}

std::optional<command_info> parse_entry(const redisReply* e) {
    if (e == nullptr || e->type != REDIS_REPLY_ARRAY || e->elements < 6) return std::nullopt;
    command_info info;
    info.name = lowered(text(e->element[0]));
    if (info.name.empty() || e->element[1]->type != REDIS_REPLY_INTEGER) return std::nullopt;
    info.arity = static_cast<int>(e->element[1]->integer);
    info.flags = parse_flags(e->element[2]);
    auto as_int = [](const redisReply* r) { return r->type == REDIS_REPLY_INTEGER ? static_cast<int>(r->integer) : 0; };
    info.first_key = as_int(e->element[3]);
    info.last_key = as_int(e->element[4]);
    info.key_step = as_int(e->element[5]);
    if (e->elements > 7 && e->element[7]->type == REDIS_REPLY_ARRAY)
        for (std::size_t i = 0; i < e->element[7]->elements; ++i)
            if (text(e->element[7]->element[i]) == "nondeterministic_output") info.nondeterministic = true;
    if (e->elements > 8 && e->element[8]->type == REDIS_REPLY_ARRAY)
        for (std::size_t i = 0; i < e->element[8]->elements; ++i)
            info.key_specs.push_back(parse_key_spec(e->element[8]->element[i]));
    if (e->elements > 9 && e->element[9]->type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i < e->element[9]->elements; ++i) {
            auto sub = parse_entry(e->element[9]->element[i]);
            if (!sub) continue;
            auto bar = sub->name.find('|');
            std::string key = bar == std::string::npos ? sub->name : sub->name.substr(bar + 1);
            info.subcommands.emplace(std::move(key), std::move(*sub));
        }
    }
    return info;
}


// Adds the keys `spec` designates in `args`; returns false when the arguments do not match the spec.
bool keys_by_spec(const key_spec& spec, std::span<const std::string_view> args, key_set& out) {
    const int argc = static_cast<int>(args.size());
    int first = 0;
    switch (spec.begin_kind) {
        case key_spec::begin::index:
            first = spec.index;
            break;
        case key_spec::begin::keyword: {
            int found = -1;
            if (spec.start_from >= 0) {
                for (int i = spec.start_from; i < argc; ++i)
                    if (iequals(args[i], spec.keyword)) {
                        found = i;
                        break;
                    }
            } else {
                for (int i = argc + spec.start_from; i >= 1; --i)
                    if (iequals(args[i], spec.keyword)) {
                        found = i;
                        break;
                    }
            }
            if (found < 0) return true;  // the optional keyword is absent: no keys from this spec
            first = found + 1;
            break;
        }
        case key_spec::begin::unknown:
            out.complete = false;
            return true;
    }
    int last = 0;
    int step = spec.key_step;
    switch (spec.find_kind) {
        case key_spec::find::range:
            if (spec.last_key >= 0)
                last = first + spec.last_key;
            else if (spec.limit <= 1)
                last = argc + spec.last_key;
            else
                last = first + ((argc - first) / spec.limit + spec.last_key);
            break;
        case key_spec::find::keynum: {
            const int idx = first + spec.keynum_index;
            if (idx >= argc) return false;
            std::int64_t numkeys = 0;
            if (!util::parse_int64(args[idx], numkeys) || numkeys < 0 || numkeys > argc) return false;
            first += spec.first_key;
            last = first + static_cast<int>(numkeys - 1) * step;
            break;
        }
        case key_spec::find::unknown:
            out.complete = false;
            return true;
    }
    for (int i = first; i <= last; i += step) {
        if (i < 1 || i >= argc) return false;
        out.keys.push_back(args[i]);
    }
    return true;
}

}  // namespace

std::shared_ptr<const catalog> catalog::from_reply(std::string_view command_reply) {
    reply_ptr reply = decode(command_reply);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) return nullptr;
    auto out = std::make_shared<catalog>();
    for (std::size_t i = 0; i < reply->elements; ++i) {
        auto info = parse_entry(reply->element[i]);
        if (info) out->commands_.emplace(info->name, std::move(*info));
    }
    if (out->commands_.empty()) return nullptr;
    return out;
}

const command_info* catalog::find(std::span<const std::string_view> args) const {
    if (args.empty()) return nullptr;
    char buf[64];
    auto it = commands_.find(to_lower(args[0], buf));
    if (it == commands_.end()) return nullptr;
    const command_info& info = it->second;
    if (!info.subcommands.empty() && args.size() >= 2) {
        auto sub = info.subcommands.find(to_lower(args[1], buf));
        if (sub != info.subcommands.end()) return &sub->second;
    }
    return &info;
}

key_set catalog::keys(const command_info& info, std::span<const std::string_view> args) {
    key_set out;
    keys(info, args, out);
    return out;
}

void catalog::keys(const command_info& info, std::span<const std::string_view> args, key_set& out) {
    out.keys.clear();
    out.complete = true;
    if (!info.key_specs.empty()) {
        for (const auto& spec : info.key_specs) {
            if (spec.incomplete) out.complete = false;
            if (!keys_by_spec(spec, args, out)) out.complete = false;
        }
        return;
    }
    // Before Redis 7: the legacy first/last/step triple, and nothing to go on for movable keys.
    if (info.has(flag_movablekeys)) out.complete = false;
    if (info.first_key > 0) {
        const int argc = static_cast<int>(args.size());
        int last = info.last_key < 0 ? argc + info.last_key : info.last_key;
        int step = info.key_step > 0 ? info.key_step : 1;
        for (int i = info.first_key; i <= last && i < argc; i += step) out.keys.push_back(args[i]);
    }
}

}  // namespace respcache::command
