#include "respcache/cluster/merge.hpp"

#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::cluster {

namespace {

std::string ordered_values(std::span<const std::string> pieces, const merge_context& ctx) {
    std::vector<std::string_view> out(ctx.values);
    for (std::size_t p = 0; p < pieces.size(); ++p) {
        auto values = resp::array_elements(pieces[p]);
        const auto& args = (*ctx.groups)[p].args;
        if (!values || values->size() != args.size()) return pieces[p];
        for (std::size_t i = 0; i < args.size(); ++i) out[args[i] - 1] = (*values)[i];
    }
    std::string reply;
    resp::write_array_header(reply, out.size());
    for (std::string_view v : out) reply.append(v);
    return reply;
}

std::string summed(std::span<const std::string> pieces) {
    std::int64_t total = 0;
    for (const std::string& p : pieces) {
        auto n = resp::integer_value(p);
        if (!n) return p;
        total += *n;
    }
    std::string reply;
    resp::write_integer(reply, total);
    return reply;
}

std::string concatenated(std::span<const std::string> pieces) {
    std::vector<std::string_view> all;
    for (const std::string& p : pieces) {
        auto items = resp::elements(p);
        if (!items) return p;
        all.insert(all.end(), items->begin(), items->end());
    }
    std::string reply;
    resp::write_array_header(reply, all.size());
    for (std::string_view v : all) reply.append(v);
    return reply;
}

std::string any_value(std::span<const std::string> pieces, const merge_context& ctx) {
    std::vector<const std::string*> found;
    for (const std::string& p : pieces)
        if (!resp::is_null(p)) found.push_back(&p);
    if (found.empty()) return pieces.front();
    const std::size_t pick = ctx.random != nullptr ? (*ctx.random)() % found.size() : 0;
    return *found[pick];
}

std::string scan_reply(const std::string& piece, const merge_context& ctx) {
    auto parts = resp::array_elements(piece);
    if (!parts || parts->size() != 2) return piece;
    auto cursor = resp::string_value((*parts)[0]);
    if (!cursor) return piece;
    std::string reply;
    resp::write_array_header(reply, 2);
    resp::write_bulk(reply, encode_scan_cursor(*cursor, ctx.scan_node, ctx.masters));
    reply.append((*parts)[1]);
    return reply;
}

}  // namespace

std::string merge_replies(merge how, std::span<const std::string> pieces, const merge_context& ctx) {
    if (pieces.empty()) return "*0\r\n";
    for (const std::string& p : pieces)
        if (resp::is_error(p)) return p;
    switch (how) {
        case merge::ordered_array: return ordered_values(pieces, ctx);
        case merge::sum: return summed(pieces);
        case merge::all_ok: return "+OK\r\n";
        case merge::concat: return concatenated(pieces);
        case merge::any_value: return any_value(pieces, ctx);
        case merge::scan: return scan_reply(pieces.front(), ctx);
        case merge::none:
        case merge::first: break;
    }
    return pieces.front();
}

}  // namespace respcache::cluster
