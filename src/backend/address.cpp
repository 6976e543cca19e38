#include "respcache/backend/address.hpp"

namespace respcache::backend {

namespace {
void append_host_port(std::string& out, const std::string& host, std::uint16_t port) {
    if (host.find(':') != std::string::npos)
        out += '[' + host + ']';
    else
        out += host;
    out += ':' + std::to_string(port);
}
}  // namespace

std::string address::redacted() const {
    std::string out = cluster() ? "redis+cluster://" : tls ? "rediss://" : "redis://";
    if (!user.empty() || !password.empty()) {
        out += user;
        if (!password.empty()) out += ":***";
        out += '@';
    }
    if (cluster()) {
        for (std::size_t i = 0; i < cluster_seeds.size(); ++i) {
            if (i > 0) out += ',';
            append_host_port(out, cluster_seeds[i].first, cluster_seeds[i].second);
        }
        return out;
    }
    append_host_port(out, host, port);
    if (db != 0) out += '/' + std::to_string(db);
    return out;
}

}  // namespace respcache::backend
