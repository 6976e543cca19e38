#include "respcache/server/tls_setup.hpp"

#include "respcache/net/tls_stream.hpp"

namespace respcache::server {

namespace {

using context_ptr = std::shared_ptr<boost::asio::ssl::context>;

// Both contexts as `cfg` asks for them (null where it asks for none): "" or what is wrong.
std::string build(const config& cfg, context_ptr& clients, context_ptr& backend) {
    std::string error;
    if (cfg.tls_port != 0) {
        clients = net::make_server_context(
            {cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_ca_cert_file, cfg.tls_auth_clients}, error);
        if (!clients) return "--tls-port: " + error;
    }
    if (cfg.backend.tls) {
        backend = net::make_client_context(
            {cfg.backend_tls_ca_cert_file, cfg.backend_tls_cert_file, cfg.backend_tls_key_file}, error);
        if (!backend) return "rediss:// backend: " + error;
    }
    return std::string();
}

}  // namespace

std::string make_tls_slots(const config& cfg, tls_slots& out) {
    context_ptr clients;
    context_ptr backend;
    if (std::string error = build(cfg, clients, backend); !error.empty()) return error;
    if (clients) out.clients = std::make_shared<net::tls_context_slot>(std::move(clients));
    if (backend) out.backend = std::make_shared<net::tls_context_slot>(std::move(backend));
    return std::string();
}

std::string reload_tls(const config& next, tls_slots& slots) {
    context_ptr clients;
    context_ptr backend;
    if (std::string error = build(next, clients, backend); !error.empty()) return error;
    if (slots.clients && clients) slots.clients->set(std::move(clients));
    if (slots.backend && backend) slots.backend->set(std::move(backend));
    return std::string();
}

void use_backend_tls(backend::connection_options& options, std::shared_ptr<const net::tls_context_slot> slot) {
    if (!slot) return;
    options.make_stream = [slot = std::move(slot)](boost::asio::any_io_executor ex) {
        return net::make_tls_stream(ex, slot);
    };
}

}  // namespace respcache::server
