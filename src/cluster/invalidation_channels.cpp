#include "respcache/cluster/invalidation_channels.hpp"

#include <algorithm>

#include "respcache/util/log.hpp"

namespace respcache::cluster {

invalidation_channels::invalidation_channels(boost::asio::any_io_executor ex, backend::connection_options base,
                                             std::vector<node_address> seeds, coherence::tracker& coherence,
                                             coherence::invalidation_listener::timing timing)
    : ex_(ex),
      tracker_(coherence),
      timing_(timing),
      topo_(std::make_shared<topology>(ex, std::move(base), std::move(seeds), false)) {}

invalidation_channels::~invalidation_channels() { close(); }

void invalidation_channels::start() {
    topo_->subscribe([this](bool known) {
        if (known && !stopped_) update();
    });
    topo_->start();
}

void invalidation_channels::close() {
    if (stopped_) return;
    stopped_ = true;
    topo_->close();
    for (channel& c : channels_) {
        c.listener->close();
        tracker_.remove_node(*c.state);
        closed_.push_back(std::move(c.listener));
    }
    channels_.clear();
}

void invalidation_channels::update() {
    const auto& masters = topo_->map()->masters();
    // Departed masters first: their entries go with their channel.
    for (auto it = channels_.begin(); it != channels_.end();) {
        if (std::find(masters.begin(), masters.end(), it->node) != masters.end()) {
            ++it;
            continue;
        }
        log::info("invalidation channel closed: the node serves no slot any more", {{"node", it->node.name()}});
        it->listener->close();
        tracker_.remove_node(*it->state);
        closed_.push_back(std::move(it->listener));
        it = channels_.erase(it);
    }
    for (const node_address& m : masters) {
        const bool known = std::any_of(channels_.begin(), channels_.end(), [&m](const channel& c) { return c.node == m; });
        if (known) continue;
        coherence::tracking_state* state = tracker_.add_node(m.name());
        if (state == nullptr) {
            log::limited("cluster-too-many-nodes", spdlog::level::err,
                         "too many masters for the invalidation channels: nothing is cached",
                         {{"max", static_cast<std::uint64_t>(coherence::tracker::kMaxNodes)}});
            continue;
        }
        channel c;
        c.node = m;
        c.state = state;
        c.listener = std::make_unique<coherence::invalidation_listener>(ex_, topo_->options_for(m), tracker_, *state, timing_);
        c.listener->start();
        channels_.push_back(std::move(c));
    }
}

}  // namespace respcache::cluster
