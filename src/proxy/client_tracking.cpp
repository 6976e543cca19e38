#include "respcache/proxy/client_tracking.hpp"

#include <algorithm>

#include "respcache/resp/reply_builder.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::proxy {

// CLIENT TRACKING on REDIRECT <channel> BCAST [PREFIX p ...] on the client's broadcast connection: Redis
// checks and keeps the registration; its reply is the client's (or, for a re-registration after the
// channel came back, nobody's).
class client_tracking::registration final : public pending {
public:
    registration(slot_home& home, client_tracking& owner) : pending(home, owner.p_.sink), owner_(owner) {}

    command::tracking_mode mode;
    bool answers = true;
    bool refused = false;  // a first command (PREFIX ...) before the last was refused
    std::int64_t redirect = 0;

    void complete() override { owner_.registered(*this); }

protected:
    void clear() override {
        pending::clear();
        mode = {};
        answers = true;
        refused = false;
        redirect = 0;
    }
    void prelude_reply(std::size_t, std::string_view bytes) override {
        if (!resp::is_ok(bytes)) refused = true;
    }

private:
    client_tracking& owner_;
};

client_tracking::client_tracking(command::context& ctx, core_parts parts, forwarder& fwd, tracking_table& table)
    : ctx_(ctx), p_(parts), fwd_(fwd), table_(table), registrations_(*this) {}

client_tracking::~client_tracking() { forget(); }

void client_tracking::track(command::tracking_mode m, std::vector<std::string> added) {
    // The channel hears every key already with --tracking-mode bcast: nothing to ask of Redis (a
    // registration would have it announce each key twice).
    if (m.bcast && !p_.env.coherence.broadcasting()) return register_broadcast(std::move(m), added, true, false);
    m.next = mode_.next;
    mode_ = std::move(m);
    table_.enable(p_.client.id(), mode_);
    p_.client.tracking = true;
    ctx_.reply().ok();
}

void client_tracking::stop() {
    forget();
    ctx_.reply().ok();
}

void client_tracking::forget() {
    if (!mode_.on && !broadcast_) return;
    table_.disable(p_.client.id());
    mode_ = {};
    p_.client.tracking = false;
    fwd_.drop_retained();
    if (broadcast_) p_.env.links.release_dedicated(std::move(broadcast_), false);
    broadcast_redirect_ = 0;
}

void client_tracking::set_caching(bool yes) noexcept {
    mode_.next = yes ? command::tracking_mode::caching::yes : command::tracking_mode::caching::no;
}

void client_tracking::register_broadcast(command::tracking_mode m, const std::vector<std::string>& prefixes,
                                         bool answers, bool fresh) {
    if (fresh && broadcast_) p_.env.links.release_dedicated(std::move(broadcast_), false);
    if (!broadcast_) broadcast_ = p_.env.links.acquire_dedicated(resp::protocol::resp2);
    const std::int64_t rid = p_.env.coherence.state().redirect_id.load(std::memory_order_acquire);
    const std::string id = std::to_string(rid);
    // As the client wrote them: the named prefixes in one command, and the empty one (every key) as a
    // command without PREFIX, which is how Redis adds it.
    frame_.clear();
    std::uint32_t commands = 0;
    std::vector<std::string_view> args{"CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST"};
    for (const auto& prefix : prefixes)
        if (!prefix.empty()) {
            args.push_back("PREFIX");
            args.push_back(prefix);
        }
    if (args.size() > 6) {
        resp::write_command(frame_, args);
        ++commands;
    }
    if (std::find(prefixes.begin(), prefixes.end(), std::string()) != prefixes.end()) {
        resp::write_command(frame_, {"CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST"});
        ++commands;
    }
    registration& r = p_.queue.push_new(registrations_);
    r.mode = std::move(m);
    r.answers = answers;
    r.redirect = rid;
    r.client_index = commands - 1;
    if (!answers) r.suppressed = true;
    fwd_.send_on(*broadcast_, r, frame_, commands, p_.env.settings.request_timeout());
}

void client_tracking::registered(registration& r) {
    const bool ok = !r.errored && !r.refused && resp::is_ok(r.data);
    if (!r.answers) {
        // Registered anew for the new channel: what changed before that was not heard of.
        if (ok) broadcast_redirect_ = r.redirect;
        untracked();
        return;
    }
    if (!ok) {
        if (!mode_.on && broadcast_) p_.env.links.release_dedicated(std::move(broadcast_), false);
        return;
    }
    r.mode.next = mode_.next;
    mode_ = r.mode;
    broadcast_redirect_ = r.redirect;
    table_.enable(p_.client.id(), mode_);
    p_.client.tracking = true;
}

bool client_tracking::wants(command::args_view, const command::command_info* info) const noexcept {
    if (!mode_.on || mode_.bcast || info == nullptr) return false;
    if (!info->has(command::flag_readonly) || info->has(command::flag_pubsub)) return false;
    if (mode_.optin) return mode_.next == command::tracking_mode::caching::yes;
    if (mode_.optout) return mode_.next != command::tracking_mode::caching::no;
    return true;
}

void client_tracking::remember(command::args_view args, const command::command_info* info, const std::uint64_t* since) {
    thread_local command::key_set ks;
    command::catalog::keys(*info, args, ks);
    if (!ks.keys.empty()) table_.remember(p_.client.id(), ks.keys, since);
}

void client_tracking::wrote(command::args_view args, const command::command_info* info) {
    thread_local command::cache_effect e;
    command::effect_of(info, args, p_.client.db, e);
    if (!e.keys.empty()) table_.wrote(p_.client.id(), e.keys);
}

void client_tracking::dispatched(command::args_view args, const command::command_info* info, bool wanted,
                                 const std::uint64_t* since) {
    if (wanted) remember(args, info, since);
    if (mode_.noloop && !wanted && info != nullptr && !info->has(command::flag_readonly)) wrote(args, info);
    if (p_.client.mode != mode::transaction && !util::iequals(args[0], "client"))
        mode_.next = command::tracking_mode::caching::unset;
}

bool client_tracking::hears_own_write(const command::owned_effect& e) const {
    if (!mode_.on || (mode_.redirect == 0 && p_.client.proto != resp::protocol::resp3)) return false;
    return p_.env.coherence.live() && table_.hears_own_write(p_.client.id(), e);
}

void client_tracking::untracked() {
    command::tracking_message m;
    m.flush = true;
    m.tracker = p_.client.id();
    deliver(m);
}

void client_tracking::deliver(const command::tracking_message& m) {
    if (m.redirected) {
        // Sent here by the client it is for: a RESP3 client gets a push, a subscribed RESP2 client a
        // message on __redis__:invalidate, anyone else nothing (as Redis does).
        if (p_.client.proto == resp::protocol::resp3)
            push(m, resp::protocol::resp3, false);
        else if (p_.client.mode == mode::tunnel)
            push(m, resp::protocol::resp2, true);
        return;
    }
    if (!mode_.on) return;
    if (mode_.bcast && m.flush && broadcast_ &&
        broadcast_redirect_ != p_.env.coherence.state().redirect_id.load(std::memory_order_acquire))
        register_broadcast(mode_, mode_.prefixes, false, true);  // the channel is a new one: register anew
    if (mode_.redirect == 0) {
        if (p_.client.proto == resp::protocol::resp3) push(m, resp::protocol::resp3, false);
        return;
    }
    command::tracking_message hop = m;
    hop.redirected = true;
    hop.tracker_proto = p_.client.proto;
    if (auto target = p_.env.clients.find(mode_.redirect)) return target->deliver(std::move(hop));
    mode_.broken_redirect = true;
    if (p_.client.proto != resp::protocol::resp3) return;
    frame_.clear();
    resp::reply_builder b(&frame_, resp::protocol::resp3);
    b.push(2);
    b.bulk("tracking-redir-broken");
    b.integer(static_cast<std::int64_t>(mode_.redirect));
    queue_push(frame_);
}

void client_tracking::push(const command::tracking_message& m, resp::protocol proto, bool pubsub_message) {
    frame_.clear();
    resp::reply_builder b(&frame_, proto);
    if (pubsub_message) {
        b.array(3);
        b.bulk("message");
        b.bulk("__redis__:invalidate");
    } else {
        b.push(2);
        b.bulk("invalidate");
    }
    if (m.flush) {
        b.raw((m.redirected ? m.tracker_proto : proto) == resp::protocol::resp3 ? "_\r\n" : "$-1\r\n");
    } else {
        b.array(m.keys.size());
        for (const auto& k : m.keys) b.bulk(k);
    }
    queue_push(frame_);
}

void client_tracking::queue_push(std::string_view frame) { p_.queue.push_unsolicited(frame); }

}  // namespace respcache::proxy
