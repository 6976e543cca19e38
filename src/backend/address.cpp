#include "respcache/backend/address.hpp"

namespace respcache::backend {

std::string address::redacted() const {
    std::string out = tls ? "rediss://" : "redis://";
    if (!user.empty() || !password.empty()) {
        out += user;
        if (!password.empty()) out += ":***";
        out += '@';
    }
    if (host.find(':') != std::string::npos)
        out += '[' + host + ']';
    else
        out += host;
    out += ':' + std::to_string(port);
    if (db != 0) out += '/' + std::to_string(db);
    return out;
}

}  // namespace respcache::backend
