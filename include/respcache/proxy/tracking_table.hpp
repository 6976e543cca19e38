#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "respcache/command/catalog.hpp"
#include "respcache/command/client_info.hpp"
#include "respcache/command/effects.hpp"
#include "respcache/command/tracking.hpp"

namespace respcache::proxy {

// Which of respcache's clients hear of which changed keys (CLIENT TRACKING), as Redis keeps it for its
// own clients: a tracking client (not BCAST) is told of a key it read while tracking the first time the
// key changes afterwards, and must read it again to hear of it again; a BCAST client of every changed key
// under one of its prefixes; NOLOOP, of no change it made itself; every tracking client of a flush. The
// changes come from the proxy's invalidation channel (coherence::tracker's observer), which hears of
// every key the proxy's links read while tracked, so the reads it remembers here must have been tracked
// in Redis (client_tracking sees to it).
//
// Thread-safe: remembered from every io thread, fed by whichever thread reads the channel. A message for
// a client is handed to its client_info::deliver, which posts it to the client's thread.
class tracking_table {
public:
    explicit tracking_table(command::client_registry& clients) : clients_(clients) {}

    // Client `id` tracks in `mode` (replacing what it had; keys it read stay remembered, as in Redis).
    void enable(std::uint64_t id, const command::tracking_mode& mode);
    void disable(std::uint64_t id);
    // How far the changes heard have come: taken before a read is served from the cache, and given back
    // to remember() with its keys.
    std::uint64_t mark() const noexcept { return changes_.load(std::memory_order_acquire); }
    // Keys client `id` read while tracking. With `since` (a mark taken before the read was served from
    // the cache, or joined a fill in flight), a key that changed after the mark (as far as the table can
    // tell: a key of the same stripe did) is not remembered: the client is told of it at once.
    void remember(std::uint64_t id, std::span<const std::string_view> keys, const std::uint64_t* since = nullptr);
    // Client `id` sent a write of `keys`: with NOLOOP it is not told of that change.
    void wrote(std::uint64_t id, std::span<const std::string_view> keys);
    // Whether client `id` is to hear of its own write `e` (it tracks a key of it, without NOLOOP): then
    // Redis would send that invalidation right behind the write's reply.
    bool hears_own_write(std::uint64_t id, const command::owned_effect& e) const;
    // The channel: these keys changed, or (flush) everything did.
    void changed(std::span<const std::string_view> keys, bool flush);
    std::size_t tracking_clients() const;

    // Keys whose changes remember() cannot tell apart.
    static constexpr std::size_t kStripes = 1024;
    static std::size_t stripe(std::string_view key) noexcept;

private:
    struct tracker {
        bool bcast = false;
        bool noloop = false;
        std::vector<std::string> prefixes;       // BCAST ("" alone: every key)
        std::unordered_set<std::string> written;  // BCAST NOLOOP: its own changes not yet heard back
    };
    // One message per client and prefix (a flush: prefix ""), in prefix order, as Redis sends them.
    using batches = std::map<std::pair<std::uint64_t, std::string_view>, command::tracking_message>;
    void broadcast(std::string_view key, batches& out);  // mu_ held

    command::client_registry& clients_;
    mutable std::mutex mu_;
    // Every change() of keys numbers itself; each stripe of keys holds the number of its last change. A
    // hit finds its entry before the channel's thread drops it, and the channel tells the table only
    // after that: a hit remembered after the table heard of the change sees the stripe past its mark.
    std::atomic<std::uint64_t> changes_{0};                               // written under mu_
    std::array<std::uint64_t, kStripes> last_change_{};                   // GUARDED_BY(mu_)
    std::unordered_map<std::uint64_t, tracker> trackers_;                 // GUARDED_BY(mu_)
    command::string_map<std::vector<std::uint64_t>> keys_;                // GUARDED_BY(mu_): key -> readers
    std::size_t bcast_clients_ = 0;                                       // GUARDED_BY(mu_)
};

}  // namespace respcache::proxy
