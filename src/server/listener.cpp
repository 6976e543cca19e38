#include "respcache/server/listener.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "respcache/net/tcp_stream.hpp"
#include "respcache/net/tls_stream.hpp"
#include "respcache/server/session.hpp"
#include "respcache/util/log.hpp"

namespace respcache::server {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
// A TLS client's handshake, then its session; on w's thread.
asio::awaitable<void> handshake_then_serve(worker& w, std::unique_ptr<net::tls_stream> stream) {
    const std::string peer = stream->peer_address();
    const std::string error = co_await stream->accept(listener::handshake_timeout);
    if (!error.empty()) {
        w.shared().connected_clients().fetch_sub(1, std::memory_order_relaxed);
        log::limited("tls-handshake", spdlog::level::debug, "TLS client refused", {{"peer", peer}, {"error", error}});
        co_return;
    }
    auto s = std::make_shared<session>(w, std::move(stream));
    co_await s->run();
}
}  // namespace

listener::listener(asio::any_io_executor ex, const tcp::endpoint& at, std::vector<worker*> workers, services& shared,
                   std::shared_ptr<const net::tls_context_slot> tls)
    : acceptor_(ex), workers_(std::move(workers)), shared_(shared), tls_(std::move(tls)) {
    acceptor_.open(at.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    if (at.address().is_v6()) acceptor_.set_option(asio::ip::v6_only(true));
    acceptor_.bind(at);
    acceptor_.listen(asio::socket_base::max_listen_connections);
}

void listener::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void listener::stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
}

asio::awaitable<void> listener::accept_loop() {
    for (;;) {
        worker& w = *workers_[next_++ % workers_.size()];
        auto [ec, socket] = co_await acceptor_.async_accept(w.io(), asio::as_tuple(asio::use_awaitable));
        if (!acceptor_.is_open()) co_return;
        if (ec) {
            log::limited("accept", spdlog::level::warn, "accept failed", {{"error", ec.message()}});
            // Out of descriptors or a like condition: pause rather than spin.
            asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        auto& clients = shared_.connected_clients();
        if (clients.load(std::memory_order_relaxed) >= shared_.settings().max_clients.load(std::memory_order_relaxed)) {
            workers_[0]->stats().rejected_connections.add();  // the acceptor runs on worker 0's thread
            boost::system::error_code ignored;
            asio::write(socket, asio::buffer(std::string_view("-ERR max number of clients reached\r\n")), ignored);
            socket.close(ignored);
            continue;
        }
        clients.fetch_add(1, std::memory_order_relaxed);
        serve(w, std::move(socket));
    }
}

void listener::serve(worker& w, tcp::socket socket) {
    if (tls_ != nullptr) {
        auto stream = std::make_unique<net::tls_stream>(std::move(socket), tls_->get());
        asio::co_spawn(w.io(), handshake_then_serve(w, std::move(stream)), asio::detached);
        return;
    }
    auto s = std::make_shared<session>(w, std::make_unique<net::tcp_stream>(std::move(socket)));
    asio::co_spawn(w.io(), [s]() { return s->run(); }, asio::detached);
}

}  // namespace respcache::server
