#pragma once

#include <atomic>
#include <memory>

#include <boost/asio/ip/tcp.hpp>

#include "respcache/net/stream.hpp"

namespace respcache::net {

// A stream over a TCP socket, with TCP_NODELAY (and SO_KEEPALIVE when it dials). Reads by readiness
// use recv() with MSG_DONTWAIT on the socket's descriptor, published in an atomic so that input_waiting()
// and read_now() may be called from another thread.
class tcp_stream final : public stream {
public:
    // A stream to be opened with connect().
    explicit tcp_stream(asio::any_io_executor ex);
    // A stream over an accepted, connected socket.
    explicit tcp_stream(asio::ip::tcp::socket socket);
    ~tcp_stream() override;

    asio::any_io_executor get_executor() noexcept override { return socket_.get_executor(); }
    asio::awaitable<error_code> wait_readable() override;
    asio::awaitable<io_result> read_some(asio::mutable_buffer into) override;
    std::size_t read_now(asio::mutable_buffer into, error_code& ec) noexcept override;
    bool input_waiting() const noexcept override;
    void write_all(asio::const_buffer bytes, std::shared_ptr<write_receiver> r, std::uint64_t tag) override;
    asio::awaitable<std::string> connect(std::string host, std::uint16_t port,
                                         std::chrono::milliseconds timeout) override;
    bool is_open() const noexcept override { return socket_.is_open(); }
    void cancel() noexcept override;
    void shutdown() noexcept override;
    void close() noexcept override;
    std::string peer_address() const override;
    std::string local_address() const override;

private:
    void adopt(asio::ip::tcp::socket socket, bool keep_alive);

    asio::ip::tcp::socket socket_;
    std::atomic<int> fd_{-1};  // the open socket's descriptor, -1 when closed (set before close)
};

// A new, unconnected tcp_stream on `ex`.
std::unique_ptr<stream> make_tcp_stream(asio::any_io_executor ex);

// What tcp_stream and tls_stream share: the socket options of a stream (TCP_NODELAY, SO_KEEPALIVE when
// `keep_alive`, non-blocking), a connection to host:port within `timeout` into `out` ("" or a one-line
// reason), and an endpoint as "ip:port" ("[ip]:port" for IPv6).
void prepare_socket(asio::ip::tcp::socket& socket, bool keep_alive);
asio::awaitable<std::string> dial(asio::ip::tcp::socket& out, std::string host, std::uint16_t port,
                                  std::chrono::milliseconds timeout);
std::string endpoint_text(const asio::ip::tcp::endpoint& ep);
// The socket's peer and own endpoints as endpoint_text; empty when not connected.
std::string peer_text(const asio::ip::tcp::socket& socket);
std::string local_text(const asio::ip::tcp::socket& socket);

}  // namespace respcache::net
