#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "respcache/net/stream.hpp"
#include "respcache/proxy/client_core.hpp"

namespace respcache::server {

class worker;
namespace asio = boost::asio;

// The I/O shell of one client connection, from accept to close, on its worker's thread: it reads the
// client's bytes into its proxy::client_core, writes what the core has ready, applies the idle timeout
// and closes. Everything else (parsing, dispatch, replies in order, limits) is the core's; the shell does
// what core.advance() says: read, read what is there, wait for the core to wake it (watching the input
// too while blocked or subscribed), or close.
//
// Writes run alongside reading: one write at a time, each taking whatever output has accumulated.
// Owned by the coroutine that runs it (and by std::shared_ptr in callbacks); lives on one thread.
class session final : public net::write_receiver, public std::enable_shared_from_this<session> {
public:
    session(worker& owner, std::unique_ptr<net::stream> stream);
    ~session() override;

    // Serves the client until it leaves, is killed, sends QUIT or breaks the protocol, or the server
    // stops. Returns once every backend request it made has completed.
    asio::awaitable<void> run();

    // Ends the session from its own thread: nothing more is read or written; what is in flight
    // completes; the connection closes. Idempotent.
    void close();
    // The server is stopping: serve what has arrived, then leave.
    void stop_when_idle();

    std::uint64_t id() const noexcept { return info_->id; }

private:
    asio::awaitable<void> serve();
    asio::awaitable<void> read_input();
    void read_available();
    asio::awaitable<void> wait(bool watch_input);
    void take_input(std::size_t n);
    void start_write();
    void written(net::error_code ec, std::uint64_t tag) override;
    asio::awaitable<void> finish();
    void wake() noexcept;
    void enter_registry();
    void leave_registry();

    worker& owner_;
    std::unique_ptr<net::stream> stream_;
    std::shared_ptr<command::client_info> info_;
    proxy::client_core core_;
    asio::steady_timer wake_;  // a condition: cancelled to wake the coroutine
    asio::steady_timer idle_;  // --timeout
    bool woken_ = false;       // wake() came while the coroutine was not waiting
    bool reading_ = false;     // suspended in a read of new bytes
    std::string write_buf_;    // the bytes of the write under way; untouched until it completes
    bool write_in_progress_ = false;
};

}  // namespace respcache::server
