#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

namespace respcache::net {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

// The one transport seam: a byte stream to a peer, used by the client side (an accepted connection) and
// by the backend side (a connection to Redis). Plain TCP today (tcp_stream); TLS is another subclass.
// Nothing outside net/ touches a descriptor, recv() or poll().
//
// Reads come in two forms, so that a caller can read by readiness (wait, then take whatever is there
// without blocking: the cheapest way to serve a pipeline) or by a plain asynchronous read. A write
// writes every byte it is given or fails. Every asynchronous operation completes on the stream's
// executor; one of each kind may be outstanding at a time. cancel() completes the outstanding ones with
// operation_aborted.
//
// Owned by one connection object and used from its executor, except input_waiting() and read_now(),
// which another thread may call while it holds the lock its owner reads under (see backend::connection,
// which lets other io threads catch up with the invalidation channel). A stream can be connected again
// after close(): the object stays valid for its owner's whole life.
class stream {
public:
    using wait_handler = asio::any_completion_handler<void(error_code)>;
    using transfer_handler = asio::any_completion_handler<void(error_code, std::size_t)>;
    using connect_handler = asio::any_completion_handler<void(std::string)>;

    virtual ~stream() = default;

    virtual asio::any_io_executor get_executor() noexcept = 0;

    // Completes when bytes (or the end of the stream, or an error) can be read without blocking.
    template <typename Token>
    auto async_wait_readable(Token&& token) {
        return asio::async_initiate<Token, void(error_code)>(
            [this](auto handler) { start_wait_readable(wait_handler(std::move(handler))); }, token);
    }
    // Reads at least one byte into `into`; eof at the end of the stream.
    template <typename Token>
    auto async_read_some(asio::mutable_buffer into, Token&& token) {
        return asio::async_initiate<Token, void(error_code, std::size_t)>(
            [this, into](auto handler) { start_read_some(into, transfer_handler(std::move(handler))); }, token);
    }
    // Writes all of `bytes`, which must stay valid until the completion.
    template <typename Token>
    auto async_write_all(asio::const_buffer bytes, Token&& token) {
        return asio::async_initiate<Token, void(error_code, std::size_t)>(
            [this, bytes](auto handler) { start_write_all(bytes, transfer_handler(std::move(handler))); }, token);
    }
    // Opens the stream to host:port within `timeout`. Completes with "" or a one-line reason.
    template <typename Token>
    auto async_connect(std::string host, std::uint16_t port, std::chrono::milliseconds timeout, Token&& token) {
        return asio::async_initiate<Token, void(std::string)>(
            [this, host = std::move(host), port, timeout](auto handler) mutable {
                start_connect(std::move(host), port, timeout, connect_handler(std::move(handler)));
            },
            token);
    }

    // Reads what has arrived without blocking: the bytes read (> 0), or 0 with `ec` set (would_block when
    // nothing is there, eof at the end of the stream).
    virtual std::size_t read_now(asio::mutable_buffer into, error_code& ec) noexcept = 0;
    // Whether bytes (or the end, or an error) wait to be read now. Safe from any thread; false once closed.
    virtual bool input_waiting() const noexcept = 0;

    virtual bool is_open() const noexcept = 0;
    // Completes the outstanding operations with operation_aborted; the stream stays open.
    virtual void cancel() noexcept = 0;
    // Ends both directions: the peer sees the end of the stream, our reads see it too.
    virtual void shutdown() noexcept = 0;
    virtual void close() noexcept = 0;

    // "ip:port" of the peer and of our side ("[ip]:port" for IPv6); empty when not connected.
    virtual std::string peer_address() const = 0;
    virtual std::string local_address() const = 0;

protected:
    virtual void start_wait_readable(wait_handler handler) = 0;
    virtual void start_read_some(asio::mutable_buffer into, transfer_handler handler) = 0;
    virtual void start_write_all(asio::const_buffer bytes, transfer_handler handler) = 0;
    virtual void start_connect(std::string host, std::uint16_t port, std::chrono::milliseconds timeout,
                               connect_handler handler) = 0;
};

}  // namespace respcache::net
