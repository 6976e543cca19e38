#pragma once

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "respcache/net/stream.hpp"

namespace respcache::fakes {

// A net::stream whose peer is the test: bytes pushed by the test are read by the stream's owner, bytes
// the owner writes pile up for the test to take. Completions run on the stream's executor, as a
// socket's would, so the test steps them with io_context::poll(). A stream may be connected again after
// it is closed (the owner's reconnects), each time as a new "socket".
class memory_stream final : public net::stream {
public:
    explicit memory_stream(net::asio::any_io_executor ex) : ex_(ex), bell_(ex) {}

    // ---- the test's side (the peer) ----
    // The next connect attempts fail with this reason (empty: they succeed).
    std::string refuse;
    void push(std::string_view bytes) {
        inbound_.append(bytes);
        bell_.cancel();
    }
    // The peer closes its side: reads see the end of the stream.
    void end() {
        eof_ = true;
        bell_.cancel();
    }
    std::string take_written() {
        std::string out;
        out.swap(written_);
        return out;
    }
    int connects = 0;  // successful connects so far

    // ---- net::stream ----
    net::asio::any_io_executor get_executor() noexcept override { return ex_; }

    net::asio::awaitable<net::error_code> wait_readable() override {
        for (;;) {
            if (!open_) co_return net::asio::error::bad_descriptor;
            if (!inbound_.empty() || eof_) co_return net::error_code();
            const int aborts = aborts_;
            bell_.expires_at(std::chrono::steady_clock::time_point::max());
            co_await bell_.async_wait(net::asio::as_tuple(net::asio::use_awaitable));
            if (aborts != aborts_) co_return net::asio::error::operation_aborted;
        }
    }
    net::asio::awaitable<io_result> read_some(net::asio::mutable_buffer into) override {
        const net::error_code ec = co_await wait_readable();
        if (ec) co_return io_result{ec, 0};
        net::error_code rec;
        const std::size_t n = read_now(into, rec);
        co_return io_result{rec, n};
    }
    std::size_t read_now(net::asio::mutable_buffer into, net::error_code& ec) noexcept override {
        ec.clear();
        if (!open_) {
            ec = net::asio::error::bad_descriptor;
            return 0;
        }
        if (inbound_.empty()) {
            ec = eof_ ? net::error_code(net::asio::error::eof) : net::error_code(net::asio::error::would_block);
            return 0;
        }
        const std::size_t n = std::min(into.size(), inbound_.size());
        std::memcpy(into.data(), inbound_.data(), n);
        inbound_.erase(0, n);
        return n;
    }
    bool input_waiting() const noexcept override { return open_ && (!inbound_.empty() || eof_); }
    void write_all(net::asio::const_buffer bytes, std::shared_ptr<net::write_receiver> r, std::uint64_t tag) override {
        net::error_code ec;
        if (open_)
            written_.append(static_cast<const char*>(bytes.data()), bytes.size());
        else
            ec = net::asio::error::bad_descriptor;
        net::asio::post(ex_, [r = std::move(r), ec, tag] { r->written(ec, tag); });
    }
    net::asio::awaitable<std::string> connect(std::string, std::uint16_t, std::chrono::milliseconds) override {
        if (!refuse.empty()) co_return refuse;
        open_ = true;
        eof_ = false;
        inbound_.clear();
        ++connects;
        co_return std::string();
    }
    bool is_open() const noexcept override { return open_; }
    void cancel() noexcept override {
        ++aborts_;
        bell_.cancel();
    }
    void shutdown() noexcept override { eof_ = true; }
    void close() noexcept override {
        open_ = false;
        cancel();
    }
    std::string peer_address() const override { return "memory:1"; }
    std::string local_address() const override { return "memory:2"; }

private:
    net::asio::any_io_executor ex_;
    net::asio::steady_timer bell_;  // rung (cancelled) whenever something happens to the stream
    int aborts_ = 0;
    bool open_ = false;
    bool eof_ = false;
    std::string inbound_;
    std::string written_;
};

}  // namespace respcache::fakes
