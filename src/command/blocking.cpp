#include "respcache/command/blocking.hpp"

#include <string>

#include "respcache/util/ascii.hpp"

namespace respcache::command {

using std::chrono::milliseconds;
using util::iequals;

bool may_block(args_view args, const command_info* info) {
    if (info != nullptr) {
        if (iequals(args[0], "xread") || iequals(args[0], "xreadgroup")) {
            for (std::size_t i = 1; i < args.size(); ++i)
                if (iequals(args[i], "block")) return true;
            return false;
        }
        if (info->has(flag_blocking)) return true;
    }
    return iequals(args[0], "wait") || iequals(args[0], "waitaof");
}

bool interrupts_script(args_view args) {
    return args.size() == 2 && (iequals(args[0], "script") || iequals(args[0], "function")) && iequals(args[1], "kill");
}

namespace {
std::optional<milliseconds> seconds_arg(std::string_view s, milliseconds slack) {
    double v = 0;
    try {
        v = std::stod(std::string(s));
    } catch (...) {
        return slack;
    }
    // 0 or less: no bound; nor for one too large to count in milliseconds (inf, 1e300): Redis answers it.
    if (!(v > 0) || !(v < 1e15)) return std::nullopt;
    return milliseconds(static_cast<std::int64_t>(v * 1000)) + slack;
}

std::optional<milliseconds> millis_arg(std::string_view s, milliseconds slack) {
    std::int64_t v = 0;
    if (!util::parse_int64(s, v)) return slack;
    if (v <= 0) return std::nullopt;
    return milliseconds(v) + slack;
}
}  // namespace

std::optional<milliseconds> blocking_timeout(args_view args, milliseconds slack) {
    const std::string_view name = args[0];
    if (iequals(name, "blmpop") || iequals(name, "bzmpop")) return args.size() > 1 ? seconds_arg(args[1], slack) : slack;
    if (iequals(name, "xread") || iequals(name, "xreadgroup")) {
        for (std::size_t i = 1; i + 1 < args.size(); ++i)
            if (iequals(args[i], "block")) return millis_arg(args[i + 1], slack);
        return slack;
    }
    if (iequals(name, "wait")) return args.size() > 2 ? millis_arg(args[2], slack) : slack;
    if (iequals(name, "waitaof")) return args.size() > 3 ? millis_arg(args[3], slack) : slack;
    if (iequals(name, "blpop") || iequals(name, "brpop") || iequals(name, "brpoplpush") || iequals(name, "blmove") ||
        iequals(name, "bzpopmin") || iequals(name, "bzpopmax"))
        return seconds_arg(args.back(), slack);
    return std::nullopt;
}

}  // namespace respcache::command
