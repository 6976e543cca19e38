#include "respcache/net/tls_stream.hpp"

#include <poll.h>

#include <cerrno>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>


namespace respcache::net {

using asio::ip::tcp;

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool wants_io(int ssl_error) { return ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE; }

// Why a handshake failed, in a line: OpenSSL's reason, and the certificate check's when it refused one.
std::string handshake_failure(SSL* ssl, int ssl_error) {
    const long verify = SSL_get_verify_result(ssl);
    const unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    std::string text = "TLS handshake failed: ";
    if (verify != X509_V_OK) return text + "certificate verify failed: " + X509_verify_cert_error_string(verify);
    if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        return text + buf;
    }
    if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) return text + "connection closed by the peer";
    return text + "error " + std::to_string(ssl_error);
}
}  // namespace

tls_stream::tls_stream(asio::any_io_executor ex, std::shared_ptr<const tls_context_slot> slot)
    : socket_stream(ex), slot_(std::move(slot)) {}

tls_stream::tls_stream(tcp::socket socket, std::shared_ptr<asio::ssl::context> ctx)
    : socket_stream(socket.get_executor()) {
    prepare_socket(socket, false);
    socket_ = std::move(socket);
    if (socket_.is_open()) (void)begin_ssl(std::move(ctx), true, std::string());
}

tls_stream::~tls_stream() { close(); }

std::string tls_stream::begin_ssl(std::shared_ptr<asio::ssl::context> ctx, bool server, const std::string& host) {
    std::lock_guard guard(mu_);
    ssl_ = SSL_new(ctx->native_handle());
    if (ssl_ == nullptr || SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle())) != 1) {
        ERR_clear_error();
        if (ssl_ != nullptr) SSL_free(ssl_);
        ssl_ = nullptr;
        return "cannot set up TLS on the socket";
    }
    SSL_set_read_ahead(ssl_, 1);
    if (server) {
        SSL_set_accept_state(ssl_);
    } else {
        error_code ec;
        asio::ip::make_address(host, ec);
        if (!ec) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
        } else {
            SSL_set_tlsext_host_name(ssl_, host.c_str());
            SSL_set1_host(ssl_, host.c_str());
        }
        SSL_set_connect_state(ssl_);
    }
    ctx_ = std::move(ctx);
    failed_ = false;
    established_ = false;
    end_waiting_ = false;
    buffered_.store(false, std::memory_order_seq_cst);
    read_wants_write_.store(false, std::memory_order_relaxed);
    fd_.store(static_cast<int>(socket_.native_handle()), std::memory_order_seq_cst);
    return std::string();
}

asio::awaitable<std::string> tls_stream::handshake(std::chrono::milliseconds timeout) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(socket_.get_executor());
    timer.expires_after(timeout);
    auto r = co_await (handshake_steps() || timer.async_wait(use_tuple));
    std::string error = r.index() == 1 ? "TLS handshake timed out after " + std::to_string(timeout.count()) + "ms"
                                       : std::get<0>(std::move(r));
    if (!error.empty()) close();
    co_return error;
}

asio::awaitable<std::string> tls_stream::handshake_steps() {
    for (;;) {
        int err = 0;
        {
            std::lock_guard guard(mu_);
            if (ssl_ == nullptr) co_return std::string("TLS handshake failed: connection closed");
            ERR_clear_error();
            const int ret = SSL_do_handshake(ssl_);
            if (ret == 1) {
                established_ = true;
                publish_buffered();
                co_return std::string();
            }
            err = SSL_get_error(ssl_, ret);
            if (!wants_io(err)) {
                failed_ = true;
                co_return handshake_failure(ssl_, err);
            }
        }
        const auto wait = err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write;
        auto [ec] = co_await socket_.async_wait(wait, use_tuple);
        if (ec) co_return "TLS handshake failed: " + ec.message();
    }
}

asio::awaitable<std::string> tls_stream::accept(std::chrono::milliseconds timeout) {
    if (fd_.load(std::memory_order_seq_cst) < 0) co_return std::string("TLS handshake failed: no socket");
    co_return co_await handshake(timeout);
}

asio::awaitable<std::string> tls_stream::connect(std::string host, std::uint16_t port, std::chrono::milliseconds timeout) {
    close();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    tcp::socket sock(socket_.get_executor());
    std::string error = co_await dial(sock, host, port, timeout);
    if (!error.empty()) co_return error;
    prepare_socket(sock, true);
    socket_ = std::move(sock);
    error = slot_ ? begin_ssl(slot_->get(), false, host) : std::string("not a TLS client stream");
    if (!error.empty()) {
        close();
        co_return error;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    co_return co_await handshake(std::max(left, std::chrono::milliseconds(1)));
}

void tls_stream::publish_buffered() noexcept {
    buffered_.store(end_waiting_ || SSL_has_pending(ssl_) == 1, std::memory_order_seq_cst);
}

error_code tls_stream::failure(int ssl_error) noexcept {
    if (ssl_error == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
    failed_ = true;
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (ssl_error == SSL_ERROR_SYSCALL && e == 0)
        return errno != 0 ? error_code(errno, boost::system::system_category()) : error_code(asio::error::eof);
    return error_code(static_cast<int>(e), asio::error::get_ssl_category());
}

std::size_t tls_stream::read_now(asio::mutable_buffer into, error_code& ec) noexcept {
    ec.clear();
    std::lock_guard guard(mu_);
    if (ssl_ == nullptr) {
        ec = asio::error::bad_descriptor;
        return 0;
    }
    auto* p = static_cast<char*>(into.data());
    std::size_t got = 0;
    while (got < into.size()) {
        ERR_clear_error();
        std::size_t n = 0;
        const int ret = SSL_read_ex(ssl_, p + got, into.size() - got, &n);
        if (ret == 1) {
            got += n;
            continue;
        }
        const int err = SSL_get_error(ssl_, ret);
        if (wants_io(err)) {
            read_wants_write_.store(err == SSL_ERROR_WANT_WRITE, std::memory_order_relaxed);
            if (got == 0) ec = asio::error::would_block;
        } else if (got == 0) {
            ec = failure(err);
        } else {
            end_waiting_ = true;  // the next call gives it: OpenSSL keeps the stream's end or failure
        }
        break;
    }
    publish_buffered();
    return got;
}

bool tls_stream::input_waiting() const noexcept {
    const int fd = fd_.load(std::memory_order_seq_cst);
    if (fd < 0) return false;
    if (buffered_.load(std::memory_order_seq_cst)) return true;
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) != 0;
}

bool tls_stream::readable_now() noexcept {
    std::lock_guard guard(mu_);
    if (ssl_ == nullptr) return false;
    if (end_waiting_ || SSL_pending(ssl_) > 0) return true;
    if (SSL_has_pending(ssl_) != 1) return false;
    // Bytes are buffered, but perhaps only part of a record: a peek decrypts a whole one if it is there.
    ERR_clear_error();
    char c = 0;
    std::size_t n = 0;
    const int ret = SSL_peek_ex(ssl_, &c, 1, &n);
    const int err = ret == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, ret);
    ERR_clear_error();
    publish_buffered();
    return !wants_io(err);
}

asio::awaitable<error_code> tls_stream::wait_readable() {
    if (readable_now()) co_return error_code();
    const bool for_write = read_wants_write_.load(std::memory_order_relaxed);
    auto [ec] = co_await socket_.async_wait(for_write ? tcp::socket::wait_write : tcp::socket::wait_read, use_tuple);
    co_return ec;
}

asio::awaitable<stream::io_result> tls_stream::read_some(asio::mutable_buffer into) {
    for (;;) {
        error_code ec;
        const std::size_t n = read_now(into, ec);
        if (ec != asio::error::would_block) co_return io_result{ec, n};
        const bool for_write = read_wants_write_.load(std::memory_order_relaxed);
        auto [wec] = co_await socket_.async_wait(for_write ? tcp::socket::wait_write : tcp::socket::wait_read, use_tuple);
        if (wec) co_return io_result{wec, 0};
    }
}

void tls_stream::write_all(asio::const_buffer bytes, std::shared_ptr<write_receiver> r, std::uint64_t tag) {
    write_more(static_cast<const char*>(bytes.data()), bytes.size(), std::move(r), tag);
}

// Writes what OpenSSL takes without blocking; waits for the socket when it takes no more, and goes on.
void tls_stream::write_more(const char* p, std::size_t left, std::shared_ptr<write_receiver> r, std::uint64_t tag) {
    error_code ec;
    int want = SSL_ERROR_NONE;
    {
        std::lock_guard guard(mu_);
        if (ssl_ == nullptr) ec = asio::error::bad_descriptor;
        while (!ec && left > 0) {
            ERR_clear_error();
            std::size_t n = 0;
            const int ret = SSL_write_ex(ssl_, p, left, &n);
            if (ret == 1) {
                p += n;
                left -= n;
                continue;
            }
            want = SSL_get_error(ssl_, ret);
            if (wants_io(want)) break;
            ec = failure(want);
            if (ec == asio::error::eof) ec = asio::error::broken_pipe;
        }
        if (ssl_ != nullptr) publish_buffered();  // a write may read (a renegotiation's records)
    }
    if (ec || left == 0) {
        asio::post(socket_.get_executor(), [r = std::move(r), ec, tag] { r->written(ec, tag); });
        return;
    }
    const auto wait = want == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write;
    socket_.async_wait(wait, [this, p, left, r = std::move(r), tag](error_code wec) mutable {
        if (wec) return r->written(wec, tag);
        write_more(p, left, std::move(r), tag);
    });
}

void tls_stream::send_close_notify() noexcept {
    if (ssl_ == nullptr || failed_ || !established_) return;
    ERR_clear_error();
    (void)SSL_shutdown(ssl_);
    ERR_clear_error();
    failed_ = true;  // sent once
}

void tls_stream::shutdown() noexcept {
    {
        std::lock_guard guard(mu_);
        send_close_notify();
    }
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
}

void tls_stream::close() noexcept {
    fd_.store(-1, std::memory_order_seq_cst);
    {
        std::lock_guard guard(mu_);
        if (ssl_ != nullptr) {
            send_close_notify();
            SSL_free(ssl_);
            ssl_ = nullptr;
        }
        buffered_.store(false, std::memory_order_seq_cst);
    }
    error_code ignored;
    socket_.close(ignored);
    ctx_.reset();
}

std::unique_ptr<stream> make_tls_stream(asio::any_io_executor ex, std::shared_ptr<const tls_context_slot> slot) {
    return std::make_unique<tls_stream>(ex, std::move(slot));
}

}  // namespace respcache::net
