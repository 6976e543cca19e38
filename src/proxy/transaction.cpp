#include "respcache/proxy/transaction.hpp"

#include <algorithm>

#include "respcache/resp/reply_builder.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/ascii.hpp"

namespace respcache::proxy {

using util::iequals;

// MULTI, EXEC, DISCARD, WATCH or UNWATCH sent on the pinned link; `done` is what its reply does.
class transaction::step final : public pending {
public:
    step(slot_home& home, transaction& owner) : pending(home, owner.p_.sink), owner_(owner) {}

    void (transaction::*done)(step&) = nullptr;
    command::owned_effect effect;                        // EXEC: what the queued commands wrote
    std::vector<std::optional<std::uint32_t>> selects;  // EXEC: per queued command, the db a SELECT picks

    void complete() override {
        if (done != nullptr) (owner_.*done)(*this);
        if (errored) owner_.forget();  // the dedicated link failed: the transaction and the watches died with it
    }

protected:
    void clear() override {
        pending::clear();
        done = nullptr;
        effect.clear();
        selects.clear();
    }

private:
    transaction& owner_;
};

namespace {
// Commands that change the state of the connection they run on (protocol, identity, subscriptions,
// reply mode, tracking...). Queued in a transaction they would run on the dedicated connection at EXEC,
// where the client's own state does not follow them and the next user of the pooled connection would
// inherit them: refused instead, which aborts the transaction as Redis does for a command that cannot be
// queued.
bool changes_connection_state(std::string_view name) {
    static constexpr std::string_view names[] = {"hello",       "auth",         "client",       "subscribe",
                                                 "psubscribe",  "ssubscribe",   "unsubscribe",  "punsubscribe",
                                                 "sunsubscribe", "monitor",     "sync",         "psync",
                                                 "replconf"};
    return std::any_of(std::begin(names), std::end(names), [&](std::string_view n) { return iequals(name, n); });
}
}  // namespace

transaction::transaction(command::context& ctx, core_parts parts, forwarder& fwd)
    : ctx_(ctx), p_(parts), fwd_(fwd), steps_(*this) {}

transaction::~transaction() = default;

transaction::step& transaction::new_step(void (transaction::*done)(step&)) {
    step& s = p_.queue.push_new(steps_);
    s.done = done;
    return s;
}

void transaction::send(step& s) { fwd_.send(s, p_.client.raw, 1, p_.env.settings.request_timeout()); }

void transaction::multi() {
    if (p_.client.mode == mode::transaction) return ctx_.reply().error("ERR MULTI calls can not be nested");
    fwd_.pin();
    p_.client.mode = mode::transaction;
    aborted_ = false;
    db_ = p_.client.db;
    selects_.clear();
    effect_.clear();
    p_.client.info->multi = 0;
    send(new_step(nullptr));
}

void transaction::queue(command::args_view args, const command::command_info* info) {
    if (changes_connection_state(args[0])) {
        aborted_ = true;
        return ctx_.reply().error("ERR Command not allowed inside a transaction");
    }
    const command::cache_effect& e = fwd_.effect_of(args, info, db_);
    if (!e.empty()) {
        effect_.add(e);
        // Invalidated when queued, when EXEC is sent and when it is answered.
        command::owned_effect now;
        now.add(e);
        now.apply(p_.env.cache);
    }
    std::optional<std::uint32_t> selected;
    std::int64_t n = 0;
    if (iequals(args[0], "select") && args.size() == 2 && util::parse_int64(args[1], n) && n >= 0 &&
        n < static_cast<std::int64_t>(p_.env.host.facts().databases)) {
        selected = static_cast<std::uint32_t>(n);
        db_ = *selected;
    }
    selects_.push_back(selected);
    p_.client.info->multi = static_cast<int>(selects_.size());
    fwd_.forward_queued();
}

void transaction::exec() {
    if (p_.client.mode != mode::transaction) return ctx_.reply().error("ERR EXEC without MULTI");
    if (aborted_) {
        // A command was refused while queueing: the transaction is discarded, as Redis does.
        forget();
        p_.client.rewritten.clear();
        resp::write_command(p_.client.rewritten, {"DISCARD"});
        p_.client.raw = p_.client.rewritten;
        return send(new_step(&transaction::aborted_exec_done));
    }
    step& s = new_step(&transaction::exec_done);
    if (!effect_.empty()) {
        s.effect.add(effect_);
        fwd_.write_sent(s.effect);
        fwd_.mark_own_write(s, s.effect);
    }
    s.selects = std::move(selects_);
    forget();
    send(s);
}

void transaction::discard() {
    if (p_.client.mode != mode::transaction) return ctx_.reply().error("ERR DISCARD without MULTI");
    forget();
    send(new_step(nullptr));
}

void transaction::watch() {
    if (p_.client.mode == mode::transaction) return ctx_.reply().error("ERR WATCH inside MULTI is not allowed");
    fwd_.pin();
    send(new_step(&transaction::watch_done));
}

void transaction::unwatch() {
    if (!fwd_.pinned()) return ctx_.reply().ok();
    send(new_step(&transaction::unwatch_done));
}

void transaction::forget() noexcept {
    if (p_.client.mode == mode::transaction) p_.client.mode = mode::normal;
    aborted_ = false;
    watching_ = false;  // EXEC and DISCARD both unwatch
    selects_.clear();
    effect_.clear();
    p_.client.info->multi = -1;
}

void transaction::exec_done(step& s) {
    if (!s.effect.empty()) fwd_.write_answered(s.effect);
    if (std::none_of(s.selects.begin(), s.selects.end(), [](auto& v) { return v.has_value(); })) return;
    // A SELECT inside the transaction changed the database of the connection, and the client's.
    auto items = resp::array_elements(s.data);
    if (!items || items->size() != s.selects.size()) return;
    for (std::size_t i = 0; i < items->size(); ++i)
        if (s.selects[i] && resp::is_ok((*items)[i])) p_.client.set_db(*s.selects[i]);
    if (fwd_.pinned()) fwd_.pinned_link().assume_selected(p_.client.db);
}

void transaction::aborted_exec_done(step& s) {
    if (s.errored) return;
    s.data.clear();
    resp::reply_builder(&s.data).error("EXECABORT Transaction discarded because of previous errors.");
}

void transaction::watch_done(step& s) {
    if (resp::is_ok(s.data)) watching_ = true;
}

void transaction::unwatch_done(step& s) {
    if (resp::is_ok(s.data)) watching_ = false;
}

}  // namespace respcache::proxy
