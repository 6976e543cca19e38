#pragma once

#include <atomic>
#include <memory>

#include <boost/asio/ip/tcp.hpp>

#include "respcache/net/socket_stream.hpp"

namespace respcache::net {

// A stream over a TCP socket, with TCP_NODELAY (and SO_KEEPALIVE when it dials). Reads by readiness
// use recv() with MSG_DONTWAIT on the socket's descriptor, published in an atomic so that input_waiting()
// and read_now() may be called from another thread.
class tcp_stream final : public socket_stream {
public:
    // A stream to be opened with connect().
    explicit tcp_stream(asio::any_io_executor ex);
    // A stream over an accepted, connected socket.
    explicit tcp_stream(asio::ip::tcp::socket socket);
    ~tcp_stream() override;

    asio::awaitable<error_code> wait_readable() override;
    asio::awaitable<io_result> read_some(asio::mutable_buffer into) override;
    std::size_t read_now(asio::mutable_buffer into, error_code& ec) noexcept override;
    bool input_waiting() const noexcept override;
    void write_all(asio::const_buffer bytes, std::shared_ptr<write_receiver> r, std::uint64_t tag) override;
    asio::awaitable<std::string> connect(std::string host, std::uint16_t port,
                                         std::chrono::milliseconds timeout) override;
    void shutdown() noexcept override;
    void close() noexcept override;

private:
    void adopt(asio::ip::tcp::socket socket, bool keep_alive);

    std::atomic<int> fd_{-1};  // the open socket's descriptor, -1 when closed (set before close)
};

// A new, unconnected tcp_stream on `ex`.
std::unique_ptr<stream> make_tcp_stream(asio::any_io_executor ex);

}  // namespace respcache::net
