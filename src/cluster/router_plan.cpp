#include "respcache/cluster/router_link.hpp"

#include <algorithm>
#include <utility>

#include "respcache/resp/writer.hpp"
#include "respcache/util/ascii.hpp"
#include "router_parts.hpp"

namespace respcache::cluster {

using detail::kExecAbort;

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

namespace {
void answer_here(route& r, std::string_view reply) {
    r.how = route::kind::local;
    r.reply = reply;
}
}  // namespace

bool router_link::plan_transaction_control(unit& u, std::string_view name) {
    auto& t = txn_;
    auto answer = [&u](std::string_view reply) {
        answer_here(u.r, reply);
        return true;
    };
    if (name == "multi") {
        if (t.deferred) return answer("-ERR MULTI calls can not be nested\r\n");
        if (t.open || t.watching) {
            t.open = true;
            u.to = t.node;
            return true;
        }
        t.deferred = true;
        return answer("+OK\r\n");
    }
    if (name == "exec" || name == "discard") {
        if (t.deferred) {
            answer_here(u.r, name == "discard" ? "+OK\r\n" : t.dirty ? kExecAbort : "*0\r\n");
        } else if (t.open && name == "exec" && t.dirty) {
            // Redis would have refused the transaction for the command refused inside it.
            u.to = t.node;
            u.raw = "*1\r\n$7\r\nDISCARD\r\n";
            u.replace = kExecAbort;
        } else if (t.node) {
            u.to = t.node;
        }
        if (t.deferred || t.open) t = {};
        return true;
    }
    if (name == "reset") {
        t = {};
        sticky_.reset();
        return true;
    }
    if (name == "unwatch") {
        if (t.node) u.to = t.node;
        if (!t.open && !t.deferred) t = {};
        return true;
    }
    return false;
}

void router_link::plan_transaction(unit& u, std::string_view name, std::span<const std::string_view>) {
    if (plan_transaction_control(u, name)) return;
    auto& t = txn_;
    if (!t.open && !t.deferred && !t.watching && name != "watch") return;
    auto refuse = [&] {
        answer_here(u.r, kCrossSlot);
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

}  // namespace respcache::cluster
