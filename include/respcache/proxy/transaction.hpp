#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "respcache/command/effects.hpp"
#include "respcache/proxy/forwarder.hpp"

namespace respcache::proxy {

// MULTI ... EXEC/DISCARD and WATCH, on a pinned link. Inside MULTI nothing is served from or inserted
// into the cache; the queued writes invalidate when queued, when EXEC is sent and when it is answered.
// A command that would change the dedicated link's own state is refused while queueing, which makes
// EXEC abort, as Redis does for a command it cannot queue. One client's thread.
class transaction {
public:
    // `ctx` is the client's context, for the replies made here.
    transaction(command::context& ctx, core_parts parts, forwarder& fwd);
    ~transaction();

    void multi();
    void exec();
    void discard();
    void watch();
    void unwatch();
    // A command inside MULTI: queued on the pinned link (or refused).
    void queue(command::args_view args, const command::command_info* info);

    bool watching() const noexcept { return watching_; }
    // RESET, or the pinned link failed: the transaction and the watches are gone.
    void forget() noexcept;

private:
    class step;

    // A step queued in request order; `done` is what its reply does.
    step& new_step(void (transaction::*done)(step&));
    void send(step& s);
    void exec_done(step& s);
    void aborted_exec_done(step& s);
    void watch_done(step& s);
    void unwatch_done(step& s);
    command::context& ctx_;
    core_parts p_;
    forwarder& fwd_;
    slot_pool<step> steps_;
    bool aborted_ = false;   // a command was refused while queueing: EXEC will abort
    bool watching_ = false;  // WATCH answered OK, not yet ended by EXEC, DISCARD or UNWATCH
    std::uint32_t db_ = 0;   // the database queued commands will run in
    std::vector<std::optional<std::uint32_t>> selects_;  // per queued command: the db a SELECT picks
    command::owned_effect effect_;                        // what the queued commands will write
};

}  // namespace respcache::proxy
