#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <unordered_set>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "respcache/net/tls_context.hpp"
#include "respcache/net/tls_stream.hpp"
#include "respcache/server/services.hpp"
#include "respcache/server/worker.hpp"

namespace respcache::server {

// Accepts clients on one endpoint and hands each to the next worker, round robin; the socket is
// created on the worker's io_context so the client lives there. Refuses clients past --max-clients
// with Redis's error. Runs on the executor it is given; stop() from that executor only.
//
// With a TLS context slot, each client first completes a TLS handshake with the slot's current context
// (so a reload applies to the clients that come after it), on its worker's thread, within
// handshake_timeout; one that fails or takes longer is closed (and logged at debug level) without
// holding up anyone else. It counts as a connected client from its accept. stop() ends the handshakes
// under way, and a client whose handshake completes after it is closed.
class listener {
public:
    static constexpr std::chrono::milliseconds handshake_timeout{5000};

    // Binds and listens at once; throws boost::system::system_error if the address cannot be bound.
    // `tls` null: plain TCP.
    listener(boost::asio::any_io_executor ex, const boost::asio::ip::tcp::endpoint& at, std::vector<worker*> workers,
             services& shared, std::shared_ptr<const net::tls_context_slot> tls = nullptr);

    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    void start();
    void stop();

private:
    boost::asio::awaitable<void> accept_loop();
    // Hands an accepted client to workers_[k].
    void serve(std::size_t k, boost::asio::ip::tcp::socket socket);
    boost::asio::awaitable<void> handshake_then_serve(std::size_t k, std::unique_ptr<net::tls_stream> stream);

    boost::asio::ip::tcp::acceptor acceptor_;
    std::vector<worker*> workers_;
    services& shared_;
    std::shared_ptr<const net::tls_context_slot> tls_;
    std::atomic<bool> stopped_{false};  // set by stop(), read by handshakes on other threads
    // The TLS handshakes under way on each worker; element k is used on workers_[k]'s thread only.
    std::vector<std::unordered_set<net::tls_stream*>> handshaking_;
    std::size_t next_ = 0;
};

}  // namespace respcache::server
