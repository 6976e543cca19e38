// Inputs found by fuzz/fuzz_config that made load_config throw or never return; each must be a usage
// error with a one-line message, like any other bad input.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "respcache/config/config.hpp"

namespace {

using respcache::config_outcome;
using respcache::load_config;

void require_usage_error(const config_outcome& out, const std::string& mention) {
    INFO("message: " << out.message);
    REQUIRE(out.what == config_outcome::action::exit_usage_error);
    CHECK(out.message.find('\n') == std::string::npos);
    CHECK(out.message.find(mention) != std::string::npos);
}

}  // namespace

TEST_CASE("config: RESPCACHE_ with no name after it is an unknown variable", "[config]") {
    require_usage_error(load_config({}, {"RESPCACHE_=1"}), "unknown environment variable RESPCACHE_");
}
