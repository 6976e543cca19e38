#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "respcache/resp/protocol.hpp"

namespace respcache::command {

// A client's CLIENT TRACKING state, as CLIENT TRACKINGINFO shows it.
struct tracking_mode {
    enum class caching : std::uint8_t { unset, yes, no };  // CLIENT CACHING, for the next command

    bool on = false;
    bool bcast = false;
    bool optin = false;
    bool optout = false;
    bool noloop = false;
    bool broken_redirect = false;  // the client it redirects to is gone
    std::uint64_t redirect = 0;    // the client invalidations go to; 0: itself
    std::vector<std::string> prefixes;  // BCAST, in byte order
    caching next = caching::unset;
};

// An invalidation on its way to a client, delivered on that client's thread.
struct tracking_message {
    std::vector<std::string> keys;  // the keys that changed; none with `flush`
    bool flush = false;             // everything changed (FLUSHALL, or the proxy lost track)
    std::uint64_t tracker = 0;      // the tracking client it is for
    bool redirected = false;        // on its way to the client `tracker` redirects to
    // The tracker's protocol: Redis writes a flush's null in it, whatever the client it redirects to speaks.
    resp::protocol tracker_proto = resp::protocol::resp2;
};

}  // namespace respcache::command
