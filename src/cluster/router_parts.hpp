#pragma once

// The pieces of a router_link's work, shared by its two halves: router_link.cpp (sending, answering,
// redirections) and router_plan.cpp (where each command goes). Private to src/cluster/.

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/backend/request.hpp"
#include "respcache/cluster/router_link.hpp"

namespace respcache::cluster {

namespace detail {
inline constexpr int kMaxRedirects = 5;
inline constexpr std::string_view kExecAbort = "-EXECABORT Transaction discarded because of previous errors.\r\n";
}  // namespace detail

// One command of a send(): where it goes, and its reply once its parts are in.
struct router_link::unit {
    route r;
    std::string_view raw;              // the command as sent: a slice of the batch's bytes
    std::deque<std::string> commands;  // split: one per group; scan: the one for its master (stable: parts view them)
    std::string prelude;               // sent before it on the same node (a deferred MULTI)
    std::optional<node_address> to;    // set when the transaction rules chose the node
    std::string_view replace;          // a reply that replaces whatever Redis answers (EXECABORT)
    std::uint16_t scan_node = 0;
    std::vector<std::string> pieces;
    std::size_t waiting = 0;  // parts not yet answered
    std::string reply;
    std::string error;        // the link failed before the reply came
    bool ready = false;
    bool tracking_on = false;  // CLIENT TRACKING on ... REDIRECT: rewritten for its node
    bool tracked = false;      // right after CLIENT CACHING yes: a read Redis is to track
    bool keyed() const noexcept { return r.how == route::kind::slot; }
};

// One send(): its request and its commands, answered in order.
struct router_link::batch {
    backend::request* r = nullptr;
    std::string bytes;
    std::uint32_t replies = 0;
    milliseconds timeout{0};
    std::vector<unit> units;
    std::vector<std::unique_ptr<part>> parts;
    std::size_t delivered = 0;
    std::size_t parts_live = 0;
    bool routed = false;
    bool whole = false;     // not commands the link could tell apart: sent as is to one master
    bool caching_pending = false;  // the last unit planned was CLIENT CACHING yes
    bool finished = false;  // every reply (or the error) given to r
};

// One request on one master's connection, for one unit (one piece of it).
class router_link::part final : public backend::request {
public:
    part(router_link& owner, batch& b, std::size_t unit, std::size_t piece, std::string_view command, node_address to)
        : owner_(owner), b_(b), unit_(unit), piece_(piece), command_(command), to_(std::move(to)) {}

    void on_reply(std::size_t index, std::string_view bytes) override {
        if (index < skip_) return;
        ++got_;
        owner_.part_reply(*this, index - skip_, bytes);
    }
    void on_error(std::string_view reason) override { owner_.part_failed(*this, reason); }

    router_link& owner_;
    batch& b_;
    std::size_t unit_;     // the first unit it answers
    std::size_t count_ = 1;  // how many (several only for a batch sent whole)
    std::size_t got_ = 0;    // replies received
    std::size_t piece_;
    bool follow_ = true;     // MOVED and ASK are followed (not inside a transaction)
    std::string_view command_;  // without the prelude: the batch's bytes, or its unit's (both outlive it)
    std::string prelude_;  // ASKING, or a deferred MULTI, whose replies are nobody's
    std::uint32_t skip_ = 0;
    node_address to_;
    int redirects_ = 0;
};

}  // namespace respcache::cluster
