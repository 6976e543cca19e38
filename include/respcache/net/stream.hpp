#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

namespace respcache::net {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

// Told when a write given to stream::write_all has completed (every byte written, or `ec`).
class write_receiver {
public:
    virtual ~write_receiver() = default;
    virtual void written(error_code ec, std::uint64_t tag) = 0;
};

// The one transport seam: a byte stream to a peer, used by the client side (an accepted connection) and
// by the backend side (a connection to Redis). Plain TCP today (tcp_stream); TLS is another subclass.
// Nothing outside net/ touches a descriptor, recv() or poll().
//
// Reads come in two forms, so that a caller can read by readiness (wait, then take whatever is there
// without blocking: the cheapest way to serve a pipeline) or by a plain asynchronous read. They are
// coroutines, so that the hot path costs no allocation (Asio recycles coroutine frames). A write writes
// every byte it is given, then tells its receiver. One operation of each kind may be outstanding at a
// time; cancel() ends the outstanding ones with operation_aborted.
//
// Owned by one connection object and used from its executor, except input_waiting() and read_now(),
// which another thread may call while it holds the lock its owner reads under (see backend::connection,
// which lets other io threads catch up with the invalidation channel). A stream can be connected again
// after close(): the object stays valid for its owner's whole life.
class stream {
public:
    struct io_result {
        error_code ec;
        std::size_t bytes = 0;
    };

    virtual ~stream() = default;

    virtual asio::any_io_executor get_executor() noexcept = 0;

    // Completes when bytes (or the end of the stream, or an error) can be read without blocking.
    virtual asio::awaitable<error_code> wait_readable() = 0;
    // Reads at least one byte into `into`; eof at the end of the stream.
    virtual asio::awaitable<io_result> read_some(asio::mutable_buffer into) = 0;
    // Reads what has arrived without blocking: the bytes read (> 0), or 0 with `ec` set (would_block when
    // nothing is there, eof at the end of the stream).
    virtual std::size_t read_now(asio::mutable_buffer into, error_code& ec) noexcept = 0;
    // Whether bytes (or the end, or an error) wait to be read now. Safe from any thread; false once closed.
    virtual bool input_waiting() const noexcept = 0;

    // Writes all of `bytes`, which must stay valid until `r->written(ec, tag)` is called, exactly once, on
    // the stream's executor (or until the stream is closed); the write holds `r` until then.
    virtual void write_all(asio::const_buffer bytes, std::shared_ptr<write_receiver> r, std::uint64_t tag) = 0;

    // Opens the stream to host:port within `timeout`: "" or a one-line reason.
    virtual asio::awaitable<std::string> connect(std::string host, std::uint16_t port,
                                                 std::chrono::milliseconds timeout) = 0;

    virtual bool is_open() const noexcept = 0;
    // Completes the outstanding operations with operation_aborted; the stream stays open.
    virtual void cancel() noexcept = 0;
    // Ends both directions: the peer sees the end of the stream, our reads see it too.
    virtual void shutdown() noexcept = 0;
    virtual void close() noexcept = 0;

    // "ip:port" of the peer and of our side ("[ip]:port" for IPv6); empty when not connected.
    virtual std::string peer_address() const = 0;
    virtual std::string local_address() const = 0;
};

}  // namespace respcache::net
