#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "respcache/cluster/route.hpp"

namespace respcache::cluster {

// What a merge needs to know beyond the pieces' bytes.
struct merge_context {
    const std::vector<group>* groups = nullptr;  // ordered_array: which argument each piece's values answer
    std::size_t values = 0;                      // ordered_array: how many the reply has
    std::uint16_t scan_node = 0;                 // scan: the master that answered, and how many there are
    std::uint16_t masters = 0;
    std::minstd_rand* random = nullptr;          // any_value
};

// The reply to the client from the replies of a command's parts (one per group, or one per master), in
// the order the parts were made. An error among them is the reply (the first one).
std::string merge_replies(merge how, std::span<const std::string> pieces, const merge_context& ctx);

}  // namespace respcache::cluster
