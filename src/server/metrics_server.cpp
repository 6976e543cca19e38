#include "respcache/server/metrics_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "respcache/server/report.hpp"

namespace respcache::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

metrics_server::metrics_server(asio::any_io_executor ex, const tcp::endpoint& at, services& shared)
    : acceptor_(ex), shared_(shared) {
    acceptor_.open(at.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen();
}

void metrics_server::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void metrics_server::stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
}

asio::awaitable<void> metrics_server::accept_loop() {
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        if (!acceptor_.is_open()) co_return;
        if (ec) continue;
        asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), asio::detached);
    }
}

asio::awaitable<void> metrics_server::serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        http::request<http::string_body> req;
        stream.expires_after(std::chrono::seconds(10));
        auto [ec, n] = co_await http::async_read(stream, buffer, req, use_tuple);
        if (ec) break;
        http::response<http::string_body> res;
        res.version(req.version());
        res.keep_alive(req.keep_alive());
        res.set(http::field::server, "respcache");
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        const std::string_view target(req.target().data(), req.target().size());
        const std::string_view path = target.substr(0, target.find('?'));
        if (req.method() != http::verb::get) {
            res.result(http::status::method_not_allowed);
            res.body() = "only GET\n";
        } else if (path == "/metrics") {
            res.result(http::status::ok);
            res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            res.body() = prometheus_text(shared_);
        } else if (path == "/healthz") {
            res.result(http::status::ok);
            res.body() = "ok\n";
        } else if (path == "/readyz") {
            std::string why;
            const bool ready = shared_.ready(why);
            res.result(ready ? http::status::ok : http::status::service_unavailable);
            res.body() = ready ? std::string("ready\n") : "not ready: " + why + "\n";
        } else {
            res.result(http::status::not_found);
            res.body() = "not found; try /metrics, /healthz or /readyz\n";
        }
        res.prepare_payload();
        auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
        if (wec || !res.keep_alive()) break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace respcache::server
