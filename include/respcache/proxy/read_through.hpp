#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/coherence/tracker.hpp"
#include "respcache/command/catalog.hpp"
#include "respcache/command/table.hpp"
#include "respcache/proxy/forwarder.hpp"

namespace respcache::proxy {

// Cached reads (GET's row, and every command of the cache plan): a hit is copied from the cache into
// the reply queue; a miss is fetched from Redis on the shared link, tracked (coherence invariant 3)
// and, if nothing invalidated its key meanwhile (invariant 2), inserted. The read gate decides, once per
// batch, whether hits may be served at all (invariant 5). One client's thread.
class read_through {
public:
    enum class outcome {
        served,        // answered from the cache, or sent to Redis
        wait_barrier,  // --consistency strict: ask again once a read barrier has passed
    };

    read_through(core_parts parts, forwarder& fwd);
    ~read_through();

    // `args` under `policy`; `info` is the backend's description (nullptr for GET's row).
    outcome serve(command::args_view args, const command::read_policy& policy, const command::command_info* info);
    // MGET through GET's entries: each key found is served from the cache, the others are fetched in one
    // MGET of just them, and the reply is put together in the order of the client's keys.
    outcome serve_many(command::args_view args, const command::read_policy& policy);

    // New bytes of the client were read: the cache must be caught up with again before a hit (a check
    // that begins after `mark`, tracker::catch_up_mark() now, will do).
    void new_batch(std::uint64_t mark) noexcept { gate_.new_batch(mark); }
    // Whether a hit of this batch would need a look at the channel's socket of its own now.
    bool needs_catch_up() const noexcept;
    // The read barrier asked for by wait_barrier was answered (ok) or failed.
    void barrier_done(bool ok) noexcept { gate_.barrier_done(ok); }

private:
    class fill_request;
    class many_request;
    class shared_wait;
    class refresh_request;
    class refresh_sink;

    // Whether the cache may be used for `k` now: nullopt to wait for a barrier, else whether hits may be served.
    std::optional<bool> may_hit(const cache::key& k, bool& cacheable);
    // Whether entries may be filled at all now (the cache is on and coherence allows it).
    bool may_fill_now() const noexcept;
    // A hit for `k` appended to the reply queue (a missing key's null in the client's protocol).
    bool lookup(const cache::key& k, const command::read_policy& policy);
    // A hit past --refresh-ahead of its entry's life: `command` sent again in the background, its reply
    // replacing the entry and going to no client.
    void refresh(const cache::key& k, const command::read_policy& policy, std::string_view command);
    void refresh_value(const cache::key& k);
    // Sends the fill `r`, whose token (and, for a client's miss, shared fill id) is set.
    void start_fill(fill_request& r, const cache::key& k, const command::read_policy& policy, std::string_view command,
                    bool for_client);
    // A miss of `k`: waits for another client's fill of it in flight if there is one still good and
    // `may_join` (the batch is caught up with the channel, as for a hit), or fills it (and others may
    // wait for this one).
    void join_or_fill(const cache::key& k, const command::read_policy& policy, bool may_join);
    // A shared fill of GET's entry for `name` that an MGET led, whose reply cannot tell its waiters what
    // a GET would have said (a null for a key that exists): a GET of the key's own takes it over.
    void hand_over(std::uint32_t db, std::string_view name, std::uint64_t hash, std::uint64_t flight);
    // The start of a tracked request on the shared link: its prelude in request_, its ticket and reply count
    // (`known_tracked`: the fill token says Redis tracks the key already; see tracker::prepare_fill).
    std::uint32_t begin_tracked(coherence::fill_ticket& ticket, coherence::link_tracking*& tracking,
                                bool known_tracked = false);
    std::size_t lookup_each(command::args_view args, bool hits_allowed, std::string& into);
    void add_missing(many_request& r, const cache::key& k, bool fills, bool may_join);
    void fetch_missing(many_request& r, const command::read_policy& policy);

    core_parts p_;
    forwarder& fwd_;
    coherence::read_gate gate_;
    bool stale_ = false;  // may_hit allowed a stale hit (--stale-if-error)
    std::unique_ptr<refresh_sink> refreshes_done_;
    slot_pool<fill_request> fills_;
    slot_pool<refresh_request> refreshes_;
    slot_pool<many_request> manys_;
    slot_pool<shared_wait> waits_;
    std::string request_;  // a miss's request, reused
    std::string variant_;  // the variant of the read being served
    std::vector<std::string_view> names_;  // an MGET's command, reused
    std::string found_;                    // an MGET's hits, reused
    std::string command_scratch_;          // a refresh's GET
    std::vector<std::int64_t> found_len_;
    std::vector<cache::key> keys_;         // an MGET's keys, reused
};

}  // namespace respcache::proxy
