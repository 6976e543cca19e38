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


listener::listener(asio::any_io_executor ex, const tcp::endpoint& at, std::vector<worker*> workers, services& shared,
                   std::shared_ptr<const net::tls_context_slot> tls)
    : acceptor_(ex), workers_(std::move(workers)), shared_(shared), tls_(std::move(tls)), handshaking_(workers_.size()) {
    acceptor_.open(at.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    if (at.address().is_v6()) acceptor_.set_option(asio::ip::v6_only(true));
    acceptor_.bind(at);
    acceptor_.listen(asio::socket_base::max_listen_connections);
}

void listener::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void listener::stop() {
    stopped_.store(true, std::memory_order_release);
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    // Handshakes under way end now (each worker's own, on its thread), so that shutdown need not wait.
    for (std::size_t k = 0; k < workers_.size(); ++k)
        asio::post(workers_[k]->io(), [this, k] {
            for (net::tls_stream* s : handshaking_[k]) s->cancel();
        });
}

asio::awaitable<void> listener::handshake_then_serve(std::size_t k, std::unique_ptr<net::tls_stream> stream) {
    worker& w = *workers_[k];
    const std::string peer = stream->peer_address();
    handshaking_[k].insert(stream.get());
    const std::string error = co_await stream->accept(handshake_timeout);
    handshaking_[k].erase(stream.get());
    if (!error.empty() || stopped_.load(std::memory_order_acquire)) {
        w.shared().connected_clients().fetch_sub(1, std::memory_order_relaxed);
        if (!error.empty())
            log::limited("tls-handshake", spdlog::level::debug, "TLS client refused", {{"peer", peer}, {"error", error}});
        co_return;
    }
    auto s = std::make_shared<session>(w, std::move(stream));
    co_await s->run();
}

asio::awaitable<void> listener::accept_loop() {
    for (;;) {
        const std::size_t k = next_++ % workers_.size();
        worker& w = *workers_[k];
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
        serve(k, std::move(socket));
    }
}

void listener::serve(std::size_t k, tcp::socket socket) {
    worker& w = *workers_[k];
    if (tls_ != nullptr) {
        auto stream = std::make_unique<net::tls_stream>(std::move(socket), tls_->get());
        asio::co_spawn(w.io(), handshake_then_serve(k, std::move(stream)), asio::detached);
        return;
    }
    auto s = std::make_shared<session>(w, std::make_unique<net::tcp_stream>(std::move(socket)));
    asio::co_spawn(w.io(), [s]() { return s->run(); }, asio::detached);
}

}  // namespace respcache::server
