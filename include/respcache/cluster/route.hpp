#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "respcache/command/catalog.hpp"

namespace respcache::cluster {

// How the replies of the parts of one command split across slots, or sent to every master, make its
// reply.
enum class merge : std::uint8_t {
    none,
    ordered_array,  // MGET: each part's values put back at their keys' places
    sum,            // DEL, UNLINK, EXISTS, TOUCH, DBSIZE: the sum of the integers
    all_ok,         // MSET, FLUSHALL, FLUSHDB, SCRIPT FLUSH, FUNCTION FLUSH/DELETE: +OK, or the first error
    first,          // SCRIPT LOAD, FUNCTION LOAD: the first master's reply (every one loads the same)
    concat,         // KEYS: every master's keys
    any_value,      // RANDOMKEY: a key from a master that has one, nil when none has
    scan,           // SCAN: one master's, its cursor turned into one naming the master
};

// One part of a command split across slots: the slot, and the arguments of the command that go to it
// (indexes into the command's arguments, after the name).
struct group {
    std::uint16_t slot = 0;
    std::vector<std::size_t> args;
};

// Where one client command goes in a cluster.
struct route {
    enum class kind : std::uint8_t {
        keyless,  // no key: to whichever node the commands around it go to
        slot,     // every key in one slot: to its master
        split,    // keys in several slots, of a command that can be split: one part per slot, then merged
        fanout,   // the whole data set: to every master, then merged
        local,    // answered by the proxy (reply())
    };
    kind how = kind::keyless;
    std::uint16_t slot = 0;
    merge merged = merge::none;
    std::vector<group> groups;  // split
    std::string_view reply;     // local: a complete RESP error, the same in both protocols
};

inline constexpr std::string_view kCrossSlot = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
inline constexpr std::string_view kClusterDisabled = "-ERR This instance has cluster support disabled\r\n";

// The route of `args` (the command's name first), `info` its description (nullptr: unknown, keyless).
// `keys` is scratch space, reused from call to call.
route plan(std::span<const std::string_view> args, const command::command_info* info, command::key_set& keys);
route plan(std::span<const std::string_view> args, const command::command_info* info);

// SCAN's cursor across masters: the master's own cursor times the number of masters, plus the master's
// index; a master's end moves to the next master. Decimal text, as Redis cursors are.
struct scan_position {
    std::uint16_t node = 0;
    std::string inner;  // the cursor to give that master
};
// nullopt if `cursor` is not a number (the master is then given it as sent, and says so).
std::optional<scan_position> decode_scan_cursor(std::string_view cursor, std::uint16_t masters);
// The cursor to give the client after master `node` answered `inner`.
std::string encode_scan_cursor(std::string_view inner, std::uint16_t node, std::uint16_t masters);

}  // namespace respcache::cluster
