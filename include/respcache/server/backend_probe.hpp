#pragma once

#include "respcache/config/config.hpp"

namespace respcache::server {

// Asks a plain redis:// backend, before anything starts, whether it is a Redis Cluster node (INFO
// cluster: cluster_enabled:1); if it is, `cfg.backend` becomes a redis+cluster:// backend with that node
// as its seed, and this is logged. A backend that does not answer within --connect-timeout plus
// --request-timeout (at most a second) is left as given (logged at debug level): it may be a Redis that
// is not up yet.
// rediss:// and redis+cluster:// backends are not probed.
void detect_cluster(config& cfg);

}  // namespace respcache::server
