#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "respcache/proxy/forwarder.hpp"
#include "respcache/resp/parser.hpp"

namespace respcache::proxy {

// Whether a client is logged in, and AUTH / HELLO AUTH: against --requirepass, checked here in constant
// time; otherwise checked by Redis on a connection of its own (which then speaks as the client's user
// and is never reused). Before it is in, the client's requests are held to Redis's limits for
// unauthenticated clients. One client's thread.
class auth {
public:
    auth(command::context& ctx, core_parts parts, forwarder& fwd, resp::request_parser& parser);
    ~auth();

    bool authenticated() const noexcept { return authenticated_; }
    // AUTH against --requirepass: true (and the client is in) if `user` is "default" and the password matches.
    bool log_in_locally(std::string_view user, std::string_view password);
    // AUTH, or HELLO AUTH (answered with HELLO's map once Redis accepts), checked by Redis.
    void log_in_via_backend(command::args_view auth_args, const command::hello_request* hello);
    // RESET: out again when a password is required.
    void reset();

private:
    class attempt;
    void set_authenticated(bool in);
    void attempt_done(attempt& a);
    // The client's commands run as `user` from now on (the proxy's own user for "default" with no
    // password), and its reads are cached apart from other users'.
    void use_user(std::string_view user, std::string_view password);

    command::context& ctx_;
    core_parts p_;
    forwarder& fwd_;
    resp::request_parser& parser_;
    slot_pool<attempt> attempts_;
    std::string request_;
    bool authenticated_ = true;
};

}  // namespace respcache::proxy
