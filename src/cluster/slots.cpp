#include "respcache/cluster/slots.hpp"

#include <algorithm>

#include "respcache/resp/reply_view.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::cluster {

namespace {

// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the cluster specification gives it.
constexpr std::array<std::uint16_t, 256> make_crc_table() {
    std::array<std::uint16_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint16_t crc = static_cast<std::uint16_t>(i << 8);
        for (int b = 0; b < 8; ++b) crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
        t[i] = crc;
    }
    return t;
}
constexpr std::array<std::uint16_t, 256> kCrcTable = make_crc_table();

std::uint16_t crc16(std::string_view s) noexcept {
    std::uint16_t crc = 0;
    for (unsigned char c : s) crc = static_cast<std::uint16_t>((crc << 8) ^ kCrcTable[((crc >> 8) ^ c) & 0xff]);
    return crc;
}

std::optional<std::uint16_t> small_int(std::string_view reply, std::int64_t max) {
    auto v = resp::integer_value(reply);
    if (!v || *v < 0 || *v > max) return std::nullopt;
    return static_cast<std::uint16_t>(*v);
}

// [ip, port, id, ...] of one node in a CLUSTER SLOTS range.
std::optional<node_address> node_of(std::string_view reply, std::string_view fallback_host) {
    auto fields = resp::elements(reply);
    if (!fields || fields->size() < 2) return std::nullopt;
    auto host = resp::string_value((*fields)[0]);
    auto port = small_int((*fields)[1], 65535);
    if (!port) return std::nullopt;
    node_address n;
    n.host = host && !host->empty() && *host != "?" ? std::string(*host) : std::string(fallback_host);
    n.port = *port;
    return n;
}

}  // namespace

std::uint16_t key_slot(std::string_view key) noexcept {
    if (auto open = key.find('{'); open != std::string_view::npos) {
        auto close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
    }
    return crc16(key) & (kSlots - 1);
}

std::string node_address::name() const {
    std::string out = host.find(':') != std::string::npos ? '[' + host + ']' : host;
    out += ':';
    out += std::to_string(port);
    return out;
}

std::optional<slot_map> slot_map::from_cluster_slots(std::string_view reply, std::string_view fallback_host) {
    auto ranges = resp::elements(reply);
    if (!ranges) return std::nullopt;
    slot_map m;
    m.owner_.fill(kNoNode);
    for (std::string_view range : *ranges) {
        auto parts = resp::elements(range);
        if (!parts || parts->size() < 3) return std::nullopt;
        auto first = small_int((*parts)[0], kSlots - 1);
        auto last = small_int((*parts)[1], kSlots - 1);
        auto master = node_of((*parts)[2], fallback_host);
        if (!first || !last || *first > *last || !master) return std::nullopt;
        const std::uint16_t index = m.add_master(*master);
        std::fill(m.owner_.begin() + *first, m.owner_.begin() + *last + 1, index);
    }
    // Numbered in name order, whatever order the node that answered listed them in.
    std::vector<std::uint16_t> order(m.masters_.size());
    for (std::uint16_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&m](std::uint16_t a, std::uint16_t b) { return m.masters_[a].name() < m.masters_[b].name(); });
    std::vector<std::uint16_t> renumber(order.size());
    std::vector<node_address> sorted;
    for (std::uint16_t i = 0; i < order.size(); ++i) {
        renumber[order[i]] = i;
        sorted.push_back(m.masters_[order[i]]);
    }
    for (auto& o : m.owner_)
        if (o != kNoNode) o = renumber[o];
    m.masters_ = std::move(sorted);
    return m;
}

bool slot_map::complete() const noexcept {
    return std::none_of(owner_.begin(), owner_.end(), [](std::uint16_t o) { return o == kNoNode; });
}

std::uint16_t slot_map::index_of(const node_address& node) const noexcept {
    auto it = std::find(masters_.begin(), masters_.end(), node);
    return it == masters_.end() ? kNoNode : static_cast<std::uint16_t>(it - masters_.begin());
}

std::uint16_t slot_map::add_master(const node_address& node) {
    if (auto i = index_of(node); i != kNoNode) return i;
    masters_.push_back(node);
    return static_cast<std::uint16_t>(masters_.size() - 1);
}

void slot_map::assign(std::uint16_t slot, const node_address& node) { owner_[slot] = add_master(node); }

std::optional<redirect> parse_redirect(std::string_view reply) {
    redirect r;
    std::string_view rest;
    if (reply.starts_with("-MOVED ")) {
        rest = reply.substr(7);
    } else if (reply.starts_with("-ASK ")) {
        r.ask = true;
        rest = reply.substr(5);
    } else {
        return std::nullopt;
    }
    if (rest.ends_with("\r\n")) rest.remove_suffix(2);
    const auto space = rest.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    std::int64_t slot = 0;
    if (!util::parse_int64(rest.substr(0, space), slot) || slot < 0 || slot >= kSlots) return std::nullopt;
    r.slot = static_cast<std::uint16_t>(slot);
    std::string_view where = rest.substr(space + 1);
    const auto colon = where.rfind(':');
    std::int64_t port = 0;
    if (colon == std::string_view::npos || !util::parse_int64(where.substr(colon + 1), port) || port <= 0 ||
        port > 65535)
        return std::nullopt;
    std::string_view host = where.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    r.node.host = std::string(host);
    r.node.port = static_cast<std::uint16_t>(port);
    return r;
}

}  // namespace respcache::cluster
