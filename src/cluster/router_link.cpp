#include "respcache/cluster/router_link.hpp"

#include <algorithm>
#include <deque>
#include <utility>

#include <boost/asio/post.hpp>

#include "respcache/cluster/merge.hpp"
#include "respcache/resp/parser.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::cluster {

namespace asio = boost::asio;

namespace {
constexpr int kMaxRedirects = 5;
constexpr std::string_view kExecAbort = "-EXECABORT Transaction discarded because of previous errors.\r\n";
}  // namespace

// One command of a send(): where it goes, and its reply once its parts are in.
struct router_link::unit {
    route r;
    std::string_view raw;              // the command as sent: a slice of the batch's bytes
    std::deque<std::string> commands;  // split: one per group; scan: the one for its master (stable: parts view them)
    std::string prelude;               // sent before it on the same node (a deferred MULTI)
    std::optional<node_address> to;    // set when the transaction rules chose the node
    std::string_view replace;          // a reply that replaces whatever Redis answers (EXECABORT)
    std::uint16_t scan_node = 0;
    std::vector<std::string> pieces;
    std::size_t waiting = 0;  // parts not yet answered
    std::string reply;
    std::string error;        // the link failed before the reply came
    bool ready = false;
    bool tracking_on = false;  // CLIENT TRACKING on ... REDIRECT: rewritten for its node
    bool tracked = false;      // right after CLIENT CACHING yes: a read Redis is to track
    bool keyed() const noexcept { return r.how == route::kind::slot; }
};

// One send(): its request and its commands, answered in order.
struct router_link::batch {
    backend::request* r = nullptr;
    std::string bytes;
    std::uint32_t replies = 0;
    milliseconds timeout{0};
    std::vector<unit> units;
    std::vector<std::unique_ptr<part>> parts;
    std::size_t delivered = 0;
    std::size_t parts_live = 0;
    bool routed = false;
    bool whole = false;     // not commands the link could tell apart: sent as is to one master
    bool caching_pending = false;  // the last unit planned was CLIENT CACHING yes
    bool finished = false;  // every reply (or the error) given to r
};

// One request on one master's connection, for one unit (one piece of it).
class router_link::part final : public backend::request {
public:
    part(router_link& owner, batch& b, std::size_t unit, std::size_t piece, std::string_view command, node_address to)
        : owner_(owner), b_(b), unit_(unit), piece_(piece), command_(command), to_(std::move(to)) {}

    void on_reply(std::size_t index, std::string_view bytes) override {
        if (index < skip_) return;
        ++got_;
        owner_.part_reply(*this, index - skip_, bytes);
    }
    void on_error(std::string_view reason) override { owner_.part_failed(*this, reason); }

    router_link& owner_;
    batch& b_;
    std::size_t unit_;     // the first unit it answers
    std::size_t count_ = 1;  // how many (several only for a batch sent whole)
    std::size_t got_ = 0;    // replies received
    std::size_t piece_;
    bool follow_ = true;     // MOVED and ASK are followed (not inside a transaction)
    std::string_view command_;  // without the prelude: the batch's bytes, or its unit's (both outlive it)
    std::string prelude_;  // ASKING, or a deferred MULTI, whose replies are nobody's
    std::uint32_t skip_ = 0;
    node_address to_;
    int redirects_ = 0;
};

router_link::router_link(asio::any_io_executor ex, backend::connection_options options, std::shared_ptr<topology> topo,
                         lookup find, redirects redirect_for)
    : ex_(ex),
      options_(std::move(options)),
      topo_(std::move(topo)),
      find_(std::move(find)),
      redirect_for_(std::move(redirect_for)),
      dedicated_(!options_.reconnect),
      parser_(options_.limits) {}

router_link::~router_link() {
    close();
}

void router_link::start() {
    subscription_ = topo_->subscribe([w = weak_from_this()](bool known) {
        auto self = w.lock();
        if (!self || self->closed_) return;
        if (!known) return self->fail_unrouted(backend::unavailable(self->topo_->last_error()));
        // Shared links connect to every master at once, so that the first requests find them ready.
        if (!self->dedicated_) {
            self->forget_departed();
            for (const auto& m : self->topo_->map()->masters()) self->node(m);
        }
        self->route_waiting();
    });
    if (!dedicated_ && topo_->map() != nullptr)
        for (const auto& m : topo_->map()->masters()) node(m);
}

void router_link::set_request_timeout(milliseconds timeout) noexcept {
    options_.request_timeout = timeout;
    for (auto& [name, c] : nodes_) c->set_request_timeout(timeout);
}

backend::link_state router_link::state() const noexcept {
    if (closed_) return backend::link_state::closed;
    if (topo_->map() != nullptr) return backend::link_state::ready;
    return topo_->loading() ? backend::link_state::connecting : backend::link_state::down;
}

std::int64_t router_link::backend_id() const noexcept {
    const std::optional<node_address>& at = txn_.node ? txn_.node : sticky_;
    if (!at) return 0;
    auto it = nodes_.find(at->name());
    return it == nodes_.end() ? 0 : it->second->backend_id();
}

void router_link::set_stream_sink(backend::stream_sink* sink) noexcept {
    sink_ = sink;
    if (sink == nullptr && stream_node_) {
        if (auto it = nodes_.find(stream_node_->name()); it != nodes_.end()) it->second->set_stream_sink(nullptr);
        stream_node_.reset();
    }
}

backend::connection& router_link::node(const node_address& a) {
    const std::string name = a.name();
    if (auto it = nodes_.find(name); it != nodes_.end()) return *it->second;
    backend::connection_options o = topo_->options_for(a);
    o.protocol = options_.protocol;
    o.reconnect = options_.reconnect;
    o.request_timeout = options_.request_timeout;
    auto c = std::make_shared<backend::connection>(ex_, std::move(o));
    std::weak_ptr<router_link> w = weak_from_this();
    // socket_id() moves only after on_closing_ was told, while it still had the value coherence knows:
    // a node's new socket gets the tracking request again from track_on_node().
    c->on_ready([w] {
        if (auto self = w.lock(); self && self->on_ready_) self->on_ready_();
    });
    c->on_closing([w] {
        if (auto self = w.lock()) {
            // Told while socket_id() is still the one coherence knows, then moved.
            if (self->on_closing_) self->on_closing_();
            ++self->sockets_;
        }
    });
    c->on_down([w](std::string_view why) {
        if (auto self = w.lock()) {
            self->topo_->refresh_soon();
            if (self->on_down_) self->on_down_(why);
        }
    });
    nodes_.emplace(name, c);
    c->start();
    return *c;
}

std::uint16_t router_link::owner_of(std::uint16_t slot) const {
    const std::uint16_t o = topo_->map()->owner(slot);
    return o == kNoNode ? 0 : o;
}

const node_address& router_link::master(std::uint16_t index) const { return topo_->map()->masters().at(index); }

void router_link::send(std::string_view bytes, std::uint32_t replies, backend::request* r, milliseconds timeout) {
    if (closed_) {
        if (r != nullptr) r->on_error(backend::unavailable("connection closed"));
        return;
    }
    if (sink_ != nullptr) return send_streamed(bytes, replies, r, timeout);
    auto b = std::make_unique<batch>();
    b->r = r;
    b->bytes.assign(bytes);
    b->replies = replies;
    b->timeout = timeout;
    batch& ref = *b;
    batches_.push_back(std::move(b));
    in_flight_ += replies;
    if (topo_->map() != nullptr) return route_batch(ref);
    if (!topo_->loading()) fail_unrouted(backend::unavailable(topo_->last_error()));
}

void router_link::send_streamed(std::string_view bytes, std::uint32_t replies, backend::request* r,
                                milliseconds timeout) {
    // A subscriber's: every command to the node its first one went to (a shard channel's, for
    // SSUBSCRIBE; where the commands before it went, for SUBSCRIBE).
    if (topo_->map() == nullptr) {
        if (r != nullptr) r->on_error(backend::unavailable("cluster slot map not known yet"));
        return;
    }
    if (!stream_node_) {
        stream_node_ = sticky_ ? *sticky_ : master(0);
        resp::request_parser parser(options_.limits);
        if (parser.parse(bytes).status == resp::parse_status::done && !parser.args().empty()) {
            const command::command_info* info = find_ ? find_(parser.args()) : nullptr;
            const route first = plan(parser.args(), info);
            if (first.how == route::kind::slot) stream_node_ = master(owner_of(first.slot));
        }
        node(*stream_node_).set_stream_sink(sink_);
    }
    backend::connection& c = node(*stream_node_);
    c.select(db_);
    c.send(bytes, replies, r, timeout);
}

void router_link::forget_departed() {
    // A shared link's connections to nodes that serve no slot any more (a failed or demoted master).
    const auto& masters = topo_->map()->masters();
    for (auto it = nodes_.begin(); it != nodes_.end();) {
        const bool serves = std::any_of(masters.begin(), masters.end(), [&](const node_address& m) { return m.name() == it->first; });
        if (serves || it->second->in_flight() > 0) {
            ++it;
            continue;
        }
        it->second->close();
        it = nodes_.erase(it);
    }
}

void router_link::route_waiting() {
    // Collected first: routing a batch may answer it, which moves it out of batches_ (it lives on in
    // retired_ until the next sweep).
    std::vector<batch*> waiting;
    for (auto& b : batches_)
        if (!b->routed) waiting.push_back(b.get());
    for (batch* b : waiting)
        if (!closed_) route_batch(*b);
}

void router_link::fail_unrouted(std::string_view reason) {
    for (auto& b : batches_) {
        if (b->routed) continue;
        b->routed = true;
        b->units.resize(std::max<std::size_t>(1, b->replies));
        for (unit& u : b->units) {
            u.ready = true;
            u.error = std::string(reason);
        }
    }
    pump();
}

void router_link::route_batch(batch& b) {
    b.routed = true;
    resp::request_parser& parser = parser_;
    parser.reset();
    std::string_view rest = b.bytes;
    while (!rest.empty()) {
        const resp::parse_result res = parser.parse(rest);
        if (res.status != resp::parse_status::done) break;
        if (!parser.args().empty()) {
            unit& u = b.units.emplace_back();
            u.raw = rest.substr(0, res.consumed);
            plan_unit(b, u, parser.args());
        }
        rest.remove_prefix(res.consumed);
    }
    if (b.units.size() != b.replies || !rest.empty()) {
        // Not commands this link can tell apart: the whole to one master, as sent.
        b.whole = true;
        b.units.assign(b.replies, unit{});
        for (unit& u : b.units) u.waiting = 1;
        auto p = std::make_unique<part>(*this, b, 0, 0, b.bytes, sticky_ ? *sticky_ : master(0));
        p->count_ = b.replies;
        p->follow_ = false;
        part& ref = *p;
        b.parts.push_back(std::move(p));
        ++b.parts_live;
        send_part(ref);
    } else {
        for (std::size_t i = 0; i < b.units.size() && !closed_; ++i) dispatch(b, i, keyless_target(b, i));
    }
    pump();
}

void router_link::plan_unit(batch& b, unit& u, std::span<const std::string_view> args) {
    u.tracked = std::exchange(b.caching_pending, false);
    const command::command_info* info = find_ ? find_(args) : nullptr;
    u.r = plan(args, info, keys_scratch_);
    if (args.size() >= 2 && util::iequals(args[0], "client")) {
        if (util::iequals(args[1], "caching")) b.caching_pending = true;
        if (args.size() >= 5 && util::iequals(args[1], "tracking") && util::iequals(args[2], "on") &&
            std::any_of(args.begin(), args.end(), [](std::string_view a) { return util::iequals(a, "redirect"); })) {
            u.tracking_on = true;
            tracking_args_.assign(args.begin(), args.end());
            ++tracking_generation_;
        }
    }
    if (u.r.how == route::kind::split) {
        std::vector<std::string_view> part_args;
        for (const group& g : u.r.groups) {
            part_args.assign(1, args[0]);
            for (std::size_t i : g.args) part_args.push_back(args[i]);
            resp::write_command(u.commands.emplace_back(), part_args);
        }
    } else if (u.r.how == route::kind::fanout && u.r.merged == merge::scan && args.size() >= 2) {
        const auto masters = static_cast<std::uint16_t>(topo_->map()->masters().size());
        if (auto at = decode_scan_cursor(args[1], masters)) {
            u.scan_node = at->node;
            std::vector<std::string_view> rewritten(args.begin(), args.end());
            rewritten[1] = at->inner;
            resp::write_command(u.commands.emplace_back(), rewritten);
        }
    }
    if (!dedicated_) return;
    char buf[16];
    plan_transaction(u, util::to_lower(args[0], buf), args);
}

void router_link::plan_transaction(unit& u, std::string_view name, std::span<const std::string_view>) {
    auto& t = txn_;
    auto answer = [&u](std::string_view reply) {
        u.r.how = route::kind::local;
        u.r.reply = reply;
    };
    if (name == "multi") {
        if (t.deferred) return answer("-ERR MULTI calls can not be nested\r\n");
        if (t.open || t.watching) {
            t.open = true;
            u.to = t.node;
            return;
        }
        t.deferred = true;
        return answer("+OK\r\n");
    }
    if (name == "exec" || name == "discard") {
        if (t.deferred) {
            answer(name == "discard" ? "+OK\r\n" : t.dirty ? kExecAbort : "*0\r\n");
        } else if (t.open && name == "exec" && t.dirty) {
            // Redis would have refused the transaction for the command refused inside it.
            u.to = t.node;
            u.raw = "*1\r\n$7\r\nDISCARD\r\n";
            u.replace = kExecAbort;
        } else if (t.node) {
            u.to = t.node;
        }
        if (t.deferred || t.open) t = {};
        return;
    }
    if (name == "reset") {
        t = {};
        sticky_.reset();
        return;
    }
    if (name == "unwatch") {
        if (t.node) u.to = t.node;
        if (!t.open && !t.deferred) t = {};
        return;
    }
    if (!t.open && !t.deferred && !t.watching && name != "watch") return;
    auto refuse = [&] {
        answer(kCrossSlot);
        if (t.open || t.deferred) t.dirty = true;
    };
    if (u.r.how == route::kind::split) return refuse();
    if (u.r.how == route::kind::local) {
        if (u.r.reply == kCrossSlot && (t.open || t.deferred)) t.dirty = true;
        return;
    }
    if (u.r.how == route::kind::fanout) u.r.how = route::kind::keyless;  // the transaction's node alone
    if (u.r.how == route::kind::keyless) {
        if (!t.node) t.node = sticky_ ? *sticky_ : master(0);
    } else {
        const node_address& owner = master(owner_of(u.r.slot));
        if ((t.slot && *t.slot != u.r.slot) || (!t.slot && t.node && owner != *t.node)) return refuse();
        if (!t.node) t.node = owner;
        t.slot = u.r.slot;
        if (name == "watch") t.watching = true;
    }
    if (t.deferred) {
        resp::write_command(u.prelude, {"MULTI"});
        t.deferred = false;
        t.open = true;
    }
    u.to = t.node;
}

node_address router_link::keyless_target(const batch& b, std::size_t index) const {
    for (std::size_t i = index + 1; i < b.units.size(); ++i)
        if (b.units[i].keyed()) return b.units[i].to ? *b.units[i].to : master(owner_of(b.units[i].r.slot));
    for (std::size_t i = index; i-- > 0;)
        if (b.units[i].keyed()) return b.units[i].to ? *b.units[i].to : master(owner_of(b.units[i].r.slot));
    return sticky_ ? *sticky_ : master(0);
}

void router_link::dispatch(batch& b, std::size_t index, const node_address& keyless_node) {
    unit& u = b.units[index];
    struct target {
        std::string_view command;
        node_address to;
    };
    std::vector<target> parts;
    switch (u.r.how) {
        case route::kind::local:
            u.reply = std::string(u.r.reply);
            u.ready = true;
            return;
        case route::kind::slot:
            parts.push_back({u.raw, u.to ? *u.to : master(owner_of(u.r.slot))});
            if (dedicated_) sticky_ = parts.back().to;
            break;
        case route::kind::keyless:
            parts.push_back({u.raw, u.to ? *u.to : keyless_node});
            break;
        case route::kind::split:
            for (std::size_t g = 0; g < u.r.groups.size(); ++g)
                parts.push_back({u.commands[g], master(owner_of(u.r.groups[g].slot))});
            break;
        case route::kind::fanout:
            if (u.r.merged == merge::scan) {
                parts.push_back({u.commands.empty() ? u.raw : std::string_view(u.commands[0]), master(u.scan_node)});
                break;
            }
            for (const node_address& m : topo_->map()->masters()) parts.push_back({u.raw, m});
            break;
    }
    u.waiting = parts.size();
    u.pieces.resize(parts.size());
    const bool follow = !(dedicated_ && (txn_.open || txn_.watching));
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (u.tracking_on) parts[i].command = u.commands.emplace_back(tracking_command_for(parts[i].to));
        auto p = std::make_unique<part>(*this, b, index, i, parts[i].command, std::move(parts[i].to));
        p->follow_ = follow;
        if (i == 0 && !u.prelude.empty()) {
            p->prelude_ = u.prelude;
            p->skip_ = 1;
        }
        part& ref = *p;
        b.parts.push_back(std::move(p));
        ++b.parts_live;
        if (u.tracking_on)
            tracked_[ref.to_.name()] = {tracking_generation_, node(ref.to_).socket_id()};
        else
            track_on_node(ref);
        send_part(ref);
        if (closed_) return;
    }
}

std::string router_link::tracking_command_for(const node_address& to) const {
    std::vector<std::string_view> args(tracking_args_.begin(), tracking_args_.end());
    const std::string id = std::to_string(redirect_for_ ? redirect_for_(to.name()) : 0);
    for (std::size_t i = 0; i + 1 < args.size(); ++i)
        if (util::iequals(args[i], "redirect")) args[i + 1] = id;
    std::string out;
    resp::write_command(out, args);
    return out;
}

void router_link::track_on_node(part& p) {
    if (tracking_generation_ == 0) return;
    const std::pair<std::uint64_t, std::uint64_t> now{tracking_generation_, node(p.to_).socket_id()};
    auto& seen = tracked_[p.to_.name()];
    if (seen == now) return;
    seen = now;
    p.prelude_ = tracking_command_for(p.to_) + p.prelude_;
    ++p.skip_;
}

void router_link::send_part(part& p) {
    backend::connection& c = node(p.to_);
    c.select(db_);
    const auto replies = static_cast<std::uint32_t>(p.skip_ + p.count_);
    if (p.prelude_.empty()) return c.send(p.command_, replies, &p, p.b_.timeout);
    std::string bytes = p.prelude_;
    bytes.append(p.command_);
    c.send(bytes, replies, &p, p.b_.timeout);
}

void router_link::part_reply(part& p, std::size_t k, std::string_view bytes) {
    batch& b = p.b_;
    unit& u = b.units[p.unit_ + k];
    if (p.count_ == 1 && p.follow_ && bytes.size() > 4 && bytes[0] == '-' && (bytes[1] == 'M' || bytes[1] == 'A')) {
        if (auto rd = parse_redirect(bytes); rd && p.redirects_ < kMaxRedirects && !closed_) {
            ++p.redirects_;
            node_address to = rd->node;
            if (to.host.empty()) to.host = p.to_.host;
            if (!rd->ask) topo_->moved(rd->slot, to);
            p.to_ = std::move(to);
            p.prelude_.clear();
            p.skip_ = 0;
            p.got_ = 0;
            if (rd->ask) {
                resp::write_command(p.prelude_, {"ASKING"});
                p.skip_ = 1;
                // ASKING and CLIENT CACHING cannot both apply to one command: the read is not tracked
                // where it lands, so its fill must be refused. Told as a closing (which flushes, when
                // tracking was on) before socket_id() moves, as for a lost socket.
                if (u.tracked && on_closing_) on_closing_();
                if (u.tracked) ++sockets_;
            } else if (u.tracked) {
                // Tracked on the new node as it was to be on the old one.
                track_on_node(p);
                resp::write_command(p.prelude_, {"CLIENT", "CACHING", "yes"});
                ++p.skip_;
            }
            return send_part(p);
        }
    }
    if (p.got_ == p.count_) --b.parts_live;
    if (u.ready) return;  // failed meanwhile (the link closed)
    u.pieces[b.whole ? 0 : p.piece_] = std::string(bytes);
    if (--u.waiting == 0) piece_done(b, u);
    pump();
}

void router_link::part_failed(part& p, std::string_view reason) {
    batch& b = p.b_;
    --b.parts_live;
    for (std::size_t k = p.got_; k < p.count_; ++k) {
        unit& u = b.units[p.unit_ + k];
        if (u.ready) continue;
        u.ready = true;
        u.error = std::string(reason);
    }
    pump();
    sweep_later();
}

void router_link::piece_done(batch&, unit& u) {
    if (!u.replace.empty()) {
        u.reply = std::string(u.replace);
    } else if (u.pieces.size() == 1 && u.r.merged != merge::scan) {
        u.reply = std::move(u.pieces[0]);
    } else {
        merge_context ctx;
        ctx.groups = &u.r.groups;
        for (const group& g : u.r.groups) ctx.values += g.args.size();
        ctx.scan_node = u.scan_node;
        ctx.masters = static_cast<std::uint16_t>(topo_->map() ? topo_->map()->masters().size() : 1);
        ctx.random = &random_;
        u.reply = merge_replies(u.r.merged, u.pieces, ctx);
    }
    u.pieces.clear();
    u.ready = true;
}

void router_link::pump() {
    if (pumping_) {
        repump_ = true;
        return;
    }
    pumping_ = true;
    do {
        repump_ = false;
        while (!batches_.empty()) {
            batch& b = *batches_.front();
            while (!b.finished && b.delivered < b.units.size() && b.units[b.delivered].ready) {
                unit& u = b.units[b.delivered++];
                --in_flight_;
                if (!u.error.empty()) {
                    b.finished = true;
                    in_flight_ -= b.units.size() - b.delivered;
                    if (b.r != nullptr) b.r->on_error(u.error);
                    break;
                }
                if (b.r != nullptr) b.r->on_reply(b.delivered - 1, u.reply);
            }
            if (b.delivered == b.units.size() && b.routed) b.finished = true;
            if (!b.finished) break;
            retired_.push_back(std::move(batches_.front()));
            batches_.pop_front();
            sweep_later();
        }
    } while (repump_);
    pumping_ = false;
}

void router_link::sweep_later() {
    if (sweep_posted_) return;
    sweep_posted_ = true;
    // Later: a part may be in its own callback now.
    asio::post(ex_, [w = weak_from_this()] {
        auto self = w.lock();
        if (!self) return;
        self->sweep_posted_ = false;
        std::erase_if(self->retired_, [](const std::unique_ptr<batch>& b) { return b->parts_live == 0; });
    });
}

void router_link::close() {
    if (closed_) return;
    closed_ = true;
    topo_->unsubscribe(subscription_);
    const std::string reason = backend::unavailable("connection closed");
    for (auto& b : batches_) {
        if (!b->routed) {
            b->routed = true;
            b->units.resize(std::max<std::size_t>(1, b->replies));
        }
        for (unit& u : b->units)
            if (!u.ready) {
                u.ready = true;
                u.error = reason;
            }
    }
    auto nodes = std::move(nodes_);
    nodes_.clear();
    for (auto& [name, c] : nodes) c->close();
    pump();
}

}  // namespace respcache::cluster
