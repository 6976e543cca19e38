#pragma once

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include "respcache/net/stream.hpp"

namespace respcache::fakes {

// A net::stream whose peer is the test: bytes pushed by the test are read by the stream's owner, bytes
// the owner writes pile up for the test to take. Completions are posted to the stream's executor, as a
// socket's would be, so the test steps them with io_context::poll(). A stream may be connected again
// after it is closed (the owner's reconnects), each time as a new "socket".
class memory_stream final : public net::stream {
public:
    explicit memory_stream(net::asio::any_io_executor ex) : ex_(ex) {}

    // ---- the test's side (the peer) ----
    // The next connect attempts fail with this reason (empty: they succeed).
    std::string refuse;
    void push(std::string_view bytes) {
        inbound_.append(bytes);
        wake_reader();
    }
    // The peer closes its side: reads see the end of the stream.
    void end() {
        eof_ = true;
        wake_reader();
    }
    std::string take_written() {
        std::string out;
        out.swap(written_);
        return out;
    }
    int connects = 0;  // successful connects so far

    // ---- net::stream ----
    net::asio::any_io_executor get_executor() noexcept override { return ex_; }
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
    bool is_open() const noexcept override { return open_; }
    void cancel() noexcept override { abort_waiting(); }
    void shutdown() noexcept override { eof_ = true; }
    void close() noexcept override {
        open_ = false;
        abort_waiting();
    }
    std::string peer_address() const override { return "memory:1"; }
    std::string local_address() const override { return "memory:2"; }

private:
    void start_wait_readable(wait_handler h) override {
        if (!inbound_.empty() || eof_) return complete(std::move(h), net::error_code());
        waiting_ = std::move(h);
    }
    void start_read_some(net::asio::mutable_buffer into, transfer_handler h) override {
        if (!inbound_.empty() || eof_) {
            net::error_code ec;
            const std::size_t n = read_now(into, ec);
            return complete(std::move(h), ec, n);
        }
        read_into_ = into;
        reading_ = std::move(h);
    }
    void start_write_all(net::asio::const_buffer bytes, transfer_handler h) override {
        if (!open_) return complete(std::move(h), net::asio::error::bad_descriptor, 0);
        written_.append(static_cast<const char*>(bytes.data()), bytes.size());
        complete(std::move(h), net::error_code(), bytes.size());
    }
    void start_connect(std::string, std::uint16_t, std::chrono::milliseconds, connect_handler h) override {
        std::string error = refuse;
        if (error.empty()) {
            open_ = true;
            eof_ = false;
            inbound_.clear();
            ++connects;
        }
        net::asio::post(ex_, [h = std::move(h), error]() mutable { std::move(h)(error); });
    }

    template <typename H, typename... A>
    void complete(H&& h, A... args) {
        net::asio::post(ex_, [h = std::forward<H>(h), args...]() mutable { std::move(h)(args...); });
    }
    void wake_reader() {
        if (waiting_) {
            auto h = std::move(*waiting_);
            waiting_.reset();
            complete(std::move(h), net::error_code());
        }
        if (reading_) {
            auto h = std::move(*reading_);
            reading_.reset();
            net::error_code ec;
            const std::size_t n = read_now(read_into_, ec);
            complete(std::move(h), ec, n);
        }
    }
    void abort_waiting() {
        if (waiting_) {
            auto h = std::move(*waiting_);
            waiting_.reset();
            complete(std::move(h), net::error_code(net::asio::error::operation_aborted));
        }
        if (reading_) {
            auto h = std::move(*reading_);
            reading_.reset();
            complete(std::move(h), net::error_code(net::asio::error::operation_aborted), std::size_t(0));
        }
    }

    net::asio::any_io_executor ex_;
    bool open_ = false;
    bool eof_ = false;
    std::string inbound_;
    std::string written_;
    std::optional<wait_handler> waiting_;
    std::optional<transfer_handler> reading_;
    net::asio::mutable_buffer read_into_;
};

}  // namespace respcache::fakes
