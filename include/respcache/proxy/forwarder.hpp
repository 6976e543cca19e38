#pragma once

#include <chrono>
#include <functional>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/command/effects.hpp"
#include "respcache/proxy/parts.hpp"

namespace respcache::proxy {

// Sends a client's commands to Redis, on its thread's shared link or on a dedicated link the client
// holds (pins) while its state needs one: MULTI, WATCH, a blocking command, a subscription. It counts
// what is in flight, and keeps the writes in flight so that a cached read queued behind one of them
// goes to Redis instead (coherence invariant 1). One client's thread.
class forwarder {
public:
    explicit forwarder(core_parts parts);
    ~forwarder();

    // ---- Links ----
    // Where the client's next command goes: the pinned link, else the shared one.
    backend::link& target();
    // The shared link, and what coherence knows of it.
    backend::link& shared_link();
    coherence::link_tracking& shared_tracking();
    bool pinned() const noexcept { return pinned_ != nullptr; }
    // The links the client's commands go to from now on: those of the user it logged in as (AUTH, HELLO
    // AUTH); a default user_links for the proxy's own. A link pinned now stays until it is released.
    void use_links(user_links l);
    // Whether the client's shared link found Redis unreachable: its last attempt failed, and it waits to
    // try again. Not while it connects (after a lost socket it reconnects at once: Redis may be there).
    bool backend_down() { return shared_link().state() == backend::link_state::down; }
    backend::link& pinned_link() noexcept { return *pinned_; }
    // Holds a dedicated link from now on (no-op if one is held).
    void pin();
    // Gives the dedicated link back; `clean` when its Redis-side state is a new connection's.
    void release(bool clean);
    // The pinned link failed a request: whatever state it held (MULTI, WATCH) is gone.
    bool pinned_broken() const noexcept { return pinned_broken_; }
    // For a tracking client whose pinned link does not track yet: appends CLIENT TRACKING on REDIRECT
    // <channel> to `out` (its reply is nobody's) and returns true.
    bool pinned_tracking_prelude(std::string& out);
    // The tracking client stopped tracking: the connection it kept for its reads goes.
    void drop_retained();
    // Told when a tracked read turns out not to have been tracked in Redis (refused, or the channel moved).
    std::function<void()> on_untracked_read;
    // Asked of a tracking client's write: whether the client is to hear of it (then `p` awaits the echo).
    std::function<bool(const command::owned_effect&)> hears_own_write;
    void mark_own_write(pending& p, const command::owned_effect& e);

    // ---- Sending ----
    // Queues `p` (already in the reply queue) on target(), in the client's database.
    void send(pending& p, std::string_view bytes, std::uint32_t replies, std::chrono::milliseconds timeout);
    // The same on a link of the caller's (an AUTH's own connection), in whatever database it is in.
    void send_on(backend::link& l, pending& p, std::string_view bytes, std::uint32_t replies,
                 std::chrono::milliseconds timeout);
    // `p`, in no reply queue, on the shared link in database `db`: a request whose reply is no client's
    // (a refresh). Counted apart from in_flight(); `detached_done` when it has completed.
    void send_detached(pending& p, std::uint32_t db, std::string_view bytes, std::uint32_t replies,
                       std::chrono::milliseconds timeout);
    void detached_done(pending& p);
    std::size_t detached() const noexcept { return detached_; }
    // Called as each detached request ends (the client's shell may be waiting for the last).
    std::function<void()> on_detached_done;
    // `p` (already in the reply queue) waits for a reply that comes another way (a shared fill): it is
    // in flight all the same, until answered.
    void waiting(pending& p);
    // `p` has all its replies (pending::complete ran): the bookkeeping of what is in flight.
    void answered(pending& p);
    std::size_t in_flight() const noexcept { return in_flight_; }

    // ---- Commands ----
    // The client's command as it sent it; `info` is the backend's description (looked up when nullptr).
    // Its cache effect is applied now and again at its reply.
    void forward(command::args_view args, const command::command_info* info = nullptr);
    // INFO, with the proxy's section appended to Redis's when `with_proxy`; on the shared link even when
    // one is pinned (a subscriber's) with `on_shared`.
    void forward_info(bool with_proxy, bool on_shared = false);
    // A command that may block, on a pinned link, for as long as Redis may keep it blocked.
    void forward_blocking(command::args_view args, const command::command_info* info);
    // SELECT judged by Redis (its database count is unknown), leaving the shared link where it was.
    void select_via_backend(std::uint32_t db);
    // The command as sent, on a dedicated link, without SELECT (SCRIPT KILL, FUNCTION KILL).
    void forward_alone();
    // A command queued inside MULTI (its effect was applied by the transaction).
    void forward_queued();

    // Whether a write in flight may change `k`: a read of it must not be served from the cache.
    bool write_in_flight(const cache::key& k) const noexcept;
    // A write was sent with effect `e` (owned by its pending request): it was applied to the cache now;
    // write_answered() applies it again at the reply and forgets it.
    void write_sent(const command::owned_effect& e);
    void write_answered(const command::owned_effect& e);
    // The effect of `args` in database `db`, computed into a buffer reused across commands.
    const command::cache_effect& effect_of(command::args_view args, const command::command_info* info, std::uint32_t db);

    environment& env() noexcept { return p_.env; }

private:
    class forward_request;
    class blocking_request;
    class select_probe;

    const command::command_info* describe(command::args_view args) const;
    std::size_t shared_index() const noexcept;
    // Computes the effect of `args` into `into` (a pending write's) and applies it now.
    void carry_effect(command::owned_effect& into, command::args_view args, const command::command_info* info);
    // Sends the client's command as it sent it, for `p`.
    void send_as_sent(pending& p);
    // Sets or clears the host's backend_busy from what `p` got.
    void note_backend_health(const pending& p);

    core_parts p_;
    slot_pool<forward_request> forwards_;
    slot_pool<blocking_request> blockings_;
    slot_pool<select_probe> probes_;
    backend::link_pool& links() noexcept;
    const backend::link_pool& links() const noexcept;

    user_links user_;  // the client's user's links; null members: the proxy's own (p_.env)
    std::shared_ptr<backend::link> pinned_;
    bool pinned_broken_ = false;
    bool pinned_tracked_ = false;  // CLIENT TRACKING was turned on on the pinned link
    std::shared_ptr<backend::link> retained_;  // a tracking client's dedicated link, kept between uses
    std::uint64_t retained_epoch_ = 0;         // the channel epoch its tracking redirects to
    std::size_t in_flight_ = 0;
    std::size_t detached_ = 0;
    std::vector<const command::owned_effect*> writes_;  // effects of the writes not yet answered
    command::cache_effect effect_scratch_;
    std::string request_scratch_;
    std::string prelude_scratch_;
};

}  // namespace respcache::proxy
