#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// Redis Cluster's key space: 16384 hash slots, each served by one master. See "Redis cluster
// specification" in the Redis docs: a key's slot is CRC16 (XMODEM) of the key, or of its hash tag (the
// bytes between the first '{' and the next '}', when not empty), modulo 16384.
namespace respcache::cluster {

inline constexpr std::uint16_t kSlots = 16384;
inline constexpr std::uint16_t kNoNode = UINT16_MAX;

std::uint16_t key_slot(std::string_view key) noexcept;

struct node_address {
    std::string host;
    std::uint16_t port = 0;
    // "host:port" ("[v6]:port" for an IPv6 address), as Redis names nodes in MOVED and ASK.
    std::string name() const;
    friend bool operator==(const node_address&, const node_address&) = default;
};

// Which master serves each slot. Masters are kept sorted by name, so that every io thread (and every
// respcache in front of the same cluster) numbers them alike: the SCAN cursor names a master by index.
class slot_map {
public:
    // From the bytes of a CLUSTER SLOTS reply (RESP2 or RESP3). nullopt if it is not one. A node whose
    // address is empty or "?" is named by `fallback_host` (the host the reply came from).
    static std::optional<slot_map> from_cluster_slots(std::string_view reply, std::string_view fallback_host);

    const std::vector<node_address>& masters() const noexcept { return masters_; }
    // The index in masters() of the slot's master, kNoNode when no master serves it.
    std::uint16_t owner(std::uint16_t slot) const noexcept { return owner_[slot]; }
    // Every slot has a master.
    bool complete() const noexcept;
    // A MOVED redirection said `slot` is now served by `node` (added as a master if unknown).
    void assign(std::uint16_t slot, const node_address& node);
    // The index of `node` in masters(), kNoNode if it is not one.
    std::uint16_t index_of(const node_address& node) const noexcept;

private:
    std::uint16_t add_master(const node_address& node);
    std::vector<node_address> masters_;
    std::array<std::uint16_t, kSlots> owner_{};
};

// A MOVED or ASK error ("-MOVED 3999 127.0.0.1:6381"), or nullopt for any other reply.
struct redirect {
    bool ask = false;
    std::uint16_t slot = 0;
    node_address node;
};
std::optional<redirect> parse_redirect(std::string_view reply);

}  // namespace respcache::cluster
