#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace respcache::command {

class context;
using args_view = std::span<const std::string_view>;

// How a command answered by respcache itself behaves.
enum local_flag : std::uint32_t {
    local_none = 0,
    local_in_multi = 1u << 0,   // runs at once inside MULTI instead of being queued (EXEC, DISCARD, QUIT, RESET...)
    local_in_pubsub = 1u << 1,  // runs itself while the client is subscribed (QUIT, RESET); others go to Redis
    local_no_auth = 1u << 2,    // allowed before AUTH when a password is required
    local_wait_before = 1u << 3,  // runs only once every earlier reply is in
    local_wait_after = 1u << 4,   // holds back the next command until its own reply is in
    local_in_resp3_pubsub = 1u << 5,  // a RESP3 subscriber's runs here too (CLIENT, INFO), after what it sent before
};

// How a read is served through the cache (proxy::read_through): GET's row, and each command the cache
// plan (cache_plan.hpp) takes from the backend's table. The cache key is (database, the key argument,
// the variant); a reply is kept if `keeps` says so.
struct read_policy {
    enum class form : std::uint8_t {
        value,  // GET: one entry serves both protocols (a missing key's null is written in each one's)
        reply,  // any other read: an entry per command, arguments and protocol (cache_plan's reply_variant)
        values, // MGET: every argument is a key, each read through GET's entries
    };
    std::uint8_t key_index;  // the argument that names the key
    form shape = form::value;
    bool key_last = false;   // the key specification runs to the last argument: cached when it names one
    std::uint16_t stat = 0;  // the command's statistics slot (stat_slot)
    // Whether `reply` may be cached when values up to `max_value` bytes are.
    bool (*keeps)(std::string_view reply, std::size_t max_value) = nullptr;
};

// A handler answers one command for a client. It runs on the client's thread, appends its reply (or
// arranges for one, through the context) exactly once, and never blocks.
using handler = void (*)(context& c, args_view args);

// One row of the command table.
struct row {
    std::string_view name;  // lower case
    int arity;              // exact argument count including the name, or -N for "at least N"
    std::uint32_t flags;
    handler fn;
    const read_policy* read = nullptr;  // set for commands served through the cache
};

// The commands respcache answers or routes itself. Everything else is forwarded to the backend as is.
// Lookup is case-insensitive and allocation-free.
class table {
public:
    explicit table(std::vector<row> rows);

    // The row for `name` (any case), or nullptr.
    const row* find(std::string_view name) const noexcept;

    // The table of this build, in src/command/table.cpp.
    static const table& local();

private:
    static constexpr std::size_t kLongestName = 16;
    std::vector<row> rows_;
    // Row indexes by name length, so that a lookup compares a handful of names at most.
    std::vector<std::size_t> by_length_[kLongestName + 1];
};

// Whether `argc` arguments (the name included) satisfy `arity`.
constexpr bool arity_ok(int arity, std::size_t argc) noexcept {
    return arity >= 0 ? argc == static_cast<std::size_t>(arity) : argc >= static_cast<std::size_t>(-arity);
}

// Redis's error texts (without the leading '-').
std::string wrong_arity_error(std::string_view fullname);
std::string unknown_command_error(args_view args);
std::string unknown_subcommand_error(std::string_view sub, std::string_view container);

}  // namespace respcache::command
