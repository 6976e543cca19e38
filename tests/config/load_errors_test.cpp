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

TEST_CASE("config: an option or a file line holding Boost's message placeholders is refused, not looped on",
          "[config]") {
    require_usage_error(load_config({"-%original_token%"}, {}), "'-?original_token?'");
    require_usage_error(load_config({"--x%canonical_option%"}, {}), "?canonical_option?");

    const std::filesystem::path file =
        std::filesystem::temp_directory_path() / ("respcache-load-errors-" + std::to_string(::getpid()) + ".conf");
    std::ofstream(file) << "%original_token% = 1\n";
    const config_outcome out = load_config({"--config", file.string()}, {});
    std::filesystem::remove(file);
    require_usage_error(out, "?original_token?");
}
