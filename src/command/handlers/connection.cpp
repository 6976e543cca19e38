#include <array>

#include "respcache/command/handlers/handlers.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::command {

using util::iequals;

namespace {
// Redis accepts client names of printable ASCII without spaces.
bool valid_client_name(std::string_view name) {
    for (char ch : name)
        if (ch < '!' || ch > '~') return false;
    return true;
}

constexpr std::string_view kWrongPass = "WRONGPASS invalid username-password pair or user is disabled.";

// HELLO's options after the protocol version: AUTH user pass, SETNAME name.
struct hello_options {
    std::array<std::string_view, 3> auth{"AUTH", {}, {}};
    bool with_auth = false;
    std::string name;
    bool with_name = false;
};

// Reads HELLO's options from args[i..]; on a bad one, answers Redis's error and returns false.
bool read_hello_options(context& c, args_view args, std::size_t i, hello_options& o) {
    for (; i < args.size(); ++i) {
        const std::size_t more = args.size() - i - 1;
        if (iequals(args[i], "auth") && more >= 2) {
            o.auth[1] = args[i + 1];
            o.auth[2] = args[i + 2];
            o.with_auth = true;
            i += 2;
        } else if (iequals(args[i], "setname") && more >= 1) {
            o.name = std::string(args[i + 1]);
            o.with_name = true;
            i += 1;
        } else {
            c.reply().error("ERR Syntax error in HELLO option '" + std::string(args[i]) + "'");
            return false;
        }
    }
    if (o.with_name && !valid_client_name(o.name)) {
        c.reply().error("ERR Client names cannot contain spaces, newlines or special characters.");
        return false;
    }
    return true;
}
}  // namespace

void ping(context& c, args_view args) {
    if (args.size() > 2) return c.reply().error(wrong_arity_error("ping"));
    // Answered here, unless Redis has just answered -BUSY: then Redis answers, as it would a direct
    // client (-BUSY while the script runs; its PONG after ends the forwarding).
    if (c.backend_busy()) return c.forward(args);
    if (args.size() == 1)
        c.reply().simple("PONG");
    else
        c.reply().bulk(args[1]);
}

void echo(context& c, args_view args) { c.reply().bulk(args[1]); }

void quit(context& c, args_view) { c.quit(true); }

void select(context& c, args_view args) {
    std::int64_t db = 0;
    if (!util::parse_int64(args[1], db) || db < INT32_MIN || db > INT32_MAX)
        return c.reply().error("ERR value is not an integer or out of range");
    const auto facts = c.facts();
    if (facts.cluster && db != 0) return c.reply().error("ERR SELECT is not allowed in cluster mode");
    if (db < 0 || (facts.databases_known && db >= static_cast<std::int64_t>(facts.databases)))
        return c.reply().error("ERR DB index is out of range");
    if (!facts.databases_known) return c.select_via_backend(static_cast<std::uint32_t>(db));
    c.select(static_cast<std::uint32_t>(db));
    c.reply().ok();
}

void auth(context& c, args_view args) {
    if (args.size() > 3) return c.reply().error("ERR syntax error");
    if (c.password_required()) {
        // --requirepass: the proxy is the one asking for a password.
        const std::string_view user = args.size() == 3 ? args[1] : "default";
        if (c.log_in_locally(user, args.back())) return c.reply().ok();
        return c.reply().error(kWrongPass);
    }
    c.log_in_via_backend(args, nullptr);
}

void hello(context& c, args_view args) {
    std::size_t i = 1;
    std::int64_t version = 0;
    if (args.size() >= 2) {
        if (!util::parse_int64(args[1], version) || version < INT32_MIN || version > INT32_MAX)
            return c.reply().error("ERR Protocol version is not an integer or out of range");
        if (version < 2 || version > 3) return c.reply().error("NOPROTO unsupported protocol version");
        i = 2;
    }
    hello_options o;
    if (!read_hello_options(c, args, i, o)) return;
    if (o.with_auth && c.password_required()) {
        if (!c.log_in_locally(o.auth[1], o.auth[2])) return c.reply().error(kWrongPass);
    } else if (o.with_auth) {
        const hello_request wish{static_cast<int>(version), o.name};
        return c.log_in_via_backend(o.auth, &wish);
    }
    if (!c.authenticated())
        return c.reply().error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
            "<user> <pass> option can be used to authenticate the client and select the RESP protocol version at "
            "the same time");
    if (o.with_name) {
        std::lock_guard guard(c.client().mu);
        c.client().name = o.name;
    }
    if (version != 0) c.set_protocol(static_cast<resp::protocol>(version));  // the map is in the new one
    hello_reply(c, c.reply());
}

void hello_reply(context& c, resp::reply_builder& out) {
    const auto facts = c.facts();
    out.map(7);
    out.bulk("server");
    out.bulk("redis");
    out.bulk("version");
    out.bulk(facts.version.empty() ? std::string("unknown") : facts.version);
    out.bulk("proto");
    out.integer(static_cast<std::int64_t>(out.proto()));
    out.bulk("id");
    out.integer(static_cast<std::int64_t>(c.client().id));
    out.bulk("mode");
    out.bulk("standalone");
    out.bulk("role");
    out.bulk("master");
    out.bulk("modules");
    out.array(0);
}

void reset(context& c, args_view) { c.reset(); }

}  // namespace respcache::command
