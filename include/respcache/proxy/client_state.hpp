#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "respcache/cache/clock.hpp"
#include "respcache/command/client_info.hpp"
#include "respcache/resp/reply_builder.hpp"

namespace respcache::proxy {

// What a client is doing; one at a time.
enum class mode : std::uint8_t {
    normal,       // commands are dispatched as they come
    transaction,  // inside MULTI: commands are queued on the dedicated connection until EXEC or DISCARD
    blocked,      // a blocking command waits on the dedicated connection; the client's input is only watched
    tunnel,       // subscribed or MONITOR: commands go straight to the dedicated connection, pushes come back
    draining,     // the server is stopping: what the client already sent is served, then it leaves
    closing,      // QUIT, a kill, a protocol error, a limit, or the client left: nothing more is read
};

// The state of one client that every part of its core reads: who it is, what it is doing, the database
// it is in and the command being handled. Owned by the client core; one thread.
struct client_state {
    explicit client_state(std::shared_ptr<command::client_info> i) : info(std::move(i)) {}

    std::shared_ptr<command::client_info> info;  // shared with CLIENT LIST
    proxy::mode mode = proxy::mode::normal;
    std::uint32_t db = 0;
    resp::protocol proto = resp::protocol::resp2;  // what HELLO chose
    std::string_view raw;    // the current command's bytes as the client sent them (or re-encoded)
    std::string rewritten;   // storage for a re-encoded command (inline, or rewritten by a handler)
    bool tracking = false;   // CLIENT TRACKING is on: dedicated links get tracking on too
    bool track_read = false; // the command being dispatched is a read Redis must track for this client
    bool from_cache = false; // ... and it was served from the cache, or joined a fill in flight (in part)
    // Put before the variant of every cache key this client reads: empty for the user of --backend, else
    // command::user_partition of its user, so that an entry is served only to clients of the user whose
    // read Redis allowed.
    std::string cache_partition;
    cache::millis now = 0;   // read once per batch, for expiry checks
    std::chrono::steady_clock::time_point batch_start;  // when the current batch was read

    std::uint64_t id() const noexcept { return info->id; }
    void set_db(std::uint32_t d) noexcept {
        db = d;
        info->db = d;
    }
};

// Milliseconds of the steady clock, the cache's time base.
inline cache::millis steady_ms() noexcept {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace respcache::proxy
