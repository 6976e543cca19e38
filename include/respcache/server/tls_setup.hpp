#pragma once

#include <memory>
#include <string>

#include "respcache/backend/connection.hpp"
#include "respcache/config/config.hpp"
#include "respcache/net/tls_context.hpp"

namespace respcache::server {

// The TLS contexts of a configuration: one for clients of --tls-port, one for a rediss:// backend. Each
// slot is shared with whatever makes connections with it (the TLS listener, every backend connection),
// so that a reload reaches them all.
struct tls_slots {
    std::shared_ptr<net::tls_context_slot> clients;  // null without --tls-port
    std::shared_ptr<net::tls_context_slot> backend;  // null with a redis:// backend
};

// The contexts `cfg` asks for, made from its files: "" or a one-line reason (then `out` is unchanged).
std::string make_tls_slots(const config& cfg, tls_slots& out);

// SIGHUP: the contexts made again from `next`'s files, put into the existing slots (connections made from
// now on use them; those open keep theirs): "" or a one-line reason, and then no slot has changed.
std::string reload_tls(const config& next, tls_slots& slots);

// The backend connections' transport: TLS with `slot`, plain TCP when it is null.
void use_backend_tls(backend::connection_options& options, std::shared_ptr<const net::tls_context_slot> slot);

}  // namespace respcache::server
