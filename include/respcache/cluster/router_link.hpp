#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "respcache/backend/connection.hpp"
#include "respcache/cluster/route.hpp"
#include "respcache/cluster/topology.hpp"
#include "respcache/resp/parser.hpp"

namespace respcache::cluster {

using std::chrono::milliseconds;

// A link to a whole Redis Cluster, for clients that speak to one Redis: it routes each command of what
// it is sent to the master of its keys' slot (cluster::plan), over one pipelined connection per master,
// splits MGET, MSET, DEL, UNLINK, EXISTS and TOUCH across slots, sends DBSIZE, KEYS, SCAN, FLUSHALL and
// the like to every master and merges their replies, and follows MOVED (telling the topology) and ASK
// (with ASKING) so that the client never sees either. Replies reach the sender in the order it sent, as
// on one connection, whatever order the masters answer in. Commands without keys go where the commands
// around them go. On a dedicated link (no reconnect) a transaction stays on the node of its first key
// (MULTI is answered here until that key is known) and a key of another slot gets -CROSSSLOT; a
// subscriber stays on the node its first command went to.
//
// Lives on one executor; not thread-safe.
class router_link final : public backend::pooled_link, public std::enable_shared_from_this<router_link> {
public:
    using lookup = std::function<const command::command_info*(std::span<const std::string_view>)>;
    // The CLIENT ID of a master's invalidation channel (0: none live).
    using redirects = std::function<std::int64_t(std::string_view node)>;

    // Client tracking: a CLIENT TRACKING on ... REDIRECT sent on this link is made to name, on each
    // master, that master's own channel (`redirect_for`), and is sent to every master before the first
    // command this link sends it under that request (and again on each new socket). A tracked read
    // (CLIENT CACHING yes before it) that is redirected is not tracked where it lands: socket_id() moves,
    // so that its reply is not cached.
    router_link(boost::asio::any_io_executor ex, backend::connection_options options, std::shared_ptr<topology> topo,
                lookup find, redirects redirect_for = {});
    ~router_link() override;

    // pooled_link
    void start() override;
    void on_ready(std::function<void()> f) override { on_ready_ = std::move(f); }
    void on_down(std::function<void(std::string_view)> f) override { on_down_ = std::move(f); }
    void on_closing(std::function<void()> f) override { on_closing_ = std::move(f); }
    void set_request_timeout(milliseconds timeout) noexcept override;

    // link
    void send(std::string_view bytes, std::uint32_t replies, backend::request* r, milliseconds timeout) override;
    void send(std::string_view bytes, std::uint32_t replies, backend::request* r) override {
        send(bytes, replies, r, options_.request_timeout);
    }
    void select(std::uint32_t db) override { db_ = db; }
    std::uint32_t selected_db() const noexcept override { return db_; }
    void assume_selected(std::uint32_t db) noexcept override { db_ = db; }
    void set_stream_sink(backend::stream_sink* sink) noexcept override;
    backend::link_state state() const noexcept override;
    resp::protocol protocol() const noexcept override { return options_.protocol; }
    std::size_t in_flight() const noexcept override { return in_flight_; }
    std::int64_t backend_id() const noexcept override;
    std::uint64_t socket_id() const noexcept override { return sockets_; }
    void close() override;

private:
    struct unit;
    struct batch;
    class part;

    void send_streamed(std::string_view bytes, std::uint32_t replies, backend::request* r, milliseconds timeout);
    void forget_departed();
    void route_waiting();
    void route_batch(batch& b);
    void plan_unit(batch& b, unit& u, std::span<const std::string_view> args);
    // MULTI, EXEC, DISCARD, RESET, UNWATCH on a dedicated link; false for any other command.
    bool plan_transaction_control(unit& u, std::string_view name);
    void plan_transaction(unit& u, std::string_view name, std::span<const std::string_view> args);
    node_address keyless_target(const batch& b, std::size_t index) const;
    void dispatch(batch& b, std::size_t index, const node_address& keyless_node);
    void send_part(part& p);
    void part_reply(part& p, std::size_t k, std::string_view bytes);
    void part_failed(part& p, std::string_view reason);
    void piece_done(batch& b, unit& u);
    void fail_unrouted(std::string_view reason);
    void pump();
    void sweep_later();
    backend::connection& node(const node_address& a);
    std::uint16_t owner_of(std::uint16_t slot) const;
    const node_address& master(std::uint16_t index) const;

    boost::asio::any_io_executor ex_;
    backend::connection_options options_;
    std::shared_ptr<topology> topo_;
    lookup find_;
    redirects redirect_for_;
    // The last CLIENT TRACKING on request (its arguments; the REDIRECT value is each node's), counted
    // by generation; and for each node, the generation and socket it was last sent under.
    std::vector<std::string> tracking_args_;
    std::uint64_t tracking_generation_ = 0;
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> tracked_;
    std::string tracking_command_for(const node_address& to) const;
    // Prepends the tracking request to `p` when its node has not had the current one on its socket.
    void track_on_node(part& p);
    const bool dedicated_;  // one client's: transactions, blocking commands, subscriptions
    std::uint64_t subscription_ = 0;
    std::map<std::string, std::shared_ptr<backend::connection>> nodes_;  // by node name
    std::list<std::unique_ptr<batch>> batches_;  // in the order sent; the front is answered next
    std::list<std::unique_ptr<batch>> retired_;  // answered, with parts still in flight
    std::size_t in_flight_ = 0;
    std::uint64_t sockets_ = 1;
    std::uint32_t db_ = 0;
    bool closed_ = false;
    bool pumping_ = false;
    bool repump_ = false;
    bool sweep_posted_ = false;
    // Dedicated links: where the last keyed command went, the transaction's slot and node, the stream.
    std::optional<node_address> sticky_;
    struct {
        bool deferred = false;  // MULTI answered here, not sent yet
        bool open = false;      // MULTI sent
        bool watching = false;
        bool dirty = false;     // a command was refused inside MULTI: EXEC aborts
        std::optional<std::uint16_t> slot;
        std::optional<node_address> node;
    } txn_;
    backend::stream_sink* sink_ = nullptr;
    std::optional<node_address> stream_node_;
    std::minstd_rand random_{std::random_device{}()};
    resp::request_parser parser_;     // reused by every batch
    command::key_set keys_scratch_;
    std::function<void()> on_ready_;
    std::function<void(std::string_view)> on_down_;
    std::function<void()> on_closing_;
};

}  // namespace respcache::cluster
