#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "respcache/command/catalog.hpp"
#include "respcache/command/table.hpp"
#include "respcache/resp/protocol.hpp"

namespace respcache::command {

// What --cache-commands asks for: the default set (derived from the backend's command table), and
// names added to it or taken from it. "default" is the default set; "get,hget" exactly those two;
// "default,-hgetall,+object|encoding" the default set without HGETALL and with OBJECT ENCODING. A name
// is a command ("hget") or a subcommand ("xinfo|stream"), in any case.
struct cache_commands {
    bool defaults = true;
    std::vector<std::string> added;    // lower case
    std::vector<std::string> removed;  // lower case

    // Parses the option's value; nullopt and `error` (the reason) when it is not a list of names.
    static std::optional<cache_commands> parse(std::string_view text, std::string& error);
    std::string to_string() const;
    bool operator==(const cache_commands&) const = default;
};

// Whether the backend's description makes a command cacheable by default: read-only, not blocking, not
// pub/sub, not a script, one key found by its one key specification (read access only), output
// deterministic (no nondeterministic_output tip; the order tip is fine: one key's unchanged value is
// always read in the same order). Commands Redis documents as reading anything but their key, or whose
// reply changes with no write of it, are left out by name: MEMORY USAGE, the OBJECT and XINFO families,
// TOUCH, LOLWUT, SORT_RO.
bool cacheable_by_default(const command_info& info);
// What --cache-commands may add beyond that: any read-only, non-blocking read of one key; never a write.
bool cacheable_if_asked(const command_info& info);

// The reads served through the cache, for one backend command table and one --cache-commands. Built
// when either changes; immutable, shared by every thread. It keeps its table alive.
class cache_plan {
public:
    // `cat` may be nullptr (the backend's table is not known yet): then only GET and MGET can be cached.
    static std::shared_ptr<const cache_plan> build(std::shared_ptr<const catalog> cat, const cache_commands& spec);

    const catalog* table() const noexcept { return catalog_.get(); }
    // The policy of a command the backend describes as `info` (nullptr: not cached).
    const read_policy* find(const command_info* info) const noexcept;
    // GET and MGET, served by rows of respcache's own table through GET's entries.
    bool caches_get() const noexcept { return get_; }
    bool caches_mget() const noexcept { return mget_; }
    // The commands cached, sorted (INFO shows them).
    const std::vector<std::string>& names() const noexcept { return names_; }
    // What --cache-commands added that cannot be cached: unknown to the backend, or without one key.
    const std::vector<std::string>& refused() const noexcept { return refused_; }

private:
    std::shared_ptr<const catalog> catalog_;
    std::unordered_map<const command_info*, read_policy> policies_;
    std::vector<std::string> names_;
    std::vector<std::string> refused_;
    bool get_ = false;
    bool mget_ = false;
};

// The variant of a cached reply (cache::key::variant) of any read but GET: the protocol, the command's
// name as the backend calls it, and every argument after the name but the key, each length-prefixed.
void reply_variant(resp::protocol proto, std::string_view name, args_view args, std::size_t key_index,
                   std::string& out);

// What the variants of the entries read by clients logged in to Redis as `user` (other than the proxy's
// own) begin with: 'U', the name's length, the name. A reply variant begins with the protocol (2 or 3), so
// no entry of one user is ever another's; read_of_entry rebuilds none of them (a warm start skips them).
std::string user_partition(std::string_view user);

// The read that fills the entry of key `name` with `variant` (as reply_variant made it; empty: GET's
// entry), rebuilt under `plan`: its arguments and its client's protocol. nullopt if the variant is not
// well formed or names a command `plan` does not cache.
struct entry_read {
    resp::protocol proto = resp::protocol::resp2;
    std::vector<std::string> args;
};
std::optional<entry_read> read_of_entry(const cache_plan& plan, std::string_view name, std::string_view variant);

// The slot of a cached command in the per-command statistics (thread_stats::cached_commands):
// process-wide, stable, append-only; slot 0 gathers what does not fit. GET is slot 1, MGET slot 2.
std::size_t stat_slot(std::string_view name);
// The name of slot `i` ("" while unused, "other" for slot 0).
std::string stat_name(std::size_t i);

}  // namespace respcache::command
