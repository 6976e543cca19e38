#pragma once

#include <cstddef>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "respcache/server/services.hpp"
#include "respcache/server/worker.hpp"

namespace respcache::server {

// Accepts clients on one endpoint and hands each to the next worker, round robin; the socket is
// created on the worker's io_context so the client lives there. Refuses clients past --max-clients
// with Redis's error. Runs on the executor it is given; stop() from that executor only.
class listener {
public:
    // Binds and listens at once; throws boost::system::system_error if the address cannot be bound.
    listener(boost::asio::any_io_executor ex, const boost::asio::ip::tcp::endpoint& at, std::vector<worker*> workers,
             services& shared);

    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    void start();
    void stop();

private:
    boost::asio::awaitable<void> accept_loop();

    boost::asio::ip::tcp::acceptor acceptor_;
    std::vector<worker*> workers_;
    services& shared_;
    std::size_t next_ = 0;
};

}  // namespace respcache::server
