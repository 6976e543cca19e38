#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace respcache::backend {

// The receiver of the replies to one request sent on a link. The sender owns it and must keep it alive
// until it has seen its last reply or on_error: the link guarantees exactly one of
//   - on_reply for every index 0..replies-1, in order, or
//   - on_reply for a prefix of them, then on_error once.
// Callbacks run on the link's executor and may call back into the link.
class request {
public:
    virtual ~request() = default;
    // `bytes` is one complete RESP reply, valid only during the call.
    virtual void on_reply(std::size_t index, std::string_view bytes) = 0;
    // The link failed before the remaining replies arrived. `reason` is one line, such as
    // "backend unavailable: Connection refused".
    virtual void on_error(std::string_view reason) = 0;
    // A RESP3 push that came while this request was the first waiting, before its replies, and is not
    // about the link's own tracking (DEBUG PROTOCOL push, say): Redis sent it to whoever sent the
    // command, so it goes to the client too.
    virtual void on_push(std::string_view /*bytes*/) {}
};

// Receives every reply of a link in stream mode, where replies are not matched to requests
// (subscribers, MONITOR, the invalidation channel).
class stream_sink {
public:
    virtual ~stream_sink() = default;
    virtual void on_stream_reply(std::string_view bytes) = 0;
    virtual void on_stream_error(std::string_view reason) = 0;
    // Every complete reply of one read from the socket has been delivered.
    virtual void on_stream_batch_end() {}
};

// "backend unavailable: <detail>", the one prefix every backend failure reaches clients with.
std::string unavailable(std::string_view detail);

}  // namespace respcache::backend
