#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "respcache/server/services.hpp"

namespace respcache::server {

// A small HTTP/1.1 server (Boost.Beast) for operators: GET /metrics (Prometheus text format), /healthz
// (200 while the process runs) and /readyz (200 when the backend is reachable and the invalidation
// channel is live, 503 with the reason otherwise). Runs on the executor it is given; stop() from there.
class metrics_server {
public:
    // Binds at once; throws boost::system::system_error if it cannot.
    metrics_server(boost::asio::any_io_executor ex, const boost::asio::ip::tcp::endpoint& at, services& shared);

    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    void start();
    void stop();

private:
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

    boost::asio::ip::tcp::acceptor acceptor_;
    services& shared_;
};

}  // namespace respcache::server
