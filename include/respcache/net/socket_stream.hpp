#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "respcache/net/stream.hpp"

namespace respcache::net {

// What the streams over a TCP socket (tcp_stream, tls_stream) share: the socket, its executor, cancel()
// and the endpoints.
class socket_stream : public stream {
public:
    asio::any_io_executor get_executor() noexcept override { return socket_.get_executor(); }
    bool is_open() const noexcept override { return socket_.is_open(); }
    void cancel() noexcept override;
    std::string peer_address() const override;
    std::string local_address() const override;

protected:
    explicit socket_stream(asio::any_io_executor ex) : socket_(ex) {}

    asio::ip::tcp::socket socket_;
};

// The socket options of a stream: TCP_NODELAY, SO_KEEPALIVE when `keep_alive`, non-blocking.
void prepare_socket(asio::ip::tcp::socket& socket, bool keep_alive);
// Connects `out` to host:port within `timeout`: "" or a one-line reason.
asio::awaitable<std::string> dial(asio::ip::tcp::socket& out, std::string host, std::uint16_t port,
                                  std::chrono::milliseconds timeout);
// "ip:port" ("[ip]:port" for IPv6).
std::string endpoint_text(const asio::ip::tcp::endpoint& ep);

}  // namespace respcache::net
