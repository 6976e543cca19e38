#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/ssl/context.hpp>

namespace respcache::net {

namespace asio = boost::asio;

// Whether a TLS client must show a certificate, with redis.conf's `tls-auth-clients` meanings: yes, it
// must, and one the CA signed; optional, it may show none, but one it shows must be valid; no, none is
// asked for.
enum class client_auth { yes, optional, no };

// The files of the side that accepts TLS connections (respcache's --tls-* options).
struct server_tls_files {
    std::string cert_file;  // PEM: our certificate (the chain may follow it)
    std::string key_file;   // PEM: its private key
    std::string ca_file;    // PEM: the CAs that sign client certificates; may be empty with client_auth::no
    client_auth auth = client_auth::yes;
};

// The files of the side that dials TLS (the backend's --backend-tls-* options).
struct client_tls_files {
    std::string ca_file;    // PEM: the CAs that sign the server's certificate; empty: the system's CAs
    std::string cert_file;  // PEM: our certificate when the server asks for one; empty: none
    std::string key_file;   // its private key; given exactly when cert_file is
};

// An OpenSSL context made of those files (TLS 1.2 or later, a peer's EOF without close_notify read as
// the end of the stream): null with `error` set to a one-line reason if a file cannot be used.
std::shared_ptr<asio::ssl::context> make_server_context(const server_tls_files& files, std::string& error);
std::shared_ptr<asio::ssl::context> make_client_context(const client_tls_files& files, std::string& error);

// The context new connections are made with, replaced as a whole when certificates are reloaded:
// connections made before keep the context they were made with (each holds its shared_ptr). Safe from
// any thread.
class tls_context_slot {
public:
    explicit tls_context_slot(std::shared_ptr<asio::ssl::context> ctx) : ctx_(std::move(ctx)) {}

    std::shared_ptr<asio::ssl::context> get() const {
        std::lock_guard guard(mu_);
        return ctx_;
    }
    void set(std::shared_ptr<asio::ssl::context> ctx) {
        std::lock_guard guard(mu_);
        ctx_ = std::move(ctx);
    }

private:
    mutable std::mutex mu_;
    std::shared_ptr<asio::ssl::context> ctx_;  // GUARDED_BY(mu_), never null
};

}  // namespace respcache::net
