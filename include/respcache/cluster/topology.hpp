#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "respcache/backend/connection.hpp"
#include "respcache/cluster/slots.hpp"

namespace respcache::cluster {

// What INFO proxy and /metrics say of the cluster: the process's figures, written by every io thread.
struct counters {
    std::atomic<std::uint64_t> masters{0};    // in the last slot map learned
    std::atomic<std::uint64_t> refreshes{0};  // CLUSTER SLOTS answered
    std::atomic<std::uint64_t> moved{0};      // MOVED redirections followed
    std::atomic<std::uint64_t> ask{0};        // ASK redirections followed
};

// What one io thread knows of the cluster's slots: learned from CLUSTER SLOTS, asked of the known
// masters and then the seeds in turn; asked again every few seconds, soon after a MOVED redirection
// (whose slot is reassigned at once) or a lost node, and with backoff while no answer comes. Each io
// thread has its own: nothing here is shared between threads. Lives on one executor; not thread-safe.
class topology : public std::enable_shared_from_this<topology> {
public:
    struct timing {
        std::chrono::milliseconds every{5000};        // a refresh this often
        std::chrono::milliseconds soon{20};           // after a MOVED or a lost node
        std::chrono::milliseconds first_retry{100};   // after a round of failed attempts, doubling
        std::chrono::milliseconds max_retry{1000};
    };

    // `base`: the options of every node connection (user, password, timeouts, limits); `seeds` the
    // addresses given in --backend. `log_changes`: log each new map (one thread does).
    topology(boost::asio::any_io_executor ex, backend::connection_options base, std::vector<node_address> seeds,
             bool log_changes, timing t);
    topology(boost::asio::any_io_executor ex, backend::connection_options base, std::vector<node_address> seeds,
             bool log_changes)
        : topology(ex, std::move(base), std::move(seeds), log_changes, timing{}) {}
    ~topology();

    void start();
    void close();

    // The map, nullptr until the first answer.
    const slot_map* map() const noexcept { return map_ ? &*map_ : nullptr; }
    // Why the last round of attempts failed ("" when the last one succeeded).
    const std::string& last_error() const noexcept { return last_error_; }
    // Whether a round of attempts is under way with no map known yet.
    bool loading() const noexcept { return !map_ && last_error_.empty(); }

    // A MOVED redirection: the slot is the node's from now on, and the map is asked for again soon.
    void moved(std::uint16_t slot, const node_address& node);
    // A node connection was lost: the map may have changed (a failover).
    void refresh_soon();

    // Where this topology and the links over it count (nullptr: nowhere).
    void count_in(counters* c) noexcept { counters_ = c; }
    counters* counted_in() const noexcept { return counters_; }

    // The options of a connection to `node`.
    backend::connection_options options_for(const node_address& node) const;

    // Called when a slot changes master (a MOVED, or a map that differs from the last one in any slot's
    // master): what was cached from the old one must go.
    void on_slots_moved(std::function<void()> f) { on_slots_moved_ = std::move(f); }

    // Told (with true) when a map is known, first or anew, and (with false) when a round of attempts
    // failed while none is known. Returns an id for unsubscribe().
    std::uint64_t subscribe(std::function<void(bool)> f);
    void unsubscribe(std::uint64_t id);

private:
    class probe;

    void schedule(std::chrono::milliseconds after);
    void attempt();
    void answered(std::string_view reply, const node_address& from);
    void failed(std::string_view why);
    void notify(bool known);
    std::vector<node_address> candidates() const;

    boost::asio::any_io_executor ex_;
    backend::connection_options base_;
    std::vector<node_address> seeds_;
    const bool log_changes_;
    const timing timing_;
    boost::asio::steady_timer timer_;
    std::optional<slot_map> map_;
    std::string last_error_;
    std::chrono::milliseconds retry_;
    std::vector<node_address> round_;  // the candidates of the round under way
    std::size_t next_candidate_ = 0;
    std::shared_ptr<backend::connection> conn_;
    std::unique_ptr<probe> probe_;
    std::chrono::steady_clock::time_point scheduled_for_{};
    bool in_flight_ = false;
    bool closed_ = false;
    std::uint64_t next_id_ = 1;
    std::vector<std::pair<std::uint64_t, std::function<void(bool)>>> subscribers_;
    std::function<void()> on_slots_moved_;
    counters* counters_ = nullptr;
};

}  // namespace respcache::cluster
