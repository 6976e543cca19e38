// The client core as its handlers see it: command::context.

#include "respcache/proxy/client_core.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::proxy {

resp::reply_builder& client_core::reply() {
    if (current_reply_ == nullptr) {
        current_reply_ = &queue_.local_target();
        builder_ = resp::reply_builder(current_reply_, state_.proto);
    }
    return builder_;
}

void client_core::forward(command::args_view args) {
    // In the tunnel, what a handler sends on goes on the tunnel's own link, in order.
    if (state_.mode == mode::tunnel) {
        const command::catalog* cat = env_.host.catalog();
        return tunnel_.send(args, cat != nullptr ? cat->find(args) : nullptr);
    }
    fwd_.forward(args);
}

void client_core::forward_info(bool with_proxy) {
    // A subscriber's INFO is asked on the shared link (the tunnel's link answers in stream mode).
    fwd_.forward_info(with_proxy, state_.mode == mode::tunnel);
}

void client_core::forward_rewritten(command::args_view args) {
    state_.rewritten.clear();
    resp::write_command(state_.rewritten, args);
    state_.raw = state_.rewritten;
    forward(args);
}

void client_core::read_through(command::args_view args) {
    const command::read_policy* policy = current_row_ != nullptr ? current_row_->read : nullptr;
    if (policy == nullptr) return fwd_.forward(args);
    const bool many = policy->shape == command::read_policy::form::values;
    const auto& plan = env_.host.cache_plan();
    if (!(many ? plan.caches_mget() : plan.caches_get())) return fwd_.forward(args);
    const auto served = many ? reader_.serve_many(args, *policy) : reader_.serve(args, *policy, nullptr);
    if (served == read_through::outcome::wait_barrier) barrier_wanted_ = true;
}

bool client_core::log_in_locally(std::string_view user, std::string_view password) {
    return auth_.log_in_locally(user, password);
}

void client_core::log_in_via_backend(command::args_view auth_args, const command::hello_request* hello) {
    auth_.log_in_via_backend(auth_args, hello);
}

void client_core::set_protocol(resp::protocol p) {
    state_.proto = p;
    state_.info->resp = static_cast<int>(p);
}

void client_core::set_reply_mode(command::reply_mode m) {
    queue_.set_mode(m);
    if (m == command::reply_mode::on) reply().ok();
}

void client_core::quit(bool answer) {
    if (state_.mode == mode::tunnel) return tunnel_.end(tunnel_end::quit);
    if (answer) reply().ok();
    state_.mode = mode::closing;
}

void client_core::reset() {
    if (state_.mode == mode::tunnel) return tunnel_.end(tunnel_end::reset);
    // Everything is idle here (RESET waits for what is in flight). A dedicated link is dropped: its
    // MULTI, WATCH or subscriptions end with it. RESET is answered even after CLIENT REPLY OFF.
    current_reply_ = nullptr;
    queue_.unsuppress();
    fwd_.release(false);
    txn_.forget();
    tracking_.forget();
    if (state_.mode != mode::closing) state_.mode = stop_requested_ ? mode::draining : mode::normal;
    state_.set_db(0);
    set_protocol(resp::protocol::resp2);
    auth_.reset();
    {
        std::lock_guard guard(state_.info->mu);
        state_.info->name.clear();
        state_.info->user = "default";
        state_.info->no_evict = false;
        state_.info->no_touch = false;
    }
    reply().simple("RESET");
}

}  // namespace respcache::proxy
