#include "respcache/cluster/router_link.hpp"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "respcache/cluster/merge.hpp"
#include "respcache/resp/parser.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/ascii.hpp"
#include "router_parts.hpp"

namespace respcache::cluster {

namespace asio = boost::asio;

using detail::kMaxRedirects;

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
            if (counters* c = topo_->counted_in()) (rd->ask ? c->ask : c->moved).fetch_add(1, std::memory_order_relaxed);
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
