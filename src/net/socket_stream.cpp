#include "respcache/net/socket_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace respcache::net {

using asio::ip::tcp;

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
}  // namespace

std::string endpoint_text(const tcp::endpoint& ep) {
    const auto addr = ep.address();
    if (addr.is_v6()) return "[" + addr.to_string() + "]:" + std::to_string(ep.port());
    return addr.to_string() + ":" + std::to_string(ep.port());
}

void prepare_socket(tcp::socket& socket, bool keep_alive) {
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (keep_alive) socket.set_option(asio::socket_base::keep_alive(true), ignored);
    socket.non_blocking(true, ignored);
}

asio::awaitable<std::string> dial(tcp::socket& out, std::string host, std::uint16_t port,
                                  std::chrono::milliseconds timeout) {
    using namespace asio::experimental::awaitable_operators;
    const auto ex = out.get_executor();
    tcp::resolver resolver(ex);
    asio::steady_timer timer(ex);
    timer.expires_after(timeout);
    const std::string timeout_text = "timed out connecting after " + std::to_string(timeout.count()) + "ms";
    auto resolved = co_await (resolver.async_resolve(host, std::to_string(port), use_tuple) || timer.async_wait(use_tuple));
    if (resolved.index() == 1) co_return timeout_text;
    auto [rec, endpoints] = std::get<0>(resolved);
    if (rec) co_return "cannot resolve " + host + ": " + rec.message();
    auto connected = co_await (asio::async_connect(out, endpoints, use_tuple) || timer.async_wait(use_tuple));
    if (connected.index() == 1) co_return timeout_text;
    auto [cec, endpoint] = std::get<0>(connected);
    (void)endpoint;
    if (cec) co_return cec.message();
    co_return std::string();
}

void socket_stream::cancel() noexcept {
    error_code ignored;
    socket_.cancel(ignored);
}

std::string socket_stream::peer_address() const {
    error_code ec;
    const auto ep = socket_.remote_endpoint(ec);
    return ec ? std::string() : endpoint_text(ep);
}

std::string socket_stream::local_address() const {
    error_code ec;
    const auto ep = socket_.local_endpoint(ec);
    return ec ? std::string() : endpoint_text(ep);
}

}  // namespace respcache::net
