#pragma once

#include <cstdint>

namespace respcache::resp {

// The protocol a connection speaks (HELLO). RESP2 is every connection's start.
enum class protocol : std::uint8_t { resp2 = 2, resp3 = 3 };

}  // namespace respcache::resp
