#include <algorithm>
#include <array>
#include <mutex>

#include "respcache/command/catalog.hpp"
#include "respcache/command/handlers.hpp"
#include "respcache/resp/parser.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/server/session.hpp"

namespace respcache::command {

namespace {


// Redis accepts client names and library names of printable ASCII without spaces.
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

void client_list(server::session& s, args_view args) {
    // CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]
    std::string type;
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 2; i < args.size(); ++i) {
        if (iequals(args[i], "type") && i + 1 < args.size()) {
            type = std::string(args[++i]);
            for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (type != "normal" && type != "master" && type != "replica" && type != "slave" && type != "pubsub") {
                s.reply_error("ERR Unknown client type '" + std::string(args[i]) + "'");
                return;
            }
        } else if (iequals(args[i], "id") && i + 1 < args.size()) {
            for (++i; i < args.size(); ++i) {
                std::int64_t id = 0;
                if (!resp::detail::parse_int64(args[i], id) || id <= 0) {
                    s.reply_error("ERR Invalid client ID");
                    return;
                }
                ids.push_back(static_cast<std::uint64_t>(id));
            }
        } else {
            s.reply_error("ERR syntax error");
            return;
        }
    }
    std::string text;
    for (auto& c : s.shared().clients().snapshot()) {
        if (!ids.empty() && std::find(ids.begin(), ids.end(), c->id) == ids.end()) continue;
        const bool pubsub = c->subscriptions.load() + c->shard_subscriptions.load() > 0;
        if (!type.empty()) {
            if (type == "pubsub" && !pubsub) continue;
            if (type == "normal" && pubsub) continue;
            if (type == "master" || type == "replica" || type == "slave") continue;
        }
        text += c->describe();
        text += '\n';
    }
    resp::write_bulk(s.reply(), text);
}

void client_kill(server::session& s, args_view args) {
    auto& registry = s.shared().clients();
    if (args.size() == 3) {
        // The old form: CLIENT KILL addr:port.
        for (auto& c : registry.snapshot()) {
            if (c->addr != args[2]) continue;
            if (c->id == s.id()) {
                s.reply_ok();
                s.quit_silently();
                return;
            }
            c->end();
            s.reply_ok();
            return;
        }
        s.reply_error("ERR No such client");
        return;
    }
    std::optional<std::uint64_t> id;
    std::string addr, laddr, user, type;
    bool skipme = true;
    std::int64_t maxage = 0;
    if (args.size() % 2 != 0) {
        s.reply_error("ERR syntax error");
        return;
    }
    for (std::size_t i = 2; i + 1 < args.size(); i += 2) {
        const std::string_view opt = args[i];
        const std::string_view val = args[i + 1];
        if (iequals(opt, "id")) {
            std::int64_t v = 0;
            if (!resp::detail::parse_int64(val, v) || v <= 0) {
                s.reply_error("ERR client-id should be greater than 0");
                return;
            }
            id = static_cast<std::uint64_t>(v);
        } else if (iequals(opt, "addr")) {
            addr = val;
        } else if (iequals(opt, "laddr")) {
            laddr = val;
        } else if (iequals(opt, "user")) {
            user = val;
        } else if (iequals(opt, "type")) {
            type = val;
            for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (type != "normal" && type != "master" && type != "replica" && type != "slave" && type != "pubsub") {
                s.reply_error("ERR Unknown client type '" + std::string(val) + "'");
                return;
            }
        } else if (iequals(opt, "skipme")) {
            if (iequals(val, "yes")) {
                skipme = true;
            } else if (iequals(val, "no")) {
                skipme = false;
            } else {
                s.reply_error("ERR syntax error");
                return;
            }
        } else if (iequals(opt, "maxage")) {
            if (!resp::detail::parse_int64(val, maxage) || maxage < 0) {
                s.reply_error("ERR syntax error");
                return;
            }
        } else {
            s.reply_error("ERR syntax error");
            return;
        }
    }
    std::int64_t killed = 0;
    bool self = false;
    const auto now = std::chrono::steady_clock::now();
    for (auto& c : registry.snapshot()) {
        if (id && c->id != *id) continue;
        if (!addr.empty() && c->addr != addr) continue;
        if (!laddr.empty() && c->laddr != laddr) continue;
        if (!user.empty()) {
            std::lock_guard guard(c->mu);
            if (c->user != user) continue;
        }
        const bool pubsub = c->subscriptions.load() + c->shard_subscriptions.load() > 0;
        if (type == "pubsub" && !pubsub) continue;
        if (type == "normal" && pubsub) continue;
        if (type == "master" || type == "replica" || type == "slave") continue;
        if (maxage > 0 && std::chrono::duration_cast<std::chrono::seconds>(now - c->created).count() < maxage) continue;
        if (c->id == s.id()) {
            if (skipme) continue;
            self = true;
            ++killed;
            continue;
        }
        c->end();
        ++killed;
    }
    resp::write_integer(s.reply(), killed);
    if (self) s.quit_silently();
}

void client_unblock(server::session& s, args_view args) {
    std::int64_t id = 0;
    if (!resp::detail::parse_int64(args[2], id)) {
        s.reply_error("ERR value is not an integer or out of range");
        return;
    }
    std::string_view mode = "TIMEOUT";
    if (args.size() == 4) {
        if (iequals(args[3], "timeout") || iequals(args[3], "error")) {
            mode = args[3];
        } else {
            s.reply_error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
            return;
        }
    }
    auto target = s.shared().clients().find(static_cast<std::uint64_t>(std::max<std::int64_t>(id, 0)));
    const std::int64_t backend_id = target ? target->blocked_backend_id.load() : 0;
    if (!target || !target->blocked.load() || backend_id == 0) {
        resp::write_integer(s.reply(), 0);
        return;
    }
    // The blocked client waits on a dedicated backend connection: unblock that one.
    const std::string bid = std::to_string(backend_id);
    const std::array<std::string_view, 4> rewritten{"CLIENT", "UNBLOCK", bid, mode};
    s.forward_rewritten(rewritten);
}

struct client_sub {
    std::string_view name;
    int arity;
    void (*fn)(server::session&, args_view);
};

const client_sub kClientSubs[] = {
    {"caching", 3,
     [](server::session& s, args_view) {
         s.reply_error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
     }},
    {"getname", 2,
     [](server::session& s, args_view) {
         std::string name;
         {
             std::lock_guard guard(s.info().mu);
             name = s.info().name;
         }
         if (name.empty())
             resp::write_null(s.reply());
         else
             resp::write_bulk(s.reply(), name);
     }},
    {"getredir", 2, [](server::session& s, args_view) { resp::write_integer(s.reply(), -1); }},
    {"id", 2, [](server::session& s, args_view) { resp::write_integer(s.reply(), static_cast<std::int64_t>(s.id())); }},
    {"info", 2,
     [](server::session& s, args_view) { resp::write_bulk(s.reply(), s.info().describe() + "\n"); }},
    {"kill", -3, client_kill},
    {"list", -2, client_list},
    {"no-evict", 3,
     [](server::session& s, args_view args) {
         bool v = false;
         if (!on_off(args[2], v)) return s.reply_error("ERR syntax error");
         {
             std::lock_guard guard(s.info().mu);
             s.info().no_evict = v;
         }
         s.reply_ok();
     }},
    {"no-touch", 3,
     [](server::session& s, args_view args) {
         bool v = false;
         if (!on_off(args[2], v)) return s.reply_error("ERR syntax error");
         {
             std::lock_guard guard(s.info().mu);
             s.info().no_touch = v;
         }
         s.reply_ok();
     }},
    {"reply", 3, [](server::session& s, args_view args) { s.set_reply_mode(args[2]); }},
    {"setinfo", 4,
     [](server::session& s, args_view args) {
         const bool lib_name = iequals(args[2], "lib-name");
         if (!lib_name && !iequals(args[2], "lib-ver"))
             return s.reply_error("ERR Unrecognized option '" + std::string(args[2]) + "'");
         if (!valid_client_name(args[3]))
             return s.reply_error(std::string("ERR ") + (lib_name ? "lib-name" : "lib-ver") +
                                  " cannot contain spaces, newlines or special characters.");
         {
             std::lock_guard guard(s.info().mu);
             (lib_name ? s.info().lib_name : s.info().lib_ver) = std::string(args[3]);
         }
         s.reply_ok();
     }},
    {"setname", 3,
     [](server::session& s, args_view args) {
         if (!valid_client_name(args[2]))
             return s.reply_error("ERR Client names cannot contain spaces, newlines or special characters.");
         {
             std::lock_guard guard(s.info().mu);
             s.info().name = std::string(args[2]);
         }
         s.reply_ok();
     }},
    {"tracking", -3,
     [](server::session& s, args_view) {
         s.reply_error("ERR CLIENT TRACKING is not supported through respcache: the proxy caches and invalidates for its clients");
     }},
    {"trackinginfo", 2,
     [](server::session& s, args_view) {
         std::string& out = s.reply();
         resp::write_array_header(out, 6);
         resp::write_bulk(out, "flags");
         resp::write_array_header(out, 1);
         resp::write_bulk(out, "off");
         resp::write_bulk(out, "redirect");
         resp::write_integer(out, -1);
         resp::write_bulk(out, "prefixes");
         resp::write_array_header(out, 0);
     }},
    {"unblock", -3, client_unblock},
};

}  // namespace

void ping(server::session& s, args_view args) {
    if (args.size() > 2) return s.reply_error(wrong_arity_error("ping"));
    if (args.size() == 1)
        s.reply().append("+PONG\r\n");
    else
        resp::write_bulk(s.reply(), args[1]);
}

void echo(server::session& s, args_view args) { resp::write_bulk(s.reply(), args[1]); }

void quit(server::session& s, args_view) { s.quit(); }

void select(server::session& s, args_view args) {
    std::int64_t db = 0;
    if (!resp::detail::parse_int64(args[1], db) || db < INT32_MIN || db > INT32_MAX)
        return s.reply_error("ERR value is not an integer or out of range");
    const auto facts = s.shared().facts();
    if (db < 0 || (facts.databases_known && db >= static_cast<std::int64_t>(facts.databases)))
        return s.reply_error("ERR DB index is out of range");
    if (!facts.databases_known) return s.select_via_backend(static_cast<std::uint32_t>(db));
    s.set_db(static_cast<std::uint32_t>(db));
    s.reply_ok();
}

void auth(server::session& s, args_view args) {
    if (args.size() > 3) return s.reply_error("ERR syntax error");
    if (s.shared().live().password_required.load()) {
        // --requirepass: the proxy is the one asking for a password.
        const std::string_view user = args.size() == 3 ? args[1] : "default";
        if (s.authenticate_locally(user, args.back())) return s.reply_ok();
        return s.reply_error("WRONGPASS invalid username-password pair or user is disabled.");
    }
    s.authenticate(args, std::string(), false);
}

void hello(server::session& s, args_view args) {
    std::size_t i = 1;
    if (args.size() >= 2) {
        std::int64_t version = 0;
        if (!resp::detail::parse_int64(args[1], version) || version < INT32_MIN || version > INT32_MAX)
            return s.reply_error("ERR Protocol version is not an integer or out of range");
        // respcache speaks RESP2 only: clients asking for RESP3 fall back to RESP2 on this answer.
        if (version != 2) return s.reply_error("NOPROTO unsupported protocol version");
        i = 2;
    }
    std::array<std::string_view, 3> auth_args{"AUTH", {}, {}};
    bool with_auth = false;
    std::string name;
    bool with_name = false;
    for (; i < args.size(); ++i) {
        const std::size_t more = args.size() - i - 1;
        if (iequals(args[i], "auth") && more >= 2) {
            auth_args[1] = args[i + 1];
            auth_args[2] = args[i + 2];
            with_auth = true;
            i += 2;
        } else if (iequals(args[i], "setname") && more >= 1) {
            name = std::string(args[i + 1]);
            with_name = true;
            i += 1;
        } else {
            return s.reply_error("ERR Syntax error in HELLO option '" + std::string(args[i]) + "'");
        }
    }
    if (with_name && !valid_client_name(name))
        return s.reply_error("ERR Client names cannot contain spaces, newlines or special characters.");
    if (with_auth && s.shared().live().password_required.load()) {
        if (!s.authenticate_locally(auth_args[1], auth_args[2]))
            return s.reply_error("WRONGPASS invalid username-password pair or user is disabled.");
        with_auth = false;
    } else if (with_auth) {
        s.authenticate(auth_args, name, true);
        return;
    }
    if (!s.authenticated())
        return s.reply_error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH "
            "<user> <pass> option can be used to authenticate the client and select the RESP protocol version at "
            "the same time");
    if (with_name) {
        std::lock_guard guard(s.info().mu);
        s.info().name = name;
    }
    s.reply().append(hello_reply(s));
}

std::string hello_reply(server::session& s) {
    const auto facts = s.shared().facts();
    std::string out;
    resp::write_array_header(out, 14);
    resp::write_bulk(out, "server");
    resp::write_bulk(out, "redis");
    resp::write_bulk(out, "version");
    resp::write_bulk(out, facts.version.empty() ? std::string("unknown") : facts.version);
    resp::write_bulk(out, "proto");
    resp::write_integer(out, 2);
    resp::write_bulk(out, "id");
    resp::write_integer(out, static_cast<std::int64_t>(s.id()));
    resp::write_bulk(out, "mode");
    resp::write_bulk(out, "standalone");
    resp::write_bulk(out, "role");
    resp::write_bulk(out, "master");
    resp::write_bulk(out, "modules");
    resp::write_array_header(out, 0);
    return out;
}

void reset(server::session& s, args_view) { s.reset(); }

void client(server::session& s, args_view args) {
    char buf[16];
    const std::string_view sub = to_lower(args[1], buf);
    for (const auto& row : kClientSubs) {
        if (row.name != sub) continue;
        if (!arity_ok(row.arity, args.size())) return s.reply_error(wrong_arity_error("client|" + std::string(sub)));
        row.fn(s, args);
        return;
    }
    // PAUSE, UNPAUSE, HELP and whatever a newer Redis adds: the backend answers.
    if (iequals(sub, "pause") || iequals(sub, "unpause") || iequals(sub, "help")) return s.forward(args);
    s.reply_error(unknown_subcommand_error(args[1], "client"));
}

}  // namespace respcache::command
