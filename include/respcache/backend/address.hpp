#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace respcache::backend {

// Where the backing Redis is and how to log in to it: `redis://[user:password@]host:port[/db]`, or
// `rediss://...` for TLS; a Redis Cluster is `redis+cluster://[user:password@]host:port[,host:port...]`
// (seed nodes; host and port are the first).
struct address {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    std::string user;      // empty: the password alone is sent (AUTH password)
    std::string password;  // empty: no AUTH
    std::uint32_t db = 0;
    bool tls = false;  // rediss://
    // redis+cluster://: every seed, in the order given (empty: one Redis, not a cluster).
    std::vector<std::pair<std::string, std::uint16_t>> cluster_seeds;
    bool cluster() const noexcept { return !cluster_seeds.empty(); }

    // The address with the password replaced by "***", for logs.
    std::string redacted() const;
};

}  // namespace respcache::backend
