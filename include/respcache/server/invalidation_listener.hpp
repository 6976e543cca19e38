#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include <boost/asio/steady_timer.hpp>

#include "respcache/backend/connection.hpp"
#include "respcache/server/services.hpp"

namespace respcache::server {

// The receiving end of Redis client tracking. Holds one connection subscribed to __redis__:invalidate;
// the data connections name its CLIENT ID in CLIENT TRACKING ... REDIRECT. Each invalidation message
// removes its keys from the cache (a nil one flushes it). It PINGs the channel every `ping_interval`; if
// the connection is lost or a PONG is later than `ping_timeout`, the channel is declared lost: the cache
// is flushed and no fill is accepted until the channel is subscribed again (tracking_state::epoch moves,
// so data connections re-enable tracking with the new id).
//
// Lives on one executor; must outlive its connection, which close() ends.
class invalidation_listener final : public backend::stream_sink {
public:
    invalidation_listener(backend::asio::any_io_executor ex, backend::connection_options options, services& shared,
                          std::chrono::milliseconds ping_interval, std::chrono::milliseconds ping_timeout);
    ~invalidation_listener() override;

    void start();
    void close();

    void on_stream_reply(std::string_view bytes) override;
    void on_stream_error(std::string_view reason) override;

private:
    void subscribe();
    void lost(std::string_view why);
    void arm_ping();

    services& services_;
    std::shared_ptr<backend::connection> conn_;
    boost::asio::steady_timer ping_timer_;
    std::chrono::milliseconds ping_interval_;
    std::chrono::milliseconds ping_timeout_;
    std::atomic<std::chrono::steady_clock::rep> last_pong_{0};  // written by whoever reads the channel
    bool closed_ = false;
};

}  // namespace respcache::server
