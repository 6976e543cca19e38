#pragma once

#include <memory>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "respcache/cluster/topology.hpp"
#include "respcache/coherence/invalidation_listener.hpp"

namespace respcache::cluster {

// Client tracking is per node: one invalidation channel per master of the cluster, each with its state
// in the tracker (tracker::add_node), whose aggregate decides whether the cache may be read or filled.
// The masters come from a topology of its own; a new master gets a channel (the cache waits for it to
// be live), a departed one's channel is closed (which flushes, as any lost channel does). On the
// listeners' thread; not thread-safe.
class invalidation_channels final : public coherence::invalidation_source {
public:
    invalidation_channels(boost::asio::any_io_executor ex, backend::connection_options base,
                          std::vector<node_address> seeds, coherence::tracker& coherence,
                          coherence::invalidation_listener::timing timing);
    ~invalidation_channels() override;

    void start() override;
    void close() override;

private:
    struct channel {
        node_address node;
        coherence::tracking_state* state = nullptr;
        std::unique_ptr<coherence::invalidation_listener> listener;
    };
    void update();

    boost::asio::any_io_executor ex_;
    coherence::tracker& tracker_;
    const coherence::invalidation_listener::timing timing_;
    std::shared_ptr<topology> topo_;
    std::vector<channel> channels_;
    // Closed listeners are kept: their connections may still call back while they wind down.
    std::vector<std::unique_ptr<coherence::invalidation_listener>> closed_;
    bool stopped_ = false;
};

}  // namespace respcache::cluster
