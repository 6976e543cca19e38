#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace respcache::resp {

// The protocol a client speaks (HELLO). RESP2 is every client's start.
enum class protocol : std::uint8_t { resp2 = 2, resp3 = 3 };

// Encodes the replies respcache makes itself, for the protocol of the client they go to: the one way
// every locally made reply is written (handlers, errors of the proxy core, the proxy's INFO section).
// RESP2 today: maps go out as flat arrays of name, value; sets as arrays; nulls as the nil bulk string.
//
// Appends to a buffer owned elsewhere, which retarget() changes (the reply queue picks where each reply
// goes); each call appends one complete element (or an aggregate's header) and never clears it.
class reply_builder {
public:
    explicit reply_builder(std::string* out = nullptr, protocol proto = protocol::resp2) noexcept
        : out_(out), proto_(proto) {}

    void retarget(std::string* out) noexcept { out_ = out; }
    std::string& buffer() noexcept { return *out_; }
    protocol proto() const noexcept { return proto_; }

    void simple(std::string_view text);  // must not contain CR or LF
    void ok() { simple("OK"); }
    // `text` without the leading '-'; CR and LF become spaces, as Redis does.
    void error(std::string_view text);
    void integer(std::int64_t value);
    void bulk(std::string_view bytes);
    void null();        // a missing value (RESP2: $-1)
    void null_array();  // a missing aggregate (RESP2: *-1)
    void array(std::size_t count);
    void map(std::size_t pairs);  // then name, value for each pair
    void set(std::size_t count);
    // Bytes already encoded for this client (a cache hit, a relayed reply).
    void raw(std::string_view encoded) { out_->append(encoded); }

private:
    std::string* out_;
    protocol proto_;
};

}  // namespace respcache::resp
