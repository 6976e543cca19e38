#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "respcache/backend/link.hpp"
#include "respcache/proxy/slot.hpp"

namespace respcache::proxy {

class pending;

// Told when a pending request has all its replies (or failed): the client core, which counts what is
// in flight, moves the reply along the queue and wakes the I/O shell.
class completion_sink {
public:
    virtual ~completion_sink() = default;
    virtual void completed(pending& p) = 0;
    // Whether replies are dropped as they come (the client is gone).
    virtual bool discarding() const noexcept = 0;
};

// A request sent to Redis: its place in the reply queue, and the receiver of its replies on the link.
// A request may carry commands before the client's (a prelude, such as CLIENT CACHING yes) and after
// it (PTTL); `client_index` says which reply is the client's. Each kind is a small subclass with its own
// completion; none has a kind switch. Lives in the reply queue until its reply has left.
class pending : public slot, public backend::request {
public:
    pending(slot_home& home, completion_sink& sink) noexcept : slot(home), sink_(&sink) {}

    void on_reply(std::size_t index, std::string_view bytes) final;
    void on_error(std::string_view reason) final;
    void on_push(std::string_view bytes) final;

    backend::link* link = nullptr;   // where it was sent
    std::uint32_t client_index = 0;  // which reply is the client's (earlier ones are preludes)
    std::uint32_t replies = 1;
    bool errored = false;            // the link failed before every reply was in
    bool got_reply = false;          // the client's reply is in `data`
    // A tracking client's write of a key it tracks: its reply waits until the channel has brought that
    // key's invalidation, which follows the reply as it does from Redis.
    bool await_echo = false;
    bool keep_reply = false;         // the reply is kept even for a client that is gone (others wait for it)

    // Every reply is in, or the link failed: the kind's own work, before the reply moves on.
    virtual void complete() {}

protected:
    void clear() override;
    // A reply before the client's, or after it.
    virtual void prelude_reply(std::size_t /*index*/, std::string_view /*bytes*/) {}
    virtual void trailing_reply(std::size_t /*index*/, std::string_view /*bytes*/) {}
    // The link failed: kinds that filled something may need to undo it.
    virtual void failed() {}
    // The reply came by another way than this request's own link (another client's shared fill).
    void deliver(std::string_view bytes, bool answered);

    // Parts of the reply that other clients' fills bring (an MGET's keys): the request finishes once
    // its link's replies and every part are in, whichever comes last.
    std::uint32_t parts_awaited = 0;
    void part_arrived();
    // A request that waits for parts only: its link's share is done before it begins.
    void no_link_replies() noexcept { link_done_ = true; }
    // Every reply of the link is in, or it failed; before any part still awaited.
    virtual void link_complete() {}

private:
    void link_finished();
    void finish();

    bool link_done_ = false;

    completion_sink* sink_;
    std::string pushed_;  // pushes Redis sent ahead of the reply: the client gets them first
};

}  // namespace respcache::proxy
