#pragma once

// --warm-file: the reads of the hottest entries (their keys and commands, never their values) saved
// atomically at shutdown and every --warm-interval, and at start-up sent to Redis again through a client
// core of respcache's own, so that the entries are filled, tracked, like any miss: nothing stale survives
// a restart. respcache reports ready (/readyz) once they have all been answered.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "respcache/cache/lru_cache.hpp"
#include "respcache/command/cache_plan.hpp"

namespace respcache::server {

class services;
class worker;

// One saved read: its database and what fills the entry.
struct warm_read {
    std::uint32_t db = 0;
    command::entry_read read;
};

// The file's bytes: a header line, each read as a RESP array (database, protocol, then the command),
// and a trailer line with the count and an FNV-1a hash of the reads' bytes.
std::string encode_warm_file(const std::vector<warm_read>& reads);
// The reads of a file's bytes; nullopt and `error` if the header, the trailer, the hash or a read is wrong.
std::optional<std::vector<warm_read>> decode_warm_file(std::string_view bytes, std::string& error);

// The reads of the hottest `max` entries of `cache` that `plan` still caches.
std::vector<warm_read> hottest_reads(const cache::lru_cache& cache, const command::cache_plan& plan, std::size_t max);

// Writes `bytes` to `path` atomically (a temporary file beside it, flushed, then renamed over it).
bool write_file_atomically(const std::string& path, std::string_view bytes, std::string& error);

// The warm start and the periodic save, on one worker's thread.
class warm_start {
public:
    warm_start(worker& w, services& svc);
    ~warm_start();
    warm_start(const warm_start&) = delete;
    warm_start& operator=(const warm_start&) = delete;

    // Reads the file (a missing, truncated or corrupt one is logged as a warning: a cold start), waits for
    // the backend and the invalidation channel, and replays its reads; then saves every --warm-interval.
    // Own thread only.
    void start();
    // Saves the file now. Own thread only.
    void save_now();
    // Shutdown has begun: a last save, and no more. Own thread only.
    void stop();

private:
    class replayer;

    void replay(std::vector<warm_read> reads);
    void wait_until_ready(std::vector<warm_read> reads, std::chrono::steady_clock::time_point give_up);
    void replayed();
    void schedule_save();

    worker& worker_;
    services& svc_;
    boost::asio::steady_timer timer_;
    std::vector<std::unique_ptr<replayer>> replayers_;
    std::size_t pending_ = 0;
    std::size_t reads_ = 0;
    std::chrono::steady_clock::time_point began_;
    bool stopped_ = false;
};

}  // namespace respcache::server
