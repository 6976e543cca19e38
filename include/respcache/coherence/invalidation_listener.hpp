#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/steady_timer.hpp>

#include "respcache/backend/connection.hpp"
#include "respcache/coherence/tracker.hpp"

namespace respcache::coherence {

// What the process starts and, at shutdown, closes: one listener, or one per master of a Redis Cluster.
class invalidation_source {
public:
    virtual ~invalidation_source() = default;
    virtual void start() = 0;
    virtual void close() = 0;
};

// The receiving end of Redis client tracking: one connection subscribed to __redis__:invalidate, whose
// CLIENT ID the data links name in CLIENT TRACKING ... REDIRECT (with --tracking-mode bcast it names
// itself, in CLIENT TRACKING on REDIRECT <own id> BCAST, before it subscribes). Each invalidation message
// removes its keys from the cache (a nil one flushes it). A state machine that always comes back
// (invariant 6):
//
//   connecting --logged in--> subscribing --"subscribe" confirmed--> live
//        ^                        |                                  |
//        |  refused (-BUSY, -LOADING, no CLIENT ID, CLIENT TRACKING)  | connection lost, or no PONG within
//        |                        v                                  | ping_timeout: lost (flush)
//        +---- reset <---- backing_off (50 ms doubling to 2 s) <-----+ (reset, reconnect)
//
// While live it PINGs every `ping_interval`. Read barriers' PINGs go out on the same connection.
//
// Lives on one executor; must outlive its connection, which close() ends.
class invalidation_listener final : public backend::stream_sink, public invalidation_source {
public:
    enum class phase { connecting, subscribing, live, backing_off, closed };

    struct timing {
        std::chrono::milliseconds ping_interval{1000};  // a PING this often while live
        std::chrono::milliseconds ping_timeout{3000};   // lost when no PONG comes this long after its PING
        std::chrono::milliseconds first_retry{50};      // after a refusal; doubled each time, up to max_retry
        std::chrono::milliseconds max_retry{2000};
    };

    invalidation_listener(boost::asio::any_io_executor ex, backend::connection_options options, tracker& coherence,
                          timing t)
        : invalidation_listener(ex, std::move(options), coherence, coherence.state(), t) {}
    // The channel of one master of a Redis Cluster, whose state (tracker::add_node) is `own`.
    invalidation_listener(boost::asio::any_io_executor ex, backend::connection_options options, tracker& coherence,
                          tracking_state& own, timing t);
    ~invalidation_listener() override;

    void start() override;
    void close() override;
    phase current() const noexcept { return phase_.load(); }
    // Redis sends one nil invalidation per tracking connection of the proxy on FLUSHALL: those that
    // arrive in one read are one flush for the observer. Touched by whoever reads the channel, under
    // tracking_state::read_mutex.

    void on_stream_reply(std::string_view bytes) override;
    void on_stream_error(std::string_view reason) override;
    void on_stream_batch_end() override;

private:
    void logged_in();
    void subscribe();
    void go_live();
    void refused(std::string_view what, std::string_view reply);
    void lost(std::string_view why);
    void apply_message(std::string_view payload);
    void pong(std::string_view argument);
    void arm_ping();
    void ping_tick();

    tracker& tracker_;
    tracking_state& state_;  // the tracker's own, or the node's
    std::shared_ptr<backend::connection> conn_;
    boost::asio::steady_timer ping_timer_;
    boost::asio::steady_timer retry_timer_;
    const timing timing_;
    std::chrono::milliseconds retry_delay_;
    std::atomic<std::chrono::steady_clock::rep> last_heard_{0};  // written by whoever reads the channel
    std::atomic<phase> phase_{phase::connecting};  // written on the listener's thread, read by any
    bool flush_heard_ = false;  // a nil invalidation in the batch being read (see above)
    bool awaiting_tracking_ = false;  // bcast: the reply to CLIENT TRACKING on ... BCAST is still to come
};

}  // namespace respcache::coherence
