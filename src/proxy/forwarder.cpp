#include "respcache/proxy/forwarder.hpp"

#include <algorithm>

#include "respcache/command/blocking.hpp"
#include "respcache/resp/reply_builder.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::proxy {

using std::chrono::milliseconds;

// A command sent as the client sent it. A write carries its cache effect, applied again at its reply
// for fills that raced with it; INFO gets the proxy's section; MODULE may change the command table.
class forwarder::forward_request : public pending {
public:
    forward_request(slot_home& home, forwarder& owner) : pending(home, owner.p_.sink), owner_(owner) {}

    command::owned_effect effect;
    bool with_proxy_info = false;
    bool refresh_catalog = false;
    // A read Redis is to track for a client of CLIENT TRACKING (CLIENT CACHING yes before it).
    struct {
        bool on = false;
        bool refused = false;
        coherence::fill_ticket ticket;
        coherence::link_tracking* link = nullptr;
    } tracked;

    void complete() override {
        if (refresh_catalog && !errored) owner_.p_.env.host.refresh_catalog();
        if (with_proxy_info) append_proxy_info();
        if (!effect.empty()) owner_.write_answered(effect);
        if (tracked.on && !errored &&
            (tracked.refused || !owner_.p_.env.coherence.may_fill(tracked.ticket, *tracked.link, *link)) &&
            owner_.on_untracked_read)
            owner_.on_untracked_read();
    }

protected:
    void clear() override {
        pending::clear();
        effect.clear();
        with_proxy_info = false;
        refresh_catalog = false;
        tracked = {};
    }
    void prelude_reply(std::size_t index, std::string_view bytes) override {
        if (!tracked.on || resp::is_ok(bytes)) return;
        tracked.refused = true;
        if (index == 0) owner_.p_.env.coherence.prelude_refused(*tracked.link, tracked.ticket);
    }
    forwarder& owner_;

private:
    void append_proxy_info() {
        const std::string section = owner_.p_.env.host.proxy_info();
        resp::reply_builder out(&data, owner_.p_.client.proto);
        if (auto text = resp::string_value(data); text && (resp::is_bulk(data) || data[0] == '=')) {
            std::string joined(*text);
            joined += "\r\n";
            joined += section;
            data.clear();
            out.verbatim(joined);
        } else if (errored) {
            // The backend is unreachable: the proxy's own figures are what an operator needs now.
            data.clear();
            out.verbatim(section);
        }
    }
};

// A command that may block, on the pinned link; while it waits, the client is blocked.
class forwarder::blocking_request final : public forward_request {
public:
    using forward_request::forward_request;

    void complete() override {
        forward_request::complete();
        client_state& c = owner_.p_.client;
        if (c.mode == mode::blocked) c.mode = mode::normal;
        c.info->blocked = false;
        c.info->blocked_backend_id = 0;
    }
};

// SELECT n; SELECT <the link's database>: Redis judges n, and the shared link stays where it was.
class forwarder::select_probe final : public pending {
public:
    select_probe(slot_home& home, forwarder& owner) : pending(home, owner.p_.sink), owner_(owner) {}
    std::uint32_t db = 0;
    void complete() override {
        if (resp::is_ok(data)) owner_.p_.client.set_db(db);
    }

protected:
    void clear() override {
        pending::clear();
        db = 0;
    }

private:
    forwarder& owner_;
};

forwarder::forwarder(core_parts parts) : p_(parts), forwards_(*this), blockings_(*this), probes_(*this) {}

forwarder::~forwarder() { drop_retained(); }

backend::link_pool& forwarder::links() noexcept { return user_.links != nullptr ? *user_.links : p_.env.links; }

const backend::link_pool& forwarder::links() const noexcept {
    return user_.links != nullptr ? *user_.links : p_.env.links;
}

void forwarder::use_links(user_links l) {
    // A dedicated link logged in as the previous user is never given back to be reused by another.
    drop_retained();
    if (pinned_) pinned_broken_ = true;
    user_ = l;
}

backend::link& forwarder::target() { return pinned_ ? *pinned_ : shared_link(); }

std::size_t forwarder::shared_index() const noexcept { return links().shared_index(p_.client.id(), p_.client.proto); }

backend::link& forwarder::shared_link() { return links().shared(shared_index()); }

coherence::link_tracking& forwarder::shared_tracking() {
    return (user_.tracking != nullptr ? *user_.tracking : p_.env.tracking)[shared_index()];
}

void forwarder::pin() {
    if (pinned_) return;
    pinned_broken_ = false;
    pinned_tracked_ = false;
    p_.env.stats.pinned.add();
    if (retained_ && retained_->state() != backend::link_state::down && retained_->state() != backend::link_state::closed &&
        retained_->in_flight() == 0 && retained_->protocol() == p_.client.proto) {
        // The connection this tracking client had before: Redis still tracks what it read there.
        pinned_ = std::move(retained_);
        pinned_tracked_ = retained_epoch_ == p_.env.coherence.state().epoch.load(std::memory_order_acquire);
        return;
    }
    drop_retained();
    pinned_ = links().acquire_dedicated(p_.client.proto);
}

void forwarder::release(bool clean) {
    if (!pinned_) return;
    auto l = std::move(pinned_);
    pinned_.reset();
    p_.env.stats.pinned.sub();
    const bool tracked = pinned_tracked_;
    pinned_tracked_ = false;
    if (tracked && clean && !pinned_broken_ && p_.client.tracking) {
        // Redis forgets what a connection tracked when it closes: a tracking client keeps its connection
        // (never given to another client) for its next transaction, watch or blocking command.
        retained_ = std::move(l);
        pinned_broken_ = false;
        return;
    }
    links().release_dedicated(std::move(l), clean && !pinned_broken_ && !tracked);
    pinned_broken_ = false;
    // What the client read there will never be announced: it must drop it.
    if (tracked && on_untracked_read) on_untracked_read();
}

void forwarder::drop_retained() {
    if (retained_) links().release_dedicated(std::move(retained_), false);
}

bool forwarder::pinned_tracking_prelude(std::string& out) {
    if (!pinned_ || pinned_tracked_ || !p_.client.tracking) return false;
    if (p_.env.coherence.broadcasting()) return false;  // the channel hears of every key already
    const std::string rid = std::to_string(p_.env.coherence.state().redirect_id.load(std::memory_order_acquire));
    resp::write_command(out, {"CLIENT", "TRACKING", "on", "REDIRECT", rid});
    pinned_tracked_ = true;
    retained_epoch_ = p_.env.coherence.state().epoch.load(std::memory_order_acquire);
    return true;
}

void forwarder::send(pending& p, std::string_view bytes, std::uint32_t replies, milliseconds timeout) {
    backend::link& l = target();
    l.select(p_.client.db);
    if (pinned_ && !pinned_tracked_ && p_.client.tracking && !p_.env.coherence.broadcasting()) {
        // A tracking client's dedicated link tracks every read for the proxy's channel, before its first
        // command (MULTI, WATCH, a blocking read): the reply to that is nobody's.
        prelude_scratch_.clear();
        pinned_tracking_prelude(prelude_scratch_);
        prelude_scratch_.append(bytes);
        p.client_index += 1;
        return send_on(l, p, prelude_scratch_, replies + 1, timeout);
    }
    send_on(l, p, bytes, replies, timeout);
}

void forwarder::send_on(backend::link& l, pending& p, std::string_view bytes, std::uint32_t replies,
                        milliseconds timeout) {
    p.link = &l;
    p.replies = replies;
    ++in_flight_;
    p_.env.stats.in_flight.add();
    l.send(bytes, replies, &p, timeout);
}

void forwarder::send_detached(pending& p, std::uint32_t db, std::string_view bytes, std::uint32_t replies,
                              milliseconds timeout) {
    backend::link& l = shared_link();
    l.select(db);
    p.link = &l;
    p.replies = replies;
    ++detached_;
    p_.env.stats.in_flight.add();
    l.send(bytes, replies, &p, timeout);
}

void forwarder::detached_done(pending&) {
    --detached_;
    p_.env.stats.in_flight.sub();
    if (on_detached_done) on_detached_done();
}

void forwarder::waiting(pending& p) {
    p.link = nullptr;
    ++in_flight_;
    p_.env.stats.in_flight.add();
}

void forwarder::answered(pending& p) {
    --in_flight_;
    p_.env.stats.in_flight.sub();
    note_backend_health(p);
    if (!p.errored) return;
    p_.env.stats.backend_errors.add();
    if (pinned_ && p.link == pinned_.get()) pinned_broken_ = true;
}

void forwarder::note_backend_health(const pending& p) {
    std::atomic<bool>& busy = p_.env.host.backend_busy();
    const bool now_busy = !p.errored && std::string_view(p.data).starts_with("-BUSY ");
    if (now_busy != busy.load(std::memory_order_relaxed)) busy.store(now_busy, std::memory_order_relaxed);
}

const command::command_info* forwarder::describe(command::args_view args) const {
    const command::catalog* cat = p_.env.host.catalog();
    return cat != nullptr ? cat->find(args) : nullptr;
}

const command::cache_effect& forwarder::effect_of(command::args_view args, const command::command_info* info,
                                                  std::uint32_t db) {
    command::effect_of(info, args, db, effect_scratch_);
    return effect_scratch_;
}

void forwarder::carry_effect(command::owned_effect& into, command::args_view args, const command::command_info* info) {
    const command::cache_effect& e = effect_of(args, info, p_.client.db);
    if (e.empty()) return;
    into.add(e);
    // Invalidated now, so that a read behind this write in the same pipeline misses and is sent after it
    // on the same link; and again at the reply, for fills that raced with the write.
    write_sent(into);
}

void forwarder::mark_own_write(pending& p, const command::owned_effect& e) {
    if (p_.client.tracking && !e.empty() && hears_own_write && hears_own_write(e)) p.await_echo = true;
}

void forwarder::send_as_sent(pending& p) {
    p_.env.stats.forwarded.add();
    send(p, p_.client.raw, 1, p_.env.settings.request_timeout());
}

void forwarder::forward(command::args_view args, const command::command_info* info) {
    forward_request& r = p_.queue.push_new(forwards_);
    r.refresh_catalog = util::iequals(args[0], "module");
    carry_effect(r.effect, args, info != nullptr ? info : describe(args));
    mark_own_write(r, r.effect);
    if (!p_.client.track_read || pinned_) return send_as_sent(r);
    // A read of a tracking client on the shared link: Redis tracks it (CLIENT CACHING yes) for the
    // proxy's channel, which tells the client of its keys' changes.
    p_.env.stats.forwarded.add();
    backend::link& l = shared_link();
    l.select(p_.client.db);
    request_scratch_.clear();
    std::uint32_t n = 0;
    r.tracked.on = true;
    r.tracked.link = &shared_tracking();
    r.tracked.ticket = p_.env.coherence.prepare_fill(*r.tracked.link, l, request_scratch_, n);
    r.client_index = n;
    request_scratch_.append(p_.client.raw);
    send(r, request_scratch_, n + 1, p_.env.settings.request_timeout());
}

void forwarder::forward_queued() { send_as_sent(p_.queue.push_new(forwards_)); }

void forwarder::forward_info(bool with_proxy, bool on_shared) {
    forward_request& r = p_.queue.push_new(forwards_);
    r.with_proxy_info = with_proxy;
    if (!on_shared) return send_as_sent(r);
    p_.env.stats.forwarded.add();
    backend::link& l = shared_link();
    l.select(p_.client.db);
    send_on(l, r, p_.client.raw, 1, p_.env.settings.request_timeout());
}

void forwarder::forward_blocking(command::args_view args, const command::command_info* info) {
    p_.env.stats.forwarded.add();
    pin();
    blocking_request& r = p_.queue.push_new(blockings_);
    carry_effect(r.effect, args, info);
    mark_own_write(r, r.effect);
    p_.client.mode = mode::blocked;
    p_.client.info->blocked = true;
    p_.client.info->blocked_backend_id = pinned_->backend_id();
    const auto timeout = command::blocking_timeout(args, p_.env.settings.request_timeout());
    const milliseconds wait = timeout ? *timeout : milliseconds::max();
    if (util::iequals(args[0], "wait") || util::iequals(args[0], "waitaof")) {
        // WAIT counts replicas that have the writes of the connection it runs on; the client's writes went
        // through another one. A PUBLISH (propagated to replicas, seen by no subscriber) first moves this
        // connection's replication offset past every write executed so far, the client's included.
        request_scratch_.clear();
        resp::write_command(request_scratch_, {"PUBLISH", "__respcache__:wait-barrier", ""});
        request_scratch_.append(p_.client.raw);
        r.client_index = 1;
        send(r, request_scratch_, 2, wait);
        return;
    }
    send(r, p_.client.raw, 1, wait);
}

void forwarder::forward_alone() {
    // No SELECT first: Redis refuses it while a script runs, and these commands concern no database.
    p_.env.stats.forwarded.add();
    pin();
    send_on(*pinned_, p_.queue.push_new(forwards_), p_.client.raw, 1, p_.env.settings.request_timeout());
}

void forwarder::select_via_backend(std::uint32_t db) {
    // The backend's database count is unknown (CONFIG is not allowed): let Redis judge the index, on the
    // shared link, and put that link back on its own database in the same round trip.
    select_probe& p = p_.queue.push_new(probes_);
    p.db = db;
    backend::link& l = target();
    l.select(p_.client.db);
    request_scratch_.clear();
    const std::string n = std::to_string(db);
    const std::string back = std::to_string(l.selected_db());
    resp::write_command(request_scratch_, {"SELECT", n});
    resp::write_command(request_scratch_, {"SELECT", back});
    send(p, request_scratch_, 2, p_.env.settings.request_timeout());
}

bool forwarder::write_in_flight(const cache::key& k) const noexcept {
    for (const command::owned_effect* w : writes_)
        if (w->touches(k)) return true;
    return false;
}

void forwarder::write_sent(const command::owned_effect& e) {
    e.apply(p_.env.cache);
    writes_.push_back(&e);
}

void forwarder::write_answered(const command::owned_effect& e) {
    e.apply(p_.env.cache);
    std::erase(writes_, &e);
}

}  // namespace respcache::proxy
