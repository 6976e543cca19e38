#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "respcache/command/tracking.hpp"
#include "respcache/proxy/forwarder.hpp"
#include "respcache/proxy/tracking_table.hpp"

namespace respcache::proxy {

// One client's CLIENT TRACKING: its mode, which of its reads are remembered (and tracked in Redis), and
// the invalidations it is sent, as Redis sends them: a RESP3 push `invalidate` to the client itself or
// to the client it redirects to, a `message` on __redis__:invalidate to a redirect target in RESP2 that
// is subscribed, `tracking-redir-broken` when the target is gone. A message leaves after every reply
// already queued, so that no reply older than the change it announces can follow it.
//
// Redis tracks what this client reads through the proxy's links: a cache hit's key is tracked already (it
// was cached by a tracked fill); a read sent on the shared link carries CLIENT CACHING yes; a dedicated
// link gets CLIENT TRACKING on REDIRECT <channel> before its first command. A read whose tracking was
// refused is followed by a flush. A BCAST client keeps a connection of its own registered in Redis with
// its prefixes, redirected to the proxy's channel. One client's thread.
class client_tracking {
public:
    client_tracking(command::context& ctx, core_parts parts, forwarder& fwd, tracking_table& table);
    ~client_tracking();

    const command::tracking_mode& mode() const noexcept { return mode_; }
    // CLIENT TRACKING on / off, CLIENT CACHING (checked already); each answers the client.
    void track(command::tracking_mode m, std::vector<std::string> added);
    void stop();
    void set_caching(bool yes) noexcept;

    // Before `args` (described by `info`) is dispatched: whether it is a read whose keys this client is
    // to hear of (so Redis must track it).
    bool wants(command::args_view args, const command::command_info* info) const noexcept;
    // `args` has been dispatched: a wanted read's keys are remembered (`since`: see
    // tracking_table::remember), a NOLOOP client's writes noted, and CLIENT CACHING is used up (unless
    // this is a CLIENT command, or queued in MULTI).
    void dispatched(command::args_view args, const command::command_info* info, bool wanted,
                    const std::uint64_t* since);

    // Whether this client is to hear of its own write `e` now (see pending::await_echo).
    bool hears_own_write(const command::owned_effect& e) const;

    // An invalidation for this client, or redirected to it by another.
    void deliver(const command::tracking_message& m);
    // A read of this client was not tracked in Redis after all: it must drop what it has.
    void untracked();
    // RESET, or the client leaves.
    void forget();

private:
    class registration;

    // Registers `prefixes` ("" for every key) on the broadcast connection (a new one when `fresh`).
    void register_broadcast(command::tracking_mode m, const std::vector<std::string>& prefixes, bool answers,
                            bool fresh);
    void remember(command::args_view args, const command::command_info* info, const std::uint64_t* since);
    void wrote(command::args_view args, const command::command_info* info);
    void registered(registration& r);
    void push(const command::tracking_message& m, resp::protocol proto, bool pubsub_message);
    void queue_push(std::string_view frame);

    command::context& ctx_;
    core_parts p_;
    forwarder& fwd_;
    tracking_table& table_;
    command::tracking_mode mode_;
    std::shared_ptr<backend::link> broadcast_;  // BCAST: registered in Redis with the prefixes
    std::int64_t broadcast_redirect_ = 0;        // the channel id it was registered for
    slot_pool<registration> registrations_;
    std::string frame_;
};

}  // namespace respcache::proxy
