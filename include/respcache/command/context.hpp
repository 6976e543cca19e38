#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "respcache/command/client_info.hpp"
#include "respcache/command/table.hpp"
#include "respcache/command/tracking.hpp"
#include "respcache/resp/reply_builder.hpp"

namespace respcache::command {

// What the proxy learned about the backend when it connected (refreshed on every reconnect).
struct backend_facts {
    std::string version;            // redis_version of INFO server; empty until known
    std::uint32_t databases = 16;   // CONFIG GET databases
    bool databases_known = false;   // CONFIG GET databases answered (it may be renamed or denied)
    bool tracking_supported = true; // Redis >= 6.0
    bool cluster = false;           // INFO server says redis_mode:cluster
};

// CLIENT REPLY's modes.
enum class reply_mode { on, off, skip };

// What a HELLO asks for, done once the client may have it.
struct hello_request {
    int version = 0;   // 2 or 3; 0: the client's protocol stays
    std::string name;  // SETNAME; empty: none
};

// The narrow view a handler has of the client it serves and of the proxy: the one way handlers act. The
// proxy core implements it; a handler never sees a socket or a backend connection. Every call is for
// the command being handled, on the client's thread.
class context {
public:
    virtual ~context() = default;

    // ---- The reply: each command gets exactly one, written here or arranged by a call below. ----
    virtual resp::reply_builder& reply() = 0;

    // ---- This client. ----
    virtual client_info& client() noexcept = 0;
    virtual std::uint32_t db() const noexcept = 0;
    virtual resp::protocol protocol() const noexcept = 0;
    virtual bool authenticated() const noexcept = 0;

    // ---- The proxy. ----
    virtual backend_facts facts() const = 0;
    // Whether Redis's last forwarded reply was -BUSY (see proxy::host::backend_busy).
    virtual bool backend_busy() const noexcept = 0;
    virtual client_registry& clients() noexcept = 0;
    // Whether clients must log in to the proxy itself (--requirepass).
    virtual bool password_required() const noexcept = 0;
    // INFO's "# Proxy" section: the proxy's own figures as name:value lines.
    virtual std::string proxy_info() const = 0;

    // ---- Running the command elsewhere. ----
    // Sends the command, as the client sent it, to Redis; its reply is relayed.
    virtual void forward(args_view args) = 0;
    // Sends `args` instead of what the client sent (CLIENT UNBLOCK names a backend connection).
    virtual void forward_rewritten(args_view args) = 0;
    // INFO: Redis's sections, with the proxy's appended when `with_proxy`.
    virtual void forward_info(bool with_proxy) = 0;
    // Serves the command through the cache, by its row's read policy (a hit, or a miss filled).
    virtual void read_through(args_view args) = 0;

    // ---- The client's state. ----
    // SELECT of a database known to exist; or, when the backend's count is unknown, judged by Redis.
    virtual void select(std::uint32_t db) = 0;
    virtual void select_via_backend(std::uint32_t db) = 0;
    // AUTH against --requirepass: true (and the client is in) if `user` is "default" and the password
    // matches.
    virtual bool log_in_locally(std::string_view user, std::string_view password) = 0;
    // AUTH (or HELLO AUTH, when `hello` is set) checked by Redis on a connection of its own. The reply is
    // Redis's; for HELLO, once Redis accepted, the protocol and name are applied and HELLO's map is sent.
    virtual void log_in_via_backend(args_view auth_args, const hello_request* hello) = 0;
    // HELLO 2 / HELLO 3: every later reply is in this protocol, locally made or Redis's.
    virtual void set_protocol(resp::protocol p) = 0;
    virtual void set_reply_mode(reply_mode mode) = 0;
    // QUIT (answered +OK when `answer`, else closed once what is queued is written).
    virtual void quit(bool answer) = 0;
    // RESET: every state back to a new connection's, answered +RESET.
    virtual void reset() = 0;
    virtual void multi() = 0;
    virtual void exec() = 0;
    virtual void discard() = 0;
    virtual void watch() = 0;
    virtual void unwatch() = 0;
    // (P|S)SUBSCRIBE, or MONITOR when `monitor`: the client becomes a tunnel to a connection of its own.
    virtual void subscribe(bool monitor) = 0;

    // ---- Client-side caching (CLIENT TRACKING). ----
    virtual const tracking_mode& tracking() const noexcept = 0;
    // Whether the proxy can track keys for its clients: yes with its invalidation channel; not with
    // --invalidation ttl; and a backend without client tracking answers CLIENT TRACKING itself.
    enum class tracking_support { yes, no_channel, not_in_backend };
    virtual tracking_support tracking_available() const noexcept = 0;
    // CLIENT TRACKING on with `m` (checked as Redis checks it), answered +OK; with BCAST (`added`: the
    // prefixes it adds, "" for every key), answered once Redis has the broadcast registration (its reply).
    virtual void track(tracking_mode m, std::vector<std::string> added) = 0;
    // CLIENT TRACKING off, answered +OK.
    virtual void stop_tracking() = 0;
    // CLIENT CACHING yes|no: for the next command.
    virtual void set_caching(bool yes) = 0;
};

}  // namespace respcache::command
