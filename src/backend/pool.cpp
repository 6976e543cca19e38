#include "respcache/backend/pool.hpp"

namespace respcache::backend {

namespace {
constexpr std::size_t kMaxIdleDedicated = 8;

std::size_t slot_of(resp::protocol p) { return p == resp::protocol::resp3 ? 1 : 0; }
}  // namespace

pool::pool(asio::any_io_executor ex, connection_options options, std::size_t shared_count, link_factory factory)
    : ex_(ex),
      options_(std::move(options)),
      count_(std::max<std::size_t>(1, shared_count)),
      factory_(std::move(factory)),
      shared_(2 * count_) {}

pool::~pool() { close(); }

connection_options pool::options_for(resp::protocol p) const {
    connection_options o = options_;
    o.protocol = p;
    return o;
}

std::shared_ptr<pooled_link> pool::make_link(connection_options o) const {
    if (factory_) return factory_(ex_, std::move(o));
    return std::make_shared<connection>(ex_, std::move(o));
}

pooled_link& pool::make_shared_link(std::size_t index) {
    const resp::protocol p = index < count_ ? resp::protocol::resp2 : resp::protocol::resp3;
    shared_[index] = make_link(options_for(p));
    if (on_shared_) on_shared_(index, *shared_[index]);
    if (closed_)
        shared_[index]->close();
    else
        shared_[index]->start();
    return *shared_[index];
}

void pool::start() {
    for (std::size_t i = 0; i < count_; ++i)
        if (!shared_[i]) make_shared_link(i);
}

void pool::close() {
    if (closed_) return;
    closed_ = true;
    for (auto& c : shared_)
        if (c) c->close();
    for (auto& idle : idle_) {
        for (auto& c : idle) c->close();
        idle.clear();
    }
}

std::size_t pool::shared_index(std::uint64_t client_id, resp::protocol p) const noexcept {
    return slot_of(p) * count_ + client_id % count_;
}

link& pool::shared(std::size_t index) {
    if (!shared_[index]) return make_shared_link(index);
    return *shared_[index];
}

std::shared_ptr<link> pool::acquire_dedicated(resp::protocol p) {
    ++dedicated_in_use_;
    auto& idle = idle_[slot_of(p)];
    while (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        if (c->state() == link_state::ready && c->in_flight() == 0) return c;
        c->close();
    }
    connection_options o = options_for(p);
    o.reconnect = false;
    auto c = make_link(std::move(o));
    c->start();
    return c;
}

void pool::release_dedicated(std::shared_ptr<link> c, bool clean) {
    if (dedicated_in_use_ > 0) --dedicated_in_use_;
    if (!c) return;
    c->set_stream_sink(nullptr);
    auto& idle = idle_[c->protocol() == resp::protocol::resp3 ? 1 : 0];
    if (!closed_ && clean && c->state() == link_state::ready && c->in_flight() == 0 && idle.size() < kMaxIdleDedicated) {
        idle.push_back(std::move(c));
        return;
    }
    c->close();
}

void pool::set_timeouts(milliseconds connect_timeout, milliseconds request_timeout) {
    options_.connect_timeout = connect_timeout;
    options_.request_timeout = request_timeout;
    for (auto& c : shared_)
        if (c) c->set_request_timeout(request_timeout);
}

}  // namespace respcache::backend
