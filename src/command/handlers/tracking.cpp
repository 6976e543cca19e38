// CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO: client-side caching for respcache's clients, with
// Redis's checks, in Redis's order, with its texts.

#include <algorithm>

#include "respcache/command/handlers/handlers.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::command {

using util::iequals;

namespace {

// CLIENT TRACKING's options, as written.
struct tracking_args {
    tracking_mode wanted;
    std::vector<std::string> prefixes;
};

// Reads the options after on|off; false (after answering Redis's error) when one is bad.
bool read_options(context& c, args_view args, tracking_args& out) {
    tracking_mode& m = out.wanted;
    for (std::size_t j = 3; j < args.size(); ++j) {
        const bool more = j + 1 < args.size();
        if (iequals(args[j], "redirect") && more) {
            ++j;
            if (m.redirect != 0) {
                c.reply().error("ERR A client can only redirect to a single other client");
                return false;
            }
            std::int64_t id = 0;
            if (!util::parse_int64(args[j], id)) {
                c.reply().error("ERR value is not an integer or out of range");
                return false;
            }
            // Required to exist now, as Redis does, though it may go away later.
            if (id <= 0 || c.clients().find(static_cast<std::uint64_t>(id)) == nullptr) {
                c.reply().error("ERR The client ID you want redirect to does not exist");
                return false;
            }
            m.redirect = static_cast<std::uint64_t>(id);
        } else if (iequals(args[j], "bcast")) {
            m.bcast = true;
        } else if (iequals(args[j], "optin")) {
            m.optin = true;
        } else if (iequals(args[j], "optout")) {
            m.optout = true;
        } else if (iequals(args[j], "noloop")) {
            m.noloop = true;
        } else if (iequals(args[j], "prefix") && more) {
            out.prefixes.emplace_back(args[++j]);
        } else {
            c.reply().error("ERR syntax error");
            return false;
        }
    }
    return true;
}

bool overlap(std::string_view a, std::string_view b) { return a.substr(0, b.size()) == b.substr(0, a.size()); }

// Redis's prefix rules: new prefixes overlap neither the client's present ones nor each other.
bool prefixes_ok(context& c, const std::vector<std::string>& added, const tracking_mode& now) {
    for (std::size_t i = 0; i < added.size(); ++i) {
        for (const auto& existing : now.prefixes)
            if (overlap(existing, added[i])) {
                c.reply().error("ERR Prefix '" + added[i] + "' overlaps with an existing prefix '" + existing +
                                "'. Prefixes for a single client must not overlap.");
                return false;
            }
        for (std::size_t j = i + 1; j < added.size(); ++j)
            if (overlap(added[i], added[j])) {
                c.reply().error("ERR Prefix '" + added[i] + "' overlaps with another provided prefix '" + added[j] +
                                "'. Prefixes for a single client must not overlap.");
                return false;
            }
    }
    return true;
}

// Redis's checks of CLIENT TRACKING on against the options and the client's present mode.
bool mode_ok(context& c, const tracking_args& a, const tracking_mode& now) {
    const tracking_mode& m = a.wanted;
    const char* error = nullptr;
    if (!m.bcast && !a.prefixes.empty())
        error = "ERR PREFIX option requires BCAST mode to be enabled";
    else if (now.on && now.bcast != m.bcast)
        error = "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then "
                "re-enabling it with a different mode.";
    else if (m.bcast && (m.optin || m.optout))
        error = "ERR OPTIN and OPTOUT are not compatible with BCAST";
    else if (m.optin && m.optout)
        error = "ERR You can't specify both OPTIN mode and OPTOUT mode";
    else if (now.on && ((m.optin && now.optout) || (m.optout && now.optin)))
        error = "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then "
                "re-enabling it with a different mode.";
    if (error != nullptr) {
        c.reply().error(error);
        return false;
    }
    return !m.bcast || prefixes_ok(c, a.prefixes, now);
}

}  // namespace

void client_tracking(context& c, args_view args) {
    switch (c.tracking_available()) {
        case context::tracking_support::yes:
            break;
        case context::tracking_support::not_in_backend:
            return c.forward(args);  // a Redis without client tracking answers it
        case context::tracking_support::no_channel:
            return c.reply().error(
                "ERR client-side caching through respcache needs its invalidation channel (--invalidation tracking)");
    }
    tracking_args a;
    if (!read_options(c, args, a)) return;
    if (iequals(args[2], "off")) return c.stop_tracking();
    if (!iequals(args[2], "on")) return c.reply().error("ERR syntax error");
    const tracking_mode& now = c.tracking();
    if (!mode_ok(c, a, now)) return;
    tracking_mode m = a.wanted;
    m.on = true;
    std::vector<std::string> added;
    if (m.bcast) {
        // Prefixes add to those the client has; none given adds the empty one: every key (as Redis does).
        if (a.prefixes.empty()) a.prefixes.emplace_back();
        m.prefixes = now.on ? now.prefixes : std::vector<std::string>{};
        for (auto& p : a.prefixes)
            if (std::find(m.prefixes.begin(), m.prefixes.end(), p) == m.prefixes.end()) {
                m.prefixes.push_back(p);
                added.push_back(p);
            }
        std::sort(m.prefixes.begin(), m.prefixes.end());
    }
    c.track(std::move(m), std::move(added));
}

void client_caching(context& c, args_view args) {
    const tracking_mode& m = c.tracking();
    if (!m.on)
        return c.reply().error(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode "
            "enabled");
    if (iequals(args[2], "yes")) {
        if (!m.optin) return c.reply().error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
        c.set_caching(true);
    } else if (iequals(args[2], "no")) {
        if (!m.optout) return c.reply().error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
        c.set_caching(false);
    } else {
        return c.reply().error("ERR syntax error");
    }
    c.reply().ok();
}

void client_getredir(context& c, args_view) {
    const tracking_mode& m = c.tracking();
    c.reply().integer(m.on ? static_cast<std::int64_t>(m.redirect) : -1);
}

void client_trackinginfo(context& c, args_view) {
    const tracking_mode& m = c.tracking();
    std::vector<std::string_view> flags;
    if (!m.on) {
        flags.push_back("off");
    } else {
        flags.push_back("on");
        if (m.bcast) flags.push_back("bcast");
        if (m.optin) flags.push_back("optin");
        if (m.optin && m.next == tracking_mode::caching::yes) flags.push_back("caching-yes");
        if (m.optout) flags.push_back("optout");
        if (m.optout && m.next == tracking_mode::caching::no) flags.push_back("caching-no");
        if (m.noloop) flags.push_back("noloop");
        if (m.broken_redirect) flags.push_back("broken_redirect");
    }
    resp::reply_builder& out = c.reply();
    out.map(3);
    out.bulk("flags");
    out.set(flags.size());
    for (auto f : flags) out.bulk(f);
    out.bulk("redirect");
    out.integer(m.on ? static_cast<std::int64_t>(m.redirect) : -1);
    out.bulk("prefixes");
    out.array(m.bcast ? m.prefixes.size() : 0);
    if (m.bcast)
        for (const auto& p : m.prefixes) out.bulk(p);
}

}  // namespace respcache::command
