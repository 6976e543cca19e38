#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "respcache/command/effects.hpp"
#include "respcache/proxy/forwarder.hpp"

namespace respcache::proxy {

// How a tunnel ended.
enum class tunnel_end : std::uint8_t {
    left,    // the last subscription ended: the client is an ordinary client again
    quit,    // QUIT while subscribed: +OK, then the connection closes
    reset,   // RESET while subscribed: the client starts afresh
    failed,  // the dedicated link failed (its error was sent to the client)
};

// What the tunnel tells the client core.
class tunnel_owner {
public:
    virtual ~tunnel_owner() = default;
    // Bytes were added to the output: check its limit, wake the shell.
    virtual void tunnel_output() = 0;
    // The tunnel is over (the dedicated link is still pinned).
    virtual void tunnel_done(tunnel_end how) = 0;
};

// Subscribers and MONITOR. The client's commands go straight to its dedicated link in stream mode, and
// every reply or push Redis sends is relayed as it comes. The tunnel ends when the last subscription is
// gone, and on QUIT or RESET; in each case a PING with a marker is sent first, and the tunnel ends only
// when its PONG comes back, so that no reply to what the client sent before is lost or reordered. Writes
// sent through the tunnel (Redis runs anything once nothing is subscribed) invalidate as usual. One
// client's thread.
class tunnel final : public backend::stream_sink {
public:
    tunnel(core_parts parts, forwarder& fwd, tunnel_owner& owner);

    // SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE or MONITOR (the current command) starts the tunnel.
    void enter(bool monitor);
    // A command of the client while in the tunnel.
    void send(command::args_view args, const command::command_info* info);
    // QUIT or RESET while in the tunnel: ends it once everything before has been relayed.
    void end(tunnel_end how);
    // Whether a marker's PONG is awaited (an end under way, or a sync): the client's next commands wait.
    bool ending() const noexcept { return ending_.has_value() || syncing_; }
    // Whether every reply to what the client sent through the tunnel has been relayed (a command
    // answered by the proxy itself may go out now, in order). If not, a sync marker is sent and the
    // client's next commands wait for it.
    bool synced();
    // The client is gone: the tunnel's state is forgotten (the caller drops the link).
    void abandon() noexcept;

    void on_stream_reply(std::string_view bytes) override;
    void on_stream_error(std::string_view reason) override;

private:
    // Sends the marker PING whose PONG ends the tunnel `how`.
    void start_ending(tunnel_end how);
    void send_marker();
    void finish(tunnel_end how);
    // True if `bytes` is a message or an (un)subscribe confirmation (a push), whose count it notes.
    bool note_counts(std::string_view bytes);

    core_parts p_;
    forwarder& fwd_;
    tunnel_owner& owner_;
    bool monitor_ = false;
    std::optional<tunnel_end> ending_;  // how the tunnel ends when the marker's PONG comes
    bool syncing_ = false;              // a marker is out for synced()
    bool synced_ = false;               // nothing was sent since the last marker came back
    std::string marker_;
    std::uint64_t marker_seq_ = 0;
    command::owned_effect effect_;  // writes sent since the last marker
    std::int64_t channels_ = 0;
    std::int64_t shard_channels_ = 0;
};

}  // namespace respcache::proxy
