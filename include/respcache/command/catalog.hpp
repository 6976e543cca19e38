#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "respcache/util/ascii.hpp"

namespace respcache::command {

// Hash and equality that let unordered maps keyed by std::string be searched with a string_view.
struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

// Command flags as Redis's COMMAND reply names them (only those respcache acts on).
enum flag : std::uint32_t {
    flag_readonly = 1u << 0,
    flag_write = 1u << 1,
    flag_blocking = 1u << 2,
    flag_pubsub = 1u << 3,
    flag_movablekeys = 1u << 4,
    flag_may_replicate = 1u << 5,
    flag_admin = 1u << 6,
    flag_noscript = 1u << 7,
    flag_fast = 1u << 8,
};

// One key specification of Redis 7 (see "Command key specifications" in the Redis docs).
struct key_spec {
    enum class begin { index, keyword, unknown } begin_kind = begin::unknown;
    int index = 0;              // begin::index
    std::string keyword;        // begin::keyword, lower case
    int start_from = 0;         // begin::keyword; negative counts from the end
    enum class find { range, keynum, unknown } find_kind = find::unknown;
    int last_key = 0;           // find::range
    int key_step = 1;           // find::range and find::keynum
    int limit = 0;              // find::range
    int keynum_index = 0;       // find::keynum
    int first_key = 1;          // find::keynum
    bool incomplete = false;    // Redis says the spec may miss keys
    bool read_only = false;     // flag RO: the command only reads these keys
};

// What the backend says about one command (or subcommand, named "container|sub").
struct command_info {
    std::string name;  // lower case
    int arity = 0;     // negative: at least -arity arguments, the name included
    std::uint32_t flags = 0;
    int first_key = 0, last_key = 0, key_step = 0;  // the legacy key positions
    std::vector<key_spec> key_specs;                // empty before Redis 7
    bool nondeterministic = false;  // tip nondeterministic_output: two calls may answer differently
    string_map<command_info> subcommands;  // keyed by the subcommand, lower case

    bool has(flag f) const noexcept { return (flags & f) != 0; }
};

// The result of finding the keys of one command.
struct key_set {
    std::vector<std::string_view> keys;  // views into the command's arguments
    bool complete = true;                // false: there may be keys that were not found
};

// The backend's command table, learned from its COMMAND reply, immutable once built. Shared by all
// threads through a std::shared_ptr<const catalog>.
class catalog {
public:
    // Builds from the bytes of a COMMAND reply (one complete RESP reply). nullopt if it is not a COMMAND
    // reply this code understands.
    static std::shared_ptr<const catalog> from_reply(std::string_view command_reply);

    // The command a request names: the subcommand entry when the command is a container (CLIENT, OBJECT,
    // CONFIG...) and args[1] names one of its subcommands; the container itself otherwise. nullptr when
    // the backend does not know the command.
    const command_info* find(std::span<const std::string_view> args) const;

    std::size_t size() const noexcept { return commands_.size(); }
    // Calls `f` with every command and every subcommand.
    template <typename F>
    void for_each(F&& f) const {
        for (const auto& [name, info] : commands_) {
            f(info);
            for (const auto& [sub, sub_info] : info.subcommands) f(sub_info);
        }
    }

    // The keys `args` touches according to `info`, bounded by the arguments actually present.
    static key_set keys(const command_info& info, std::span<const std::string_view> args);
    // The same into `out` (cleared first; its capacity is kept).
    static void keys(const command_info& info, std::span<const std::string_view> args, key_set& out);

private:
    string_map<command_info> commands_;
};

// The command layer names its text helpers as its own.
using util::iequals;
using util::to_lower;

}  // namespace respcache::command
