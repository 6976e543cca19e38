#include "respcache/command/cache_plan.hpp"

#include <algorithm>
#include <array>
#include <mutex>

#include "respcache/resp/reply_view.hpp"
#include "respcache/util/stats.hpp"

namespace respcache::command {

namespace {

// Read-only commands with one key whose reply is not a function of that key's value alone.
constexpr std::string_view kNeverByDefault[] = {
    "memory|usage",  // the allocator's figures
    "object",        // container: its subcommands describe the encoding and the access history
    "xinfo",         // idem for streams (consumers' idle times, lag)
    "touch",         // what it is for is reaching Redis
    "lolwut",        // keyless art
    "sort_ro",       // BY and GET read other keys
};

bool never_by_default(std::string_view name) {
    const std::string_view container = name.substr(0, name.find('|'));
    return std::any_of(std::begin(kNeverByDefault), std::end(kNeverByDefault),
                       [&](std::string_view n) { return n == name || n == container; });
}

// One key found by `spec`: from an index, up to that index (lastkey 0) or to the last argument (-1,
// cached only when that is the same argument).
bool one_key(const key_spec& spec) {
    return spec.begin_kind == key_spec::begin::index && spec.index >= 1 && spec.find_kind == key_spec::find::range &&
           (spec.last_key == 0 || (spec.last_key == -1 && spec.limit <= 1)) && !spec.incomplete;
}

// Any reply but an error (a WRONGTYPE, say, is not worth keeping), a push or an attribute, no longer than
// --max-value-size.
bool keeps_reply(std::string_view reply, std::size_t max_value) {
    if (reply.empty() || reply.size() > max_value) return false;
    return reply[0] != '-' && reply[0] != '!' && reply[0] != '>' && reply[0] != '|';
}

std::optional<read_policy> policy_for(const command_info& info) {
    if (info.key_specs.size() != 1 || !one_key(info.key_specs[0])) return std::nullopt;
    const key_spec& spec = info.key_specs[0];
    if (spec.index > 255) return std::nullopt;
    read_policy p;
    p.key_index = static_cast<std::uint8_t>(spec.index);
    p.shape = read_policy::form::reply;
    p.key_last = spec.last_key == -1;
    p.stat = static_cast<std::uint16_t>(stat_slot(info.name));
    p.keeps = keeps_reply;
    return p;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    return out;
}

void append_length(std::string& out, std::size_t n) {
    // LEB128: one byte for lengths below 128.
    do {
        auto b = static_cast<unsigned char>(n & 0x7F);
        n >>= 7;
        if (n != 0) b |= 0x80;
        out.push_back(static_cast<char>(b));
    } while (n != 0);
}

}  // namespace

std::optional<cache_commands> cache_commands::parse(std::string_view text, std::string& error) {
    cache_commands out;
    out.defaults = false;
    std::size_t at = 0;
    bool any = false;
    while (at <= text.size()) {
        std::size_t comma = text.find(',', at);
        if (comma == std::string_view::npos) comma = text.size();
        std::string_view item = trim(text.substr(at, comma - at));
        at = comma + 1;
        if (item.empty()) {
            error = "an empty name in the list";
            return std::nullopt;
        }
        char sign = '+';
        if (item[0] == '+' || item[0] == '-') {
            sign = item[0];
            item = trim(item.substr(1));
        }
        std::string name = lower(item);
        const bool valid = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '|' || c == '.' || c == '-' || c == ':';
        });
        if (!valid) {
            error = "'" + std::string(item) + "' is not a command name";
            return std::nullopt;
        }
        any = true;
        if (name == "default") {
            if (sign == '-') {
                error = "'-default' means nothing: leave 'default' out";
                return std::nullopt;
            }
            out.defaults = true;
        } else {
            (sign == '-' ? out.removed : out.added).push_back(std::move(name));
        }
        if (comma == text.size()) break;
    }
    if (!any) {
        error = "no command named";
        return std::nullopt;
    }
    if (!out.defaults && !out.removed.empty()) {
        error = "'-name' takes a name from the default set: begin the list with 'default'";
        return std::nullopt;
    }
    return out;
}

std::string cache_commands::to_string() const {
    std::string out = defaults ? "default" : "";
    for (const auto& n : added) out += (out.empty() ? "" : ",") + (defaults ? "+" + n : n);
    for (const auto& n : removed) out += (out.empty() ? "-" : ",-") + n;
    return out;
}

// What --cache-commands may add: any read of one key, whatever its output depends on; never a write.
bool cacheable_if_asked(const command_info& info) {
    if (!info.has(flag_readonly) || info.has(flag_write)) return false;
    if (info.has(flag_blocking) || info.has(flag_pubsub) || info.has(flag_movablekeys) || info.has(flag_noscript))
        return false;
    return info.key_specs.size() == 1 && info.key_specs[0].read_only && policy_for(info).has_value();
}

bool cacheable_by_default(const command_info& info) {
    return !info.nondeterministic && !never_by_default(info.name) && cacheable_if_asked(info);
}

std::shared_ptr<const cache_plan> cache_plan::build(std::shared_ptr<const catalog> cat, const cache_commands& spec) {
    auto plan = std::make_shared<cache_plan>();
    plan->catalog_ = std::move(cat);
    auto wanted = [&](std::string_view name, bool by_default) {
        if (std::find(spec.removed.begin(), spec.removed.end(), name) != spec.removed.end()) return false;
        if (std::find(spec.added.begin(), spec.added.end(), name) != spec.added.end()) return true;
        return spec.defaults && by_default;
    };
    plan->get_ = wanted("get", true);
    plan->mget_ = wanted("mget", true);
    if (plan->get_) plan->names_.emplace_back("get");
    if (plan->mget_) plan->names_.emplace_back("mget");
    if (plan->catalog_ != nullptr) {
        plan->catalog_->for_each([&](const command_info& info) {
            if (info.name == "get" || info.name == "mget") return;
            if (!wanted(info.name, cacheable_by_default(info)) || !cacheable_if_asked(info)) return;
            if (auto p = policy_for(info)) {
                plan->policies_.emplace(&info, *p);
                plan->names_.push_back(info.name);
            }
        });
    }
    for (const auto& n : spec.added)
        if (std::find(plan->names_.begin(), plan->names_.end(), n) == plan->names_.end()) plan->refused_.push_back(n);
    std::sort(plan->names_.begin(), plan->names_.end());
    return plan;
}

const read_policy* cache_plan::find(const command_info* info) const noexcept {
    if (info == nullptr || policies_.empty()) return nullptr;
    auto it = policies_.find(info);
    return it == policies_.end() ? nullptr : &it->second;
}

void reply_variant(resp::protocol proto, std::string_view name, args_view args, std::size_t key_index,
                   std::string& out) {
    out.clear();
    out.push_back(static_cast<char>(proto));
    append_length(out, name.size());
    out.append(name);
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (i == key_index) continue;
        append_length(out, args[i].size());
        out.append(args[i]);
    }
}

std::string user_partition(std::string_view user) {
    std::string out("U");
    append_length(out, user.size());
    out.append(user);
    return out;
}

namespace {
// Reads one length-prefixed piece of a variant (see append_length); false at the end or if malformed.
bool next_piece(std::string_view& in, std::string_view& piece) {
    std::size_t len = 0;
    for (int shift = 0;; shift += 7) {
        if (in.empty() || shift > 28) return false;
        const auto b = static_cast<unsigned char>(in.front());
        in.remove_prefix(1);
        len |= static_cast<std::size_t>(b & 0x7F) << shift;
        if ((b & 0x80) == 0) break;
    }
    if (len > in.size()) return false;
    piece = in.substr(0, len);
    in.remove_prefix(len);
    return true;
}
}  // namespace

std::optional<entry_read> read_of_entry(const cache_plan& plan, std::string_view name, std::string_view variant) {
    entry_read out;
    if (variant.empty()) {
        if (!plan.caches_get() && !plan.caches_mget()) return std::nullopt;
        out.args = {"GET", std::string(name)};
        return out;
    }
    const auto proto = static_cast<resp::protocol>(variant.front());
    if (proto != resp::protocol::resp2 && proto != resp::protocol::resp3) return std::nullopt;
    out.proto = proto;
    variant.remove_prefix(1);
    std::string_view command;
    if (!next_piece(variant, command) || command.empty()) return std::nullopt;
    std::vector<std::string_view> args{command.substr(0, command.find('|'))};
    for (std::string_view piece; !variant.empty();) {
        if (!next_piece(variant, piece)) return std::nullopt;
        args.push_back(piece);
    }
    const command_info* info = plan.table() != nullptr ? plan.table()->find(args) : nullptr;
    const read_policy* policy = plan.find(info);
    if (policy == nullptr || info->name != command || policy->key_index > args.size()) return std::nullopt;
    args.insert(args.begin() + policy->key_index, name);
    for (auto a : args) out.args.emplace_back(a);
    return out;
}

namespace {
constexpr std::size_t kSlots = kCachedCommandSlots;

struct slot_registry {
    std::mutex mu;
    std::array<std::string, kSlots> names;  // GUARDED_BY(mu)
    std::size_t used = 3;                   // GUARDED_BY(mu)
    slot_registry() {
        names[0] = "other";
        names[1] = "get";
        names[2] = "mget";
    }
};

slot_registry& registry() {
    static slot_registry r;
    return r;
}
}  // namespace

std::size_t stat_slot(std::string_view name) {
    slot_registry& r = registry();
    std::lock_guard guard(r.mu);
    for (std::size_t i = 1; i < r.used; ++i)
        if (r.names[i] == name) return i;
    if (r.used == kSlots) return 0;
    r.names[r.used] = std::string(name);
    return r.used++;
}

std::string stat_name(std::size_t i) {
    slot_registry& r = registry();
    std::lock_guard guard(r.mu);
    return i < kSlots ? r.names[i] : std::string();
}

}  // namespace respcache::command
