#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "respcache/backend/request.hpp"
#include "respcache/resp/reply_framer.hpp"
#include "respcache/util/io_buffer.hpp"

namespace respcache::backend {

// The I/O-free half of a pipelined connection: frames the bytes read from Redis into replies
// (resp::reply_framer) and hands each to the request it answers, in FIFO order, or to the stream sink
// in stream mode. It also keeps the requests' timeouts: a request that waits too long is failed on its own
// and its reply, when it comes, is dropped, so that one slow command fails no one else on the pipeline.
//
// Owned by one connection; a delivery may call back into that connection (send more, close, fail).
class reply_matcher {
public:
    using clock = std::chrono::steady_clock;
    using milliseconds = std::chrono::milliseconds;

    explicit reply_matcher(resp::limits lim) : framer_(lim) {}

    // Expects `replies` replies for `r` (nullptr: discarded) after everything expected so far; nothing
    // in stream mode, where replies are not matched.
    void expect(request* r, std::uint32_t replies, milliseconds timeout, clock::time_point now);
    // The same ahead of everything expected so far (the log-in of a new socket).
    void expect_first(request* r, std::uint32_t replies, milliseconds timeout, clock::time_point now);

    // Stream mode: once what is expected has been answered, every reply goes to `sink` (nullptr: back
    // to matching).
    void set_sink(stream_sink* sink) noexcept { sink_ = sink; }
    stream_sink* sink() const noexcept { return sink_; }

    // Delivers every complete reply at the front of `in`, consuming it, then tells the sink the batch
    // ended; stops early once `stop` is true after a delivery. Returns "" when the rest of `in` is an
    // incomplete reply (or `stop` is set), else why the stream cannot be trusted any more.
    std::string feed(io_buffer& in, const bool& stop);

    // Fails every expected request, then the sink, with `reason`; forgets the requests.
    void fail_all(std::string_view reason);
    // Forgets a half-framed reply (a new socket starts at a reply boundary).
    void restart() { framer_.reset(); }

    // Bytes arrived at `now`: the request at the head is being answered.
    void progressed(clock::time_point now) noexcept { last_progress_ = now; }
    // Fails, with "backend unavailable: no reply within <timeout>ms", every request at the front that has
    // waited longer than its timeout at `now` (since it was sent, or since the last bytes arrived, whichever
    // is later); their replies will be dropped when they come. Returns how many it failed.
    std::size_t expire(clock::time_point now);
    // The timeout of the request at the head if nothing at all has arrived for `factor` times it: the
    // backend has stopped answering (a slow command is only overdue).
    std::optional<milliseconds> silent(clock::time_point now, int factor) const noexcept;

    // Gives `error` (a whole RESP error reply) instead of their replies to the requests expected so far,
    // up to the first one for `until`: those that followed a refused SELECT, which ran in the wrong
    // database or not at all. False if no request for `until` follows (the database is then unknown).
    bool replace_replies(request* until, std::string_view error);

    std::size_t waiting() const noexcept { return pending_.size(); }

private:
    struct pending {
        request* target;
        std::uint32_t remaining;
        std::uint32_t next_index;
        clock::time_point sent;
        milliseconds timeout;
        bool expired = false;  // failed by expire(): its replies are dropped
        std::shared_ptr<const std::string> replacement;  // given instead of each reply (replace_replies)
    };

    // One complete reply: to the head request, or to the sink. False if nobody asked for it.
    bool deliver(std::string_view bytes);

    resp::reply_framer framer_;
    std::deque<pending> pending_;
    stream_sink* sink_ = nullptr;
    clock::time_point last_progress_{};
    std::size_t expired_front_ = 0;  // expired requests are a prefix of pending_: its length
};

}  // namespace respcache::backend
