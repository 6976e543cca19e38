#include "respcache/cluster/topology.hpp"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/log.hpp"

namespace respcache::cluster {

namespace asio = boost::asio;

namespace {
bool same(const slot_map& a, const slot_map& b) {
    if (a.masters() != b.masters()) return false;
    for (std::uint32_t s = 0; s < kSlots; ++s)
        if (a.owner(static_cast<std::uint16_t>(s)) != b.owner(static_cast<std::uint16_t>(s))) return false;
    return true;
}

// Whether some slot is served by another node in `b` than in `a` (masters compared by address).
bool slots_moved(const slot_map& a, const slot_map& b) {
    for (std::uint32_t s = 0; s < kSlots; ++s) {
        const auto slot = static_cast<std::uint16_t>(s);
        const std::uint16_t x = a.owner(slot);
        const std::uint16_t y = b.owner(slot);
        if (x == kNoNode || y == kNoNode) continue;
        if (a.masters()[x] != b.masters()[y]) return true;
    }
    return false;
}
}  // namespace

// The CLUSTER SLOTS request of one attempt.
class topology::probe final : public backend::request {
public:
    probe(topology& owner, node_address from) : owner_(owner), from_(std::move(from)) {}
    void on_reply(std::size_t, std::string_view bytes) override {
        if (resp::is_error(bytes)) {
            std::string why(bytes.substr(1));
            while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
            return finish(from_.name() + ": " + why);
        }
        owner_.answered(bytes, from_);
    }
    void on_error(std::string_view reason) override { finish(from_.name() + ": " + std::string(reason)); }

private:
    // Posted: a link that is down fails the request inside send().
    void finish(std::string why) {
        asio::post(owner_.ex_, [w = owner_.weak_from_this(), why = std::move(why)] {
            if (auto t = w.lock()) t->failed(why);
        });
    }
    topology& owner_;
    node_address from_;
};

topology::topology(asio::any_io_executor ex, backend::connection_options base, std::vector<node_address> seeds,
                   bool log_changes, timing t)
    : ex_(ex),
      base_(std::move(base)),
      seeds_(std::move(seeds)),
      log_changes_(log_changes),
      timing_(t),
      timer_(ex),
      retry_(t.first_retry) {}

topology::~topology() { close(); }

void topology::start() { schedule(std::chrono::milliseconds(0)); }

void topology::close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    if (conn_) conn_->close();
    conn_.reset();
}

backend::connection_options topology::options_for(const node_address& node) const {
    backend::connection_options o = base_;
    o.address.host = node.host;
    o.address.port = node.port;
    o.address.db = 0;
    return o;
}

std::uint64_t topology::subscribe(std::function<void(bool)> f) {
    subscribers_.emplace_back(next_id_, std::move(f));
    return next_id_++;
}

void topology::unsubscribe(std::uint64_t id) {
    std::erase_if(subscribers_, [id](const auto& s) { return s.first == id; });
}

void topology::notify(bool known) {
    // A subscriber may unsubscribe (or subscribe) while told.
    auto copy = subscribers_;
    for (auto& [id, f] : copy) f(known);
}

void topology::moved(std::uint16_t slot, const node_address& node) {
    if (map_) {
        const std::uint16_t before = map_->owner(slot);
        if (before == kNoNode || map_->masters()[before] != node) {
            map_->assign(slot, node);
            if (on_slots_moved_) on_slots_moved_();
        }
    }
    refresh_soon();
}

void topology::refresh_soon() { schedule(timing_.soon); }

void topology::schedule(std::chrono::milliseconds after) {
    if (closed_) return;
    const auto at = std::chrono::steady_clock::now() + after;
    if (scheduled_for_ != std::chrono::steady_clock::time_point{} && scheduled_for_ <= at) return;
    scheduled_for_ = at;
    timer_.expires_at(at);
    timer_.async_wait([w = weak_from_this()](boost::system::error_code ec) {
        if (ec) return;
        if (auto t = w.lock()) {
            t->scheduled_for_ = {};
            t->attempt();
        }
    });
}

std::vector<node_address> topology::candidates() const {
    std::vector<node_address> out;
    if (map_) out = map_->masters();
    for (const auto& s : seeds_)
        if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    return out;
}

void topology::attempt() {
    if (closed_ || in_flight_) return;
    if (next_candidate_ >= round_.size()) {
        round_ = candidates();
        next_candidate_ = 0;
    }
    const node_address from = round_[next_candidate_++];
    in_flight_ = true;
    backend::connection_options o = options_for(from);
    o.reconnect = false;
    conn_ = std::make_shared<backend::connection>(ex_, std::move(o));
    conn_->start();
    probe_ = std::make_unique<probe>(*this, from);
    std::string request;
    resp::write_command(request, {"CLUSTER", "SLOTS"});
    conn_->send(request, 1, probe_.get());
}

void topology::answered(std::string_view reply, const node_address& from) {
    auto fresh = slot_map::from_cluster_slots(reply, from.host);
    if (!fresh || fresh->masters().empty()) {
        asio::post(ex_, [w = weak_from_this(), why = from.name() + ": not a CLUSTER SLOTS reply"] {
            if (auto t = w.lock()) t->failed(why);
        });
        return;
    }
    const bool changed = !map_ || !same(*map_, *fresh);
    if (map_ && changed && slots_moved(*map_, *fresh) && on_slots_moved_) on_slots_moved_();
    map_ = std::move(*fresh);
    if (counters_ != nullptr) {
        counters_->refreshes.fetch_add(1, std::memory_order_relaxed);
        counters_->masters.store(map_->masters().size(), std::memory_order_relaxed);
    }
    last_error_.clear();
    retry_ = timing_.first_retry;
    round_.clear();
    next_candidate_ = 0;
    asio::post(ex_, [w = weak_from_this(), changed] {
        auto t = w.lock();
        if (!t || t->closed_) return;
        t->in_flight_ = false;
        if (t->conn_) t->conn_->close();
        t->conn_.reset();
        if (changed && t->log_changes_) {
            std::string names;
            for (const auto& m : t->map_->masters()) {
                if (!names.empty()) names += ',';
                names += m.name();
            }
            log::info("cluster slot map", {{"masters", names}, {"complete", t->map_->complete()}});
        }
        t->schedule(t->timing_.every);
        if (changed) t->notify(true);
    });
}

void topology::failed(std::string_view why) {
    if (closed_) return;
    in_flight_ = false;
    if (conn_) conn_->close();
    conn_.reset();
    if (next_candidate_ < round_.size()) return attempt();
    last_error_ = std::string(why);
    if (!map_) notify(false);
    schedule(retry_);
    retry_ = std::min(retry_ * 2, timing_.max_retry);
}

}  // namespace respcache::cluster
