#include "respcache/net/tcp_stream.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace respcache::net {

using asio::ip::tcp;

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
}  // namespace

tcp_stream::tcp_stream(asio::any_io_executor ex) : socket_stream(ex) {}

tcp_stream::tcp_stream(tcp::socket socket) : socket_stream(socket.get_executor()) { adopt(std::move(socket), false); }

tcp_stream::~tcp_stream() { close(); }

void tcp_stream::adopt(tcp::socket socket, bool keep_alive) {
    prepare_socket(socket, keep_alive);
    socket_ = std::move(socket);
    fd_.store(socket_.is_open() ? static_cast<int>(socket_.native_handle()) : -1, std::memory_order_seq_cst);
}

std::size_t tcp_stream::read_now(asio::mutable_buffer into, error_code& ec) noexcept {
    ec.clear();
    const int fd = fd_.load(std::memory_order_seq_cst);
    if (fd < 0) {
        ec = asio::error::bad_descriptor;
        return 0;
    }
    for (;;) {
        const ssize_t n = ::recv(fd, into.data(), into.size(), MSG_DONTWAIT);
        if (n > 0) return static_cast<std::size_t>(n);
        if (n == 0) {
            ec = asio::error::eof;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            ec = asio::error::would_block;
        else
            ec = error_code(errno, boost::system::system_category());
        return 0;
    }
}

bool tcp_stream::input_waiting() const noexcept {
    const int fd = fd_.load(std::memory_order_seq_cst);
    if (fd < 0) return false;
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) != 0;
}

void tcp_stream::shutdown() noexcept {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
}

void tcp_stream::close() noexcept {
    fd_.store(-1, std::memory_order_seq_cst);
    error_code ignored;
    socket_.close(ignored);
}

asio::awaitable<error_code> tcp_stream::wait_readable() {
    auto [ec] = co_await socket_.async_wait(tcp::socket::wait_read, use_tuple);
    co_return ec;
}

asio::awaitable<stream::io_result> tcp_stream::read_some(asio::mutable_buffer into) {
    auto [ec, n] = co_await socket_.async_read_some(into, use_tuple);
    co_return io_result{ec, n};
}

void tcp_stream::write_all(asio::const_buffer bytes, std::shared_ptr<write_receiver> r, std::uint64_t tag) {
    asio::async_write(socket_, bytes, [r = std::move(r), tag](error_code ec, std::size_t) { r->written(ec, tag); });
}

asio::awaitable<std::string> tcp_stream::connect(std::string host, std::uint16_t port,
                                                 std::chrono::milliseconds timeout) {
    close();
    tcp::socket sock(socket_.get_executor());
    std::string error = co_await dial(sock, std::move(host), port, timeout);
    if (!error.empty()) co_return error;
    adopt(std::move(sock), true);
    co_return std::string();
}

std::unique_ptr<stream> make_tcp_stream(asio::any_io_executor ex) { return std::make_unique<tcp_stream>(ex); }

}  // namespace respcache::net
