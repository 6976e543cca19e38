#include "respcache/backend/pool.hpp"

namespace respcache::backend {

namespace {
constexpr std::size_t kMaxIdleDedicated = 8;
}

pool::pool(asio::any_io_executor ex, connection_options options, std::size_t shared_count)
    : ex_(ex), options_(std::move(options)) {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, shared_count); ++i)
        shared_.push_back(std::make_shared<connection>(ex_, options_));
}

pool::~pool() { close(); }

void pool::start() {
    for (auto& c : shared_) c->start();
}

void pool::close() {
    if (closed_) return;
    closed_ = true;
    for (auto& c : shared_) c->close();
    for (auto& c : idle_) c->close();
    idle_.clear();
}

std::shared_ptr<link> pool::acquire_dedicated() {
    ++dedicated_in_use_;
    while (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        if (c->state() == link_state::ready && c->in_flight() == 0) return c;
        c->close();
    }
    connection_options o = options_;
    o.reconnect = false;
    auto c = std::make_shared<connection>(ex_, std::move(o));
    c->start();
    return c;
}

void pool::release_dedicated(std::shared_ptr<link> c, bool clean) {
    if (dedicated_in_use_ > 0) --dedicated_in_use_;
    if (!c) return;
    c->set_stream_sink(nullptr);
    if (!closed_ && clean && c->state() == link_state::ready && c->in_flight() == 0 && idle_.size() < kMaxIdleDedicated) {
        idle_.push_back(std::move(c));
        return;
    }
    c->close();
}

void pool::set_timeouts(milliseconds connect_timeout, milliseconds request_timeout) {
    options_.connect_timeout = connect_timeout;
    options_.request_timeout = request_timeout;
    for (auto& c : shared_) c->set_request_timeout(request_timeout);
}

}  // namespace respcache::backend
