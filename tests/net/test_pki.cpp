#include "net/test_pki.hpp"

#include <cstdio>
#include <memory>
#include <random>
#include <stdexcept>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace respcache::testing {

namespace {

struct issued {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, EVP_PKEY_free};
    std::unique_ptr<X509, decltype(&X509_free)> cert{nullptr, X509_free};
};

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) throw std::runtime_error("bad certificate extension");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

// A certificate for `cn`, signed by `by` (self-signed when null); a CA when `san` is null.
issued issue(const char* cn, const issued* by, const char* san, long serial) {
    issued out;
    out.key.reset(EVP_EC_gen("P-256"));
    out.cert.reset(X509_new());
    X509* x = out.cert.get();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, out.key.get());
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509* issuer = by != nullptr ? by->cert.get() : x;
    X509_set_issuer_name(x, X509_get_subject_name(issuer));
    if (san == nullptr) {
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else if (*san != '\0') {
        add_ext(x, issuer, NID_subject_alt_name, san);
    }
    X509_sign(x, by != nullptr ? by->key.get() : out.key.get(), EVP_sha256());
    return out;
}

void write_pem(const std::filesystem::path& dir, const std::string& name, const issued& i) {
    FILE* c = std::fopen((dir / (name + ".crt")).c_str(), "w");
    FILE* k = std::fopen((dir / (name + ".key")).c_str(), "w");
    if (c == nullptr || k == nullptr) throw std::runtime_error("cannot write test certificates");
    PEM_write_X509(c, i.cert.get());
    PEM_write_PrivateKey(k, i.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(c);
    std::fclose(k);
}

}  // namespace

test_pki::test_pki() {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("respcache-pki-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    const issued ca = issue("test CA", nullptr, nullptr, 1);
    const issued other_ca = issue("other CA", nullptr, nullptr, 2);
    write_pem(dir_, "ca", ca);
    write_pem(dir_, "other-ca", other_ca);
    write_pem(dir_, "server", issue("server", &ca, "IP:127.0.0.1", 3));
    write_pem(dir_, "client", issue("client", &ca, "", 4));
    write_pem(dir_, "other-client", issue("other client", &other_ca, "", 5));
}

test_pki::~test_pki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

}  // namespace respcache::testing
