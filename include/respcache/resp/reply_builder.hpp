#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "respcache/resp/protocol.hpp"

namespace respcache::resp {

// Encodes the replies respcache makes itself, for the protocol of the client they go to: the one way
// every locally made reply is written (handlers, errors of the proxy core, the proxy's INFO section).
// In RESP2, maps go out as flat arrays of name, value; sets and pushes as arrays; nulls as the nil bulk
// string (or nil array); verbatim strings as bulk strings; booleans as integers. In RESP3 each has its
// own type, as Redis sends it.
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
    void null();        // a missing value (RESP2: $-1, RESP3: _)
    void null_array();  // a missing aggregate (RESP2: *-1, RESP3: _)
    void array(std::size_t count);
    void map(std::size_t pairs);  // then name, value for each pair
    void set(std::size_t count);
    void push(std::size_t count);  // an out-of-band message (RESP3: >), such as a pub/sub confirmation
    // Text with its format ("txt"), as INFO and CLIENT LIST answer (RESP3: =).
    void verbatim(std::string_view text, std::string_view format = "txt");
    void boolean(bool value);  // RESP2: :1 or :0
    // Bytes already encoded for this client (a cache hit, a relayed reply).
    void raw(std::string_view encoded) { out_->append(encoded); }

private:
    std::string* out_;
    protocol proto_;
};

}  // namespace respcache::resp
