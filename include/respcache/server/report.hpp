#pragma once

#include <string>

#include "respcache/server/services.hpp"

namespace respcache::server {

// The "# Proxy" section of INFO: the proxy's own figures, summed over io threads, as `name:value` lines
// ending in CRLF.
std::string proxy_info_section(services& s);

// The same figures (plus the request latency histograms) in the Prometheus text exposition format.
std::string prometheus_text(services& s);

}  // namespace respcache::server
