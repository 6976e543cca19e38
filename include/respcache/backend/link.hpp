#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "respcache/backend/request.hpp"
#include "respcache/resp/protocol.hpp"

namespace respcache::backend {

using std::chrono::milliseconds;

enum class link_state {
    connecting,  // a connect attempt (and its log-in) is under way: requests are queued
    ready,       // logged in
    down,        // the last attempt failed; requests fail at once until the next attempt
    closed,      // close() was called
};

// What the proxy core needs of one pipelined connection to Redis. backend::connection is the real one;
// tests script a fake. Lives on one executor; not thread-safe.
class link {
public:
    virtual ~link() = default;

    // Queues `bytes`, encoded commands producing `replies` replies, for `r` (nullptr: the replies are
    // discarded). `timeout` bounds the wait for the first of them once they are at the head of the queue;
    // milliseconds::max() waits for ever (blocking commands). When the link is down, r->on_error is
    // called before send returns. In stream mode `replies` and `r` are ignored.
    virtual void send(std::string_view bytes, std::uint32_t replies, request* r, milliseconds timeout) = 0;
    // The same with the link's request timeout.
    virtual void send(std::string_view bytes, std::uint32_t replies, request* r) = 0;

    // Makes `db` the selected database for what is sent next (queues a SELECT when it differs).
    virtual void select(std::uint32_t db) = 0;
    virtual std::uint32_t selected_db() const noexcept = 0;
    // Records that commands sent earlier (a SELECT inside MULTI) changed the selected database.
    virtual void assume_selected(std::uint32_t db) noexcept = 0;

    // Stream mode: once the requests already pending are answered, every reply goes to `sink` (nullptr
    // returns to request mode).
    virtual void set_stream_sink(stream_sink* sink) noexcept = 0;

    virtual link_state state() const noexcept = 0;
    virtual resp::protocol protocol() const noexcept = 0;
    // Requests sent and not yet answered.
    virtual std::size_t in_flight() const noexcept = 0;
    // The backend's CLIENT ID for this link, 0 until known.
    virtual std::int64_t backend_id() const noexcept = 0;
    // Changes each time the link opens a new socket to Redis: what Redis remembers per connection (client
    // tracking, the selected database) belongs to one value of it.
    virtual std::uint64_t socket_id() const noexcept = 0;

    // Fails what is pending ("connection closed") and closes for good.
    virtual void close() = 0;
};

// A link a pool owns, starts and watches: one connection, or a router over the connections to the
// masters of a Redis Cluster (cluster::router_link).
class pooled_link : public link {
public:
    // Starts connecting. Called once, after the shared_ptr exists.
    virtual void start() = 0;
    // Called (on the executor) each time the link is logged in (for a router: one of its connections),
    // each time it is lost or an attempt fails (with the reason), and just before a connected socket is
    // closed, whatever the reason (what Redis tracked for that socket is then forgotten).
    virtual void on_ready(std::function<void()> f) = 0;
    virtual void on_down(std::function<void(std::string_view)> f) = 0;
    virtual void on_closing(std::function<void()> f) = 0;
    // The timeout of requests sent from now on.
    virtual void set_request_timeout(milliseconds timeout) noexcept = 0;
};

// The links of one io thread: shared pipelined links that every client of the thread multiplexes onto,
// and dedicated links that one client holds alone while its state needs one (MULTI/WATCH, blocking
// commands, subscriptions, MONITOR). Each speaks one protocol: a client's commands go to links of its
// own protocol, so that Redis answers them as it would answer the client. Lives on one executor; not
// thread-safe.
class link_pool {
public:
    virtual ~link_pool() = default;

    // The shared link for a client of protocol `p` (always the same one for a given id and protocol, so
    // that its requests stay in order on one pipeline), and its index among the shared links.
    virtual std::size_t shared_index(std::uint64_t client_id, resp::protocol p) const noexcept = 0;
    virtual link& shared(std::size_t index) = 0;

    // A link of protocol `p` for one client alone: an idle clean one if any, else a new one (requests
    // queue until it is up or fails).
    virtual std::shared_ptr<link> acquire_dedicated(resp::protocol p) = 0;
    // Gives a dedicated link back. `clean`: its Redis-side state is as acquire_dedicated found it (no
    // MULTI, WATCH, subscription or MONITOR, nothing pending); others are closed.
    virtual void release_dedicated(std::shared_ptr<link> l, bool clean) = 0;
};

}  // namespace respcache::backend
