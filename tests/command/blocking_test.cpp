#include "respcache/command/blocking.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string_view>
#include <vector>

namespace {

using respcache::command::blocking_timeout;
using std::chrono::milliseconds;

std::optional<milliseconds> timeout_of(std::vector<std::string_view> args) {
    return blocking_timeout(args, milliseconds(500));
}

}  // namespace

TEST_CASE("blocking_timeout: seconds and milliseconds arguments, plus the slack", "[blocking]") {
    CHECK(timeout_of({"BLPOP", "k", "1.5"}) == milliseconds(2000));
    CHECK(timeout_of({"BLMPOP", "2", "1", "k", "LEFT"}) == milliseconds(2500));
    CHECK(timeout_of({"XREAD", "BLOCK", "100", "STREAMS", "s", "$"}) == milliseconds(600));
    CHECK(timeout_of({"WAIT", "1", "250"}) == milliseconds(750));
}

TEST_CASE("blocking_timeout: zero blocks for ever, a bad number leaves Redis to answer", "[blocking]") {
    CHECK_FALSE(timeout_of({"BLPOP", "k", "0"}).has_value());
    CHECK_FALSE(timeout_of({"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}).has_value());
    // Not a number: Redis answers at once with an error, so the slack alone bounds the wait.
    CHECK(timeout_of({"BLPOP", "k", "notanumber"}) == milliseconds(500));
}

TEST_CASE("blocking_timeout: a timeout too large for milliseconds sets no bound (fuzz reproducer)", "[blocking]") {
    // These once converted a double out of the int64 range (undefined behaviour, caught by UBSan).
    for (std::string_view t : {"inf", "+inf", "-inf", "nan", "1e300", "1e15", "-1e300"}) {
        INFO(t);
        CHECK_FALSE(timeout_of({"BLPOP", "k", t}).has_value());
        CHECK_FALSE(timeout_of({"BLMPOP", t, "1", "k", "LEFT"}).has_value());
    }
    CHECK(timeout_of({"BLPOP", "k", "1e14"}) == milliseconds(100'000'000'000'000'000LL + 500));
}
