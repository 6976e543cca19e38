#include "respcache/net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace respcache::net {

namespace ssl = asio::ssl;

namespace {

// The reason OpenSSL gave for the last failure, for a log line.
std::string openssl_reason(const boost::system::error_code& ec) {
    std::string text = ec.message();
    if (const unsigned long e = ERR_peek_last_error(); e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        text = buf;
    }
    ERR_clear_error();
    return text;
}

std::shared_ptr<ssl::context> base_context(ssl::context::method method) {
    auto ctx = std::make_shared<ssl::context>(method);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    // Redis and most clients close without close_notify: that is the end of the stream, not an error.
    SSL_CTX_set_options(ctx->native_handle(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

// Loads `cert_file` (a chain) and `key_file` into `ctx`: "" or what is wrong.
std::string load_identity(ssl::context& ctx, const std::string& cert_file, const std::string& key_file) {
    boost::system::error_code ec;
    ctx.use_certificate_chain_file(cert_file, ec);
    if (ec)
        return "cannot load certificate '" + cert_file + "': " + openssl_reason(ec);
    ctx.use_private_key_file(key_file, ssl::context::pem, ec);
    if (ec)
        return "cannot load private key '" + key_file + "': " + openssl_reason(ec);
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
        ERR_clear_error();
        return "private key '" + key_file + "' does not match certificate '" + cert_file + "'";
    }
    return std::string();
}

std::string load_ca(ssl::context& ctx, const std::string& ca_file) {
    boost::system::error_code ec;
    ctx.load_verify_file(ca_file, ec);
    if (ec) return "cannot load CA certificates '" + ca_file + "': " + openssl_reason(ec);
    return std::string();
}

}  // namespace

std::shared_ptr<ssl::context> make_server_context(const server_tls_files& files, std::string& error) {
    auto ctx = base_context(ssl::context::tls_server);
    error = load_identity(*ctx, files.cert_file, files.key_file);
    if (error.empty() && !files.ca_file.empty()) error = load_ca(*ctx, files.ca_file);
    if (!error.empty()) return nullptr;
    switch (files.auth) {
        case client_auth::yes: ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert); break;
        case client_auth::optional: ctx->set_verify_mode(ssl::verify_peer); break;
        case client_auth::no: ctx->set_verify_mode(ssl::verify_none); break;
    }
    if (!files.ca_file.empty())
        SSL_CTX_set_client_CA_list(ctx->native_handle(), SSL_load_client_CA_file(files.ca_file.c_str()));
    return ctx;
}

std::shared_ptr<ssl::context> make_client_context(const client_tls_files& files, std::string& error) {
    auto ctx = base_context(ssl::context::tls_client);
    boost::system::error_code ec;
    if (files.ca_file.empty()) {
        ctx->set_default_verify_paths(ec);
        if (ec) error = "cannot load the system's CA certificates: " + openssl_reason(ec);
    } else {
        error = load_ca(*ctx, files.ca_file);
    }
    if (error.empty() && !files.cert_file.empty()) error = load_identity(*ctx, files.cert_file, files.key_file);
    if (!error.empty()) return nullptr;
    ctx->set_verify_mode(ssl::verify_peer);
    return ctx;
}

}  // namespace respcache::net
