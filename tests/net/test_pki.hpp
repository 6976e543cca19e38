#pragma once

// Certificates for the TLS tests, made in-process with OpenSSL and written as PEM files to a fresh
// temporary directory (removed with the object): two CAs, a server certificate for 127.0.0.1 and client
// certificates, each signed by one of them.

#include <filesystem>
#include <string>

namespace respcache::testing {

class test_pki {
public:
    test_pki();
    ~test_pki();
    test_pki(const test_pki&) = delete;
    test_pki& operator=(const test_pki&) = delete;

    // <name>.crt and <name>.key: "ca", "other-ca", "server" (IP:127.0.0.1, by ca), "client" (by ca),
    // "other-client" (by other-ca).
    std::string crt(const std::string& name) const { return (dir_ / (name + ".crt")).string(); }
    std::string key(const std::string& name) const { return (dir_ / (name + ".key")).string(); }

private:
    std::filesystem::path dir_;
};

}  // namespace respcache::testing
