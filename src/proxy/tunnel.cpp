#include "respcache/proxy/tunnel.hpp"

#include "respcache/resp/reply_builder.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::proxy {

tunnel::tunnel(core_parts parts, forwarder& fwd, tunnel_owner& owner) : p_(parts), fwd_(fwd), owner_(owner) {}

void tunnel::enter(bool monitor) {
    fwd_.pin();
    backend::link& l = fwd_.pinned_link();
    l.select(p_.client.db);  // answered in request mode, before the stream starts
    std::string prelude;
    if (fwd_.pinned_tracking_prelude(prelude)) l.send(prelude, 1, nullptr);
    l.set_stream_sink(this);
    p_.client.mode = mode::tunnel;
    monitor_ = monitor;
    p_.client.info->monitor = monitor;
    ending_.reset();
    channels_ = 0;
    shard_channels_ = 0;
    l.send(p_.client.raw, 0, nullptr);
}

void tunnel::send(command::args_view args, const command::command_info* info) {
    // Once the last subscription is gone Redis runs anything, writes included: they invalidate as
    // usual, when sent and again once their replies are in (at the next marker).
    const command::cache_effect& e = fwd_.effect_of(args, info, p_.client.db);
    if (!e.empty()) {
        effect_.add(e);
        effect_.apply(p_.env.cache);
    }
    synced_ = false;
    fwd_.pinned_link().send(p_.client.raw, 0, nullptr);
}

void tunnel::end(tunnel_end how) { start_ending(how); }

void tunnel::start_ending(tunnel_end how) {
    ending_ = how;
    send_marker();
}

void tunnel::send_marker() {
    marker_ = "respcache-marker:" + std::to_string(p_.client.id()) + ":" + std::to_string(++marker_seq_);
    std::string bytes;
    resp::write_command(bytes, {"PING", marker_});
    synced_ = false;
    fwd_.pinned_link().send(bytes, 0, nullptr);
}

bool tunnel::synced() {
    if (synced_) return true;
    if (!syncing_) {
        syncing_ = true;
        send_marker();
    }
    return false;
}

void tunnel::abandon() noexcept {
    ending_.reset();
    syncing_ = synced_ = false;
    monitor_ = false;
    effect_.clear();
    channels_ = shard_channels_ = 0;
    p_.client.info->monitor = false;
    p_.client.info->subscriptions = 0;
    p_.client.info->shard_subscriptions = 0;
}

void tunnel::finish(tunnel_end how) {
    // Every reply to what the client sent before the marker is relayed.
    if (!effect_.empty()) {
        effect_.apply(p_.env.cache);
        effect_.clear();
    }
    if (how == tunnel_end::left) {
        if (channels_ != 0 || shard_channels_ != 0 || monitor_) return;  // subscribed again meanwhile
        fwd_.pinned_link().set_stream_sink(nullptr);
    }
    abandon();
    owner_.tunnel_done(how);
}

bool tunnel::note_counts(std::string_view bytes) {
    // Pub/sub frames: arrays in RESP2, pushes in RESP3, both [kind, channel, (pattern,) payload | count].
    if (monitor_ || bytes.empty() || (bytes[0] != '*' && bytes[0] != '>')) return false;
    auto items = resp::elements(bytes);
    if (!items || items->empty()) return false;
    auto kind = resp::string_value((*items)[0]);
    if (!kind) return false;
    if (*kind == "pmessage") return true;
    if (items->size() != 3) return false;
    if (*kind == "message" || *kind == "smessage") return true;
    auto count = resp::integer_value((*items)[2]);
    if (!count) return false;
    if (*kind == "subscribe" || *kind == "unsubscribe" || *kind == "psubscribe" || *kind == "punsubscribe") {
        channels_ = *count;
        p_.client.info->subscriptions = static_cast<int>(channels_);
        return true;
    }
    if (*kind == "ssubscribe" || *kind == "sunsubscribe") {
        shard_channels_ = *count;
        p_.client.info->shard_subscriptions = static_cast<int>(shard_channels_);
        return true;
    }
    return false;
}

void tunnel::on_stream_reply(std::string_view bytes) {
    if ((ending_ || syncing_) && bytes.size() < marker_.size() + 64 && bytes.find(marker_) != std::string_view::npos) {
        if (syncing_) {
            syncing_ = false;
            synced_ = true;
            owner_.tunnel_output();
            if (!monitor_ && channels_ == 0 && shard_channels_ == 0) start_ending(tunnel_end::left);
            return;
        }
        const tunnel_end how = *ending_;
        ending_.reset();
        finish(how);
        return;
    }
    // Messages and (un)subscribe confirmations are pushed, not replies: CLIENT REPLY OFF does not hide them.
    const bool pushed = note_counts(bytes) || resp::is_push(bytes);
    if (pushed || !p_.queue.reply_off()) p_.queue.output().append(bytes);
    owner_.tunnel_output();
    if (p_.client.mode != mode::tunnel) return;  // cut off for its output
    // Once nothing is subscribed any more, check (with a marker) that nothing else is on its way, then
    // leave the tunnel and give the link back.
    if (!monitor_ && channels_ == 0 && shard_channels_ == 0 && !ending_ && !syncing_) start_ending(tunnel_end::left);
}

void tunnel::on_stream_error(std::string_view reason) {
    resp::reply_builder(&p_.queue.output()).error("ERR " + std::string(reason));
    abandon();
    owner_.tunnel_done(tunnel_end::failed);
}

}  // namespace respcache::proxy
