#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "respcache/command/tracking.hpp"

namespace respcache::command {

// What CLIENT LIST / CLIENT INFO show of one client, and how to end it from any thread. Created and
// written by the client's own core (and its CLIENT handlers); read by whichever thread runs CLIENT LIST
// or CLIENT KILL.
struct client_info {
    std::uint64_t id = 0;
    std::string addr;    // ip:port of the client
    std::string laddr;   // ip:port it connected to
    std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
    std::atomic<std::int64_t> last_active_ms{0};  // steady clock
    std::atomic<std::uint32_t> db{0};
    std::atomic<int> multi{-1};         // commands queued in MULTI, -1 outside
    std::atomic<int> subscriptions{0};  // channels + patterns
    std::atomic<int> shard_subscriptions{0};
    std::atomic<bool> monitor{false};
    std::atomic<bool> blocked{false};
    std::atomic<std::int64_t> blocked_backend_id{0};  // CLIENT ID of the connection a blocking command waits on
    std::atomic<int> resp{2};           // the protocol HELLO chose
    mutable std::mutex mu;
    std::string name;      // GUARDED_BY(mu)
    std::string lib_name;  // GUARDED_BY(mu)
    std::string lib_ver;   // GUARDED_BY(mu)
    std::string last_command = "NULL";  // GUARDED_BY(mu)
    std::string user = "default";       // GUARDED_BY(mu)
    bool no_evict = false;              // GUARDED_BY(mu)
    bool no_touch = false;              // GUARDED_BY(mu)
    char last_seen_[16] = {};     // the owner's copy of the last name, to skip the lock on repeats
    std::uint8_t last_seen_len_ = 0;
    // Ends the client: posts the close to the client's own thread. Set and cleared by its I/O shell
    // under `mu`; call end() from any thread.
    std::function<void()> kill;  // GUARDED_BY(mu)
    void end() const;
    // Hands an invalidation to the client (posts it to the client's thread). Set and cleared by its I/O
    // shell under `mu`; call deliver() from any thread (nothing happens once the client is gone).
    std::function<void(tracking_message)> inbox;  // GUARDED_BY(mu)
    void deliver(tracking_message m) const;

    // Records the command being run (for cmd= in CLIENT LIST). Cheap when it is the same as last time:
    // no lock is taken then.
    void note_command(std::string_view name);

    // The line of CLIENT LIST for this client, in Redis's format (without the trailing newline).
    std::string describe() const;
};

// Every connected client, for CLIENT LIST / KILL / UNBLOCK. Thread-safe; touched at connect, disconnect
// and by those commands only.
class client_registry {
public:
    void add(std::shared_ptr<client_info> c);
    void remove(std::uint64_t id);
    std::vector<std::shared_ptr<client_info>> snapshot() const;
    std::shared_ptr<client_info> find(std::uint64_t id) const;
    std::size_t size() const;

private:
    mutable std::mutex mu_;
    std::unordered_map<std::uint64_t, std::shared_ptr<client_info>> clients_;  // GUARDED_BY(mu_)
};

}  // namespace respcache::command
