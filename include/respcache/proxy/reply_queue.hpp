#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>

#include "respcache/command/context.hpp"
#include "respcache/proxy/slot.hpp"

namespace respcache::proxy {

// A client's replies in request order, and CLIENT REPLY's suppression. Each command takes a slot (or
// writes straight to the output when nothing waits ahead of it); slots still waiting for Redis hold
// back the ones behind them; done slots at the front move to the output, which the I/O shell writes.
// No I/O; one client's thread.
class reply_queue {
public:
    reply_queue();

    // ---- CLIENT REPLY ----
    // Starts a command: its reply is suppressed under OFF, or once after SKIP.
    void begin_command() noexcept;
    // The command was not run after all (it waits for earlier replies): SKIP still applies to it.
    void undo_begin() noexcept;
    bool suppressed() const noexcept { return this_suppressed_; }
    // CLIENT REPLY OFF is on (a subscriber's pushes are dropped too).
    bool reply_off() const noexcept { return off_; }
    // CLIENT REPLY ON|OFF|SKIP; ON takes effect for its own reply, OFF and SKIP suppress theirs.
    void set_mode(command::reply_mode m) noexcept;
    // This command's reply is sent whatever the mode (RESET), and the mode is back to ON.
    void unsuppress() noexcept;

    // ---- Replies ----
    // Where the current command's reply made here goes: the output when nothing waits ahead of it, a
    // done slot of its own otherwise, or a scratch buffer nobody reads when suppressed. Stable until
    // the next call.
    std::string& local_target();
    // Takes back the slot the last local_target() made, if it got no bytes (a cache lookup that missed).
    void abandon_local() noexcept;
    // Queues a slot that waits for Redis; finished() once its data is in.
    void push(std::unique_ptr<slot> s);
    // Takes a slot of kind T from `pool` and queues it.
    template <typename T>
    T& push_new(slot_pool<T>& pool) {
        std::unique_ptr<T> owned = pool.take();
        T& s = *owned;
        push(std::move(owned));
        return s;
    }
    // `s` got its reply: its bytes (and those of the done slots behind it) move to the output in order.
    void finished(slot& s);
    // Bytes that answer no request (an invalidation push): after every reply queued so far, whatever
    // CLIENT REPLY says.
    void push_unsolicited(std::string_view bytes);
    bool empty() const noexcept { return slots_.empty(); }

    // ---- Output ----
    // Bytes ready to be written.
    std::string& output() noexcept { return out_; }
    // The shell takes the output for a write of `into`'s new contents; written() when it is done.
    void take_output(std::string& into);
    void written() noexcept { writing_ = 0; }
    // Bytes queued for the client and not yet written: what --client-output-buffer-limit bounds.
    std::size_t unwritten() const noexcept {
        return out_.size() + writing_ + held_ + (last_local_ != nullptr ? last_local_->data.size() : 0);
    }

    // The client is gone or cut off: the output is dropped, and so is every reply still to come.
    void discard() noexcept;
    bool discarding() const noexcept { return discarding_; }

private:
    void drain();
    // The slot the last local_target() made is written: count it as held back.
    void settle_local() noexcept;

    class local_slot;
    slot_pool<local_slot> locals_;
    std::deque<std::unique_ptr<slot>> slots_;  // in request order
    slot* last_local_ = nullptr;               // made by the last local_target(), until abandoned or drained
    std::string out_;
    std::string scratch_;      // suppressed replies
    std::size_t writing_ = 0;  // bytes of the write under way
    std::size_t held_ = 0;     // bytes of done slots held back behind one still waiting
    bool off_ = false;         // CLIENT REPLY OFF
    bool skip_next_ = false;   // CLIENT REPLY SKIP, for the next command
    bool this_suppressed_ = false;
    bool skip_saved_ = false;  // skip_next_ before begin_command (for undo_begin)
    bool discarding_ = false;
};

}  // namespace respcache::proxy
