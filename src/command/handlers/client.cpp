#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <vector>

#include "respcache/command/handlers/handlers.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::command {

using util::iequals;

namespace {

bool valid_client_name(std::string_view name) {
    return std::all_of(name.begin(), name.end(), [](char c) { return c >= '!' && c <= '~'; });
}

bool on_off(std::string_view v, bool& out) {
    if (iequals(v, "on")) {
        out = true;
        return true;
    }
    if (iequals(v, "off")) {
        out = false;
        return true;
    }
    return false;
}

// A client type of CLIENT LIST/KILL TYPE, lower-cased; false (after answering) when Redis knows none.
bool read_type(context& c, std::string_view arg, std::string& type) {
    type = std::string(arg);
    for (char& ch : type) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (type == "normal" || type == "master" || type == "replica" || type == "slave" || type == "pubsub") return true;
    c.reply().error("ERR Unknown client type '" + std::string(arg) + "'");
    return false;
}

// Whether a client of the proxy is of `type` (empty: any). The proxy has no masters or replicas.
bool of_type(const client_info& ci, const std::string& type) {
    const bool pubsub = ci.subscriptions.load() + ci.shard_subscriptions.load() > 0;
    if (type.empty()) return true;
    if (type == "pubsub") return pubsub;
    if (type == "normal") return !pubsub;
    return false;
}

void client_list(context& c, args_view args) {
    // CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]
    std::string type;
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 2; i < args.size(); ++i) {
        if (iequals(args[i], "type") && i + 1 < args.size()) {
            if (!read_type(c, args[++i], type)) return;
        } else if (iequals(args[i], "id") && i + 1 < args.size()) {
            for (++i; i < args.size(); ++i) {
                std::int64_t id = 0;
                if (!util::parse_int64(args[i], id) || id <= 0) return c.reply().error("ERR Invalid client ID");
                ids.push_back(static_cast<std::uint64_t>(id));
            }
        } else {
            return c.reply().error("ERR syntax error");
        }
    }
    std::string text;
    for (auto& other : c.clients().snapshot()) {
        if (!ids.empty() && std::find(ids.begin(), ids.end(), other->id) == ids.end()) continue;
        if (!of_type(*other, type)) continue;
        text += other->describe();
        text += '\n';
    }
    c.reply().verbatim(text);
}

// CLIENT KILL's filters (the new form: pairs of option and value).
struct kill_filter {
    std::optional<std::uint64_t> id;
    std::string addr, laddr, user, type;
    bool skipme = true;
    std::int64_t maxage = 0;

    bool matches(const client_info& ci, std::chrono::steady_clock::time_point now) const {
        if (id && ci.id != *id) return false;
        if (!addr.empty() && ci.addr != addr) return false;
        if (!laddr.empty() && ci.laddr != laddr) return false;
        if (!user.empty()) {
            std::lock_guard guard(ci.mu);
            if (ci.user != user) return false;
        }
        if (!of_type(ci, type)) return false;
        return maxage <= 0 || std::chrono::duration_cast<std::chrono::seconds>(now - ci.created).count() >= maxage;
    }
};

// Reads one option of CLIENT KILL into `f`; false (after answering Redis's error) when it is bad.
bool read_kill_option(context& c, std::string_view opt, std::string_view val, kill_filter& f) {
    if (iequals(opt, "id")) {
        std::int64_t v = 0;
        if (!util::parse_int64(val, v) || v <= 0) {
            c.reply().error("ERR client-id should be greater than 0");
            return false;
        }
        f.id = static_cast<std::uint64_t>(v);
    } else if (iequals(opt, "addr")) {
        f.addr = val;
    } else if (iequals(opt, "laddr")) {
        f.laddr = val;
    } else if (iequals(opt, "user")) {
        f.user = val;
    } else if (iequals(opt, "type")) {
        return read_type(c, val, f.type);
    } else if (iequals(opt, "skipme") && (iequals(val, "yes") || iequals(val, "no"))) {
        f.skipme = iequals(val, "yes");
    } else if (iequals(opt, "maxage") && util::parse_int64(val, f.maxage) && f.maxage >= 0) {
    } else {
        c.reply().error("ERR syntax error");
        return false;
    }
    return true;
}

void client_kill_addr(context& c, std::string_view addr) {
    // The old form: CLIENT KILL addr:port.
    for (auto& other : c.clients().snapshot()) {
        if (other->addr != addr) continue;
        c.reply().ok();
        if (other->id == c.client().id)
            c.quit(false);
        else
            other->end();
        return;
    }
    c.reply().error("ERR No such client");
}

void client_kill(context& c, args_view args) {
    if (args.size() == 3) return client_kill_addr(c, args[2]);
    if (args.size() % 2 != 0) return c.reply().error("ERR syntax error");
    kill_filter f;
    for (std::size_t i = 2; i + 1 < args.size(); i += 2)
        if (!read_kill_option(c, args[i], args[i + 1], f)) return;
    std::int64_t killed = 0;
    bool self = false;
    const auto now = std::chrono::steady_clock::now();
    for (auto& other : c.clients().snapshot()) {
        if (!f.matches(*other, now)) continue;
        if (other->id == c.client().id) {
            if (f.skipme) continue;
            self = true;
        } else {
            other->end();
        }
        ++killed;
    }
    c.reply().integer(killed);
    if (self) c.quit(false);
}

void client_unblock(context& c, args_view args) {
    std::int64_t id = 0;
    if (!util::parse_int64(args[2], id)) return c.reply().error("ERR value is not an integer or out of range");
    std::string_view mode = "TIMEOUT";
    if (args.size() == 4) {
        if (!iequals(args[3], "timeout") && !iequals(args[3], "error"))
            return c.reply().error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        mode = args[3];
    }
    auto target = c.clients().find(static_cast<std::uint64_t>(std::max<std::int64_t>(id, 0)));
    const std::int64_t backend_id = target ? target->blocked_backend_id.load() : 0;
    if (!target || !target->blocked.load() || backend_id == 0) return c.reply().integer(0);
    // The blocked client waits on a dedicated backend connection: unblock that one.
    const std::string bid = std::to_string(backend_id);
    const std::array<std::string_view, 4> rewritten{"CLIENT", "UNBLOCK", bid, mode};
    c.forward_rewritten(rewritten);
}

void client_getname(context& c, args_view) {
    std::string name;
    {
        std::lock_guard guard(c.client().mu);
        name = c.client().name;
    }
    if (name.empty())
        c.reply().null();
    else
        c.reply().bulk(name);
}

// CLIENT NO-EVICT and NO-TOUCH: recorded (CLIENT LIST shows them), nothing else changes.
void client_flag(context& c, args_view args) {
    bool v = false;
    if (!on_off(args[2], v)) return c.reply().error("ERR syntax error");
    {
        std::lock_guard guard(c.client().mu);
        (iequals(args[1], "no-evict") ? c.client().no_evict : c.client().no_touch) = v;
    }
    c.reply().ok();
}

void client_reply(context& c, args_view args) {
    if (iequals(args[2], "on")) return c.set_reply_mode(reply_mode::on);
    if (iequals(args[2], "off")) return c.set_reply_mode(reply_mode::off);
    if (iequals(args[2], "skip")) return c.set_reply_mode(reply_mode::skip);
    c.reply().error("ERR syntax error");
}

void client_setinfo(context& c, args_view args) {
    const bool lib_name = iequals(args[2], "lib-name");
    if (!lib_name && !iequals(args[2], "lib-ver"))
        return c.reply().error("ERR Unrecognized option '" + std::string(args[2]) + "'");
    if (!valid_client_name(args[3]))
        return c.reply().error(std::string("ERR ") + (lib_name ? "lib-name" : "lib-ver") +
                               " cannot contain spaces, newlines or special characters.");
    {
        std::lock_guard guard(c.client().mu);
        (lib_name ? c.client().lib_name : c.client().lib_ver) = std::string(args[3]);
    }
    c.reply().ok();
}

void client_setname(context& c, args_view args) {
    if (!valid_client_name(args[2]))
        return c.reply().error("ERR Client names cannot contain spaces, newlines or special characters.");
    {
        std::lock_guard guard(c.client().mu);
        c.client().name = std::string(args[2]);
    }
    c.reply().ok();
}

struct client_sub {
    std::string_view name;
    int arity;
    handler fn;
};

const client_sub kClientSubs[] = {
    {"caching", 3, client_caching},
    {"getname", 2, client_getname},
    {"getredir", 2, client_getredir},
    {"id", 2, [](context& c, args_view) { c.reply().integer(static_cast<std::int64_t>(c.client().id)); }},
    {"info", 2, [](context& c, args_view) { c.reply().verbatim(c.client().describe() + "\n"); }},
    {"kill", -3, client_kill},
    {"list", -2, client_list},
    {"no-evict", 3, client_flag},
    {"no-touch", 3, client_flag},
    {"reply", 3, client_reply},
    {"setinfo", 4, client_setinfo},
    {"setname", 3, client_setname},
    {"tracking", -3, client_tracking},
    {"trackinginfo", 2, client_trackinginfo},
    {"unblock", -3, client_unblock},
};

}  // namespace

void client(context& c, args_view args) {
    char buf[16];
    const std::string_view sub = util::to_lower(args[1], buf);
    for (const auto& row : kClientSubs) {
        if (row.name != sub) continue;
        if (!arity_ok(row.arity, args.size())) return c.reply().error(wrong_arity_error("client|" + std::string(sub)));
        row.fn(c, args);
        return;
    }
    // PAUSE, UNPAUSE, HELP and whatever a newer Redis adds: the backend answers.
    if (iequals(sub, "pause") || iequals(sub, "unpause") || iequals(sub, "help")) return c.forward(args);
    c.reply().error(unknown_subcommand_error(args[1], "client"));
}

}  // namespace respcache::command
