// The request parser (resp::request_parser) fed a client's byte stream.
//
// Input: byte 0 picks the limits (bits 0-2 shrink the inline, bulk and argument-count limits so that
// short inputs reach them) and bit 3 the unauthenticated mode; byte 1 seeds how the rest, the client's
// bytes, is cut into reads. The stream is parsed once as the reads come and once delivered whole: both
// must give the same commands, then the same end (an error with the same text, or needing more bytes).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/resp/parser.hpp"
#include "stream_feed.hpp"

using namespace respcache;
using fuzzing::fed;
using fuzzing::require;

namespace {

struct outcome {
    std::vector<std::vector<std::string>> commands;
    fed end = fed::need_more;
    std::string error;
    bool operator==(const outcome&) const = default;
};

resp::limits limits_from(std::uint8_t bits) {
    resp::limits lim;
    if (bits & 1) lim.max_inline_len = 16;
    if (bits & 2) lim.max_bulk_len = 32;
    if (bits & 4) lim.max_multibulk_len = 8;
    return lim;
}

outcome parse_stream(std::uint8_t bits, std::string_view stream, std::uint8_t split_seed) {
    resp::request_parser parser(limits_from(bits));
    parser.set_unauthenticated((bits & 8) != 0);
    fuzzing::splitter split(split_seed);
    outcome out;
    out.end = fuzzing::feed(stream, split, [&](std::string_view in) -> std::pair<fed, std::size_t> {
        const resp::parse_result r = parser.parse(in);
        if (r.status == resp::parse_status::error) return {fed::error, 0};
        if (r.status == resp::parse_status::need_more) return {fed::need_more, r.consumed};
        require(parser.progress() == 0, "progress() is not 0 after a command");
        std::vector<std::string> args;
        for (std::string_view a : parser.args()) args.emplace_back(a);  // reads every view
        out.commands.push_back(std::move(args));
        return {fed::done, r.consumed};
    });
    if (out.end == fed::error) {
        out.error = parser.error_text();
        require(out.error.starts_with("ERR Protocol error: "), "an error text that is not a protocol error");
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return fuzzing::pieces_match_whole(data, size, parse_stream);
}
