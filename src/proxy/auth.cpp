#include "respcache/proxy/auth.hpp"

#include "respcache/command/handlers/handlers.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/log.hpp"

namespace respcache::proxy {

// An AUTH sent to Redis on a connection of its own.
class auth::attempt final : public pending {
public:
    attempt(slot_home& home, auth& owner) : pending(home, owner.p_.sink), owner_(owner) {}

    std::shared_ptr<backend::link> own;  // the connection it runs on
    bool hello = false;
    command::hello_request wish;  // HELLO's protocol and SETNAME
    std::string user;
    std::string password;  // for the connections of the user's pool, made at its first client

    void complete() override { owner_.attempt_done(*this); }

protected:
    void clear() override {
        pending::clear();
        own.reset();
        hello = false;
        wish = {};
        user.clear();
        password.clear();
    }

private:
    auth& owner_;
};

auth::auth(command::context& ctx, core_parts parts, forwarder& fwd, resp::request_parser& parser)
    : ctx_(ctx), p_(parts), fwd_(fwd), parser_(parser), attempts_(*this) {
    set_authenticated(!p_.env.settings.password_required.load());
}

auth::~auth() = default;

void auth::set_authenticated(bool in) {
    authenticated_ = in;
    parser_.set_unauthenticated(!in);
}

bool auth::log_in_locally(std::string_view user, std::string_view password) {
    if (user != "default" || !p_.env.host.password_matches(password)) {
        p_.env.stats.auth_failures.add();
        log::limited("auth-failure", spdlog::level::warn, "AUTH refused",
                     {{"client", p_.client.id()}, {"addr", p_.client.info->addr}});
        return false;
    }
    set_authenticated(true);
    use_user("default", {});  // --requirepass: the proxy's own user in Redis
    std::lock_guard guard(p_.client.info->mu);
    p_.client.info->user = std::string(user);
    return true;
}

void auth::use_user(std::string_view user, std::string_view password) {
    const user_links l = user == "default" && password.empty() ? user_links{} : p_.env.host.links_for(user, password);
    fwd_.use_links(l);
    p_.client.cache_partition = l.links == nullptr ? std::string() : command::user_partition(user);
}

void auth::log_in_via_backend(command::args_view auth_args, const command::hello_request* hello) {
    attempt& a = p_.queue.push_new(attempts_);
    a.hello = hello != nullptr;
    if (hello != nullptr) a.wish = *hello;
    a.user = auth_args.size() == 3 ? std::string(auth_args[1]) : std::string("default");
    a.password = std::string(auth_args.back());
    a.own = p_.env.links.acquire_dedicated(p_.client.proto);
    request_.clear();
    resp::write_command(request_, auth_args);
    fwd_.send_on(*a.own, a, request_, 1, p_.env.settings.request_timeout());
}

void auth::attempt_done(attempt& a) {
    // The connection now speaks as the client's user: never reuse it.
    if (a.own) p_.env.links.release_dedicated(std::move(a.own), false);
    if (!resp::is_ok(a.data)) return;
    use_user(a.user, a.password);
    {
        std::lock_guard guard(p_.client.info->mu);
        p_.client.info->user = a.user;
        if (a.hello && !a.wish.name.empty()) p_.client.info->name = a.wish.name;
    }
    if (!a.hello) return;
    if (a.wish.version != 0) ctx_.set_protocol(static_cast<resp::protocol>(a.wish.version));
    a.data.clear();
    resp::reply_builder out(&a.data, p_.client.proto);
    command::hello_reply(ctx_, out);
}

void auth::reset() {
    if (p_.env.settings.password_required.load()) set_authenticated(false);
    use_user("default", {});
}

}  // namespace respcache::proxy
