#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "respcache/net/socket_stream.hpp"
#include "respcache/net/tls_context.hpp"

typedef struct ssl_st SSL;

namespace respcache::net {

// A stream over TLS: OpenSSL's SSL object reads and writes the non-blocking socket's descriptor itself
// (no memory BIOs), and the Asio socket only waits for readiness. That keeps every byte the stream has
// taken from the kernel in one place, inside the SSL object, where input_waiting() can see it.
//
// The readiness-read contract with TLS. Decrypted bytes, and records read ahead but not yet decrypted,
// can sit inside OpenSSL while the socket has nothing left to read, so:
// - read_now() reads records until `into` is full or OpenSSL needs more from the socket; when it returns
//   fewer bytes than asked, no complete record is left inside (as a short recv() means an empty socket).
// - input_waiting() is true when the socket is readable or OpenSSL holds any byte (SSL_has_pending,
//   published in an atomic after every call that may read). It may say true for a partial record, so
//   read_now() then finds nothing (would_block); it never says false while a complete record waits.
// - wait_readable() completes at once when a whole record is buffered (it asks SSL_peek), otherwise when
//   the socket is readable (or writable, when OpenSSL last asked to write before it can read).
// - Every call into the SSL object (read, write, handshake, peek, shutdown) holds mu_, because read_now()
//   and input_waiting() may come from another thread (see stream) while the owner writes; each call is
//   non-blocking, so mu_ is held for microseconds.
class tls_stream final : public socket_stream {
public:
    // A TLS client stream to be opened with connect(). Each connect() takes the slot's current context and
    // checks the server's certificate against its CAs and against the host dialled (a DNS name, sent as
    // SNI, or an IP address).
    tls_stream(asio::any_io_executor ex, std::shared_ptr<const tls_context_slot> slot);
    // The server side of an accepted socket with `ctx`; usable once accept() has succeeded.
    tls_stream(asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> ctx);
    ~tls_stream() override;

    // The server's handshake, within `timeout`: "" or a one-line reason (the stream is then closed).
    asio::awaitable<std::string> accept(std::chrono::milliseconds timeout);

    asio::awaitable<error_code> wait_readable() override;
    asio::awaitable<io_result> read_some(asio::mutable_buffer into) override;
    std::size_t read_now(asio::mutable_buffer into, error_code& ec) noexcept override;
    bool input_waiting() const noexcept override;
    void write_all(asio::const_buffer bytes, std::shared_ptr<write_receiver> r, std::uint64_t tag) override;
    // Dials host:port and completes the TLS handshake, both within `timeout`.
    asio::awaitable<std::string> connect(std::string host, std::uint16_t port,
                                         std::chrono::milliseconds timeout) override;
    // Sends close_notify (if it can without blocking), then ends the socket's both directions.
    void shutdown() noexcept override;
    void close() noexcept override;

private:
    std::string begin_ssl(std::shared_ptr<asio::ssl::context> ctx, bool server, const std::string& host);
    asio::awaitable<std::string> handshake(std::chrono::milliseconds timeout);
    asio::awaitable<std::string> handshake_steps();
    bool readable_now() noexcept;
    void write_more(const char* p, std::size_t left, std::shared_ptr<write_receiver> r, std::uint64_t tag);
    error_code failure(int ssl_error) noexcept;  // with mu_ held
    void send_close_notify() noexcept;           // with mu_ held
    void publish_buffered() noexcept;            // with mu_ held

    std::shared_ptr<const tls_context_slot> slot_;  // client streams only
    std::shared_ptr<asio::ssl::context> ctx_;       // the current SSL's; owner's executor only
    mutable std::mutex mu_;
    SSL* ssl_ = nullptr;              // GUARDED_BY(mu_); null when closed
    bool failed_ = false;             // GUARDED_BY(mu_): a fatal TLS error, no close_notify may follow
    bool established_ = false;        // GUARDED_BY(mu_): the handshake completed
    bool end_waiting_ = false;        // GUARDED_BY(mu_): a read that returned bytes met the end (or a failure)
    std::atomic<int> fd_{-1};         // the open socket's descriptor, -1 when closed (set before close)
    std::atomic<bool> buffered_{false};     // SSL_has_pending after the last call into ssl_
    std::atomic<bool> read_wants_write_{false};  // the last read asked to write first
};

// A new, unconnected TLS client stream on `ex`, made with the contexts of `slot`.
std::unique_ptr<stream> make_tls_stream(asio::any_io_executor ex, std::shared_ptr<const tls_context_slot> slot);

}  // namespace respcache::net
