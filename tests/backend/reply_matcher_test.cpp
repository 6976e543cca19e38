// backend::reply_matcher on its own: the requests' timeouts (each overdue request fails alone, its late
// reply is dropped, the others keep theirs) and when a pipeline counts as silent. Time is passed in.

#include "respcache/backend/reply_matcher.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace respcache;
using namespace std::chrono_literals;

namespace {

struct recorder final : backend::request {
    std::vector<std::string> replies;
    std::vector<std::string> errors;
    void on_reply(std::size_t, std::string_view bytes) override { replies.emplace_back(bytes); }
    void on_error(std::string_view reason) override { errors.emplace_back(reason); }
};

void feed(backend::reply_matcher& m, std::string_view bytes) {
    io_buffer in(64);
    in.append(bytes);
    const bool stop = false;
    REQUIRE(m.feed(in, stop).empty());
}

}  // namespace

TEST_CASE("reply_matcher: an overdue request fails alone and its late reply is dropped", "[backend][matcher]") {
    backend::reply_matcher m(resp::limits{});
    const auto t0 = backend::reply_matcher::clock::now();
    recorder slow, queued, later;
    m.expect(&slow, 1, 100ms, t0);
    m.expect(&queued, 1, 100ms, t0 + 50ms);
    CHECK(m.expire(t0 + 100ms) == 0);
    CHECK(m.expire(t0 + 101ms) == 1);
    CHECK(slow.errors == std::vector<std::string>{"backend unavailable: no reply within 100ms"});
    CHECK(queued.errors.empty());
    CHECK(m.expire(t0 + 120ms) == 0);  // failed once only
    m.expect(&later, 1, 100ms, t0 + 120ms);
    // The slow command's reply comes and moves the clock of those behind it.
    feed(m, "+slow\r\n");
    m.progressed(t0 + 140ms);
    CHECK(slow.replies.empty());
    CHECK(m.expire(t0 + 200ms) == 0);
    feed(m, "$1\r\na\r\n$1\r\nb\r\n");
    CHECK(queued.replies == std::vector<std::string>{"$1\r\na\r\n"});
    CHECK(later.replies == std::vector<std::string>{"$1\r\nb\r\n"});
    CHECK(m.waiting() == 0);
}

TEST_CASE("reply_matcher: the whole overdue prefix fails, in order, and fail_all skips what expired",
          "[backend][matcher]") {
    backend::reply_matcher m(resp::limits{});
    const auto t0 = backend::reply_matcher::clock::now();
    recorder a, b, c;
    m.expect(&a, 2, 10ms, t0);
    m.expect(&b, 1, 10ms, t0);
    m.expect(&c, 1, 500ms, t0);
    feed(m, "+first\r\n");
    m.progressed(t0);
    CHECK(m.expire(t0 + 20ms) == 2);
    CHECK(a.replies == std::vector<std::string>{"+first\r\n"});  // a prefix, then the error
    CHECK(a.errors.size() == 1);
    CHECK(b.errors.size() == 1);
    m.fail_all("backend unavailable: gone");
    CHECK(a.errors.size() == 1);
    CHECK(b.errors.size() == 1);
    CHECK(c.errors == std::vector<std::string>{"backend unavailable: gone"});
}

TEST_CASE("reply_matcher: silent only when nothing arrived for the factor times the timeout",
          "[backend][matcher]") {
    backend::reply_matcher m(resp::limits{});
    const auto t0 = backend::reply_matcher::clock::now();
    CHECK_FALSE(m.silent(t0 + 1h, 2));
    recorder a, blocking;
    m.expect(&a, 1, 100ms, t0);
    CHECK_FALSE(m.silent(t0 + 200ms, 2));
    CHECK(m.silent(t0 + 201ms, 2) == 100ms);
    m.progressed(t0 + 150ms);
    CHECK_FALSE(m.silent(t0 + 300ms, 2));
    feed(m, "+OK\r\n");
    m.expect(&blocking, 1, backend::reply_matcher::milliseconds::max(), t0 + 300ms);
    CHECK_FALSE(m.silent(t0 + 24h, 2));
    CHECK(m.expire(t0 + 24h) == 0);
}
