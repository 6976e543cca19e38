// The invalidation listener as a state machine, over a memory stream: it always comes back once Redis
// answers again, whatever Redis refused meanwhile (a busy script answers -BUSY to the log-in's CLIENT ID
// and to SUBSCRIBE), and what it does to the cache when live and when lost. Retries use a zero delay, so
// io_context::poll() steps everything and nothing waits on a clock.

#include "respcache/coherence/invalidation_listener.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include "fakes/manual_clock.hpp"
#include "fakes/memory_stream.hpp"
#include "fakes/scripted_backend.hpp"
#include "respcache/resp/writer.hpp"

using namespace respcache;
using phase = coherence::invalidation_listener::phase;

namespace {

std::string cmd(std::initializer_list<std::string_view> args) {
    std::string out;
    resp::write_command(out, args);
    return out;
}

const std::string kBusy = "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
const std::string kLogIn = cmd({"CLIENT", "SETNAME", "respcache-invalidation"}) + cmd({"CLIENT", "ID"});
const std::string kSubscribe = cmd({"SUBSCRIBE", "__redis__:invalidate"});
const std::string kConfirmed = "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n";

struct fixture {
    boost::asio::io_context io;
    fakes::manual_clock clock;
    cache::lru_cache cache{{1024, 0, 300'000}, 1, clock};
    coherence::tracker tracker;
    fakes::memory_stream* stream = nullptr;
    std::unique_ptr<coherence::invalidation_listener> listener;

    explicit fixture(coherence::tracking_mode mode = coherence::tracking_mode::optin)
        : tracker(cache, coherence::invalidation_mode::tracking, coherence::consistency_mode::bounded, mode) {
        backend::connection_options o;
        o.make_stream = [this](boost::asio::any_io_executor ex) {
            auto s = std::make_unique<fakes::memory_stream>(ex);
            stream = s.get();
            return s;
        };
        coherence::invalidation_listener::timing t;
        t.ping_interval = std::chrono::hours(1);
        t.first_retry = t.max_retry = std::chrono::milliseconds(0);
        listener = std::make_unique<coherence::invalidation_listener>(io.get_executor(), o, tracker, t);
        listener->start();
        io.poll();
    }
    ~fixture() {
        listener->close();
        io.poll();
    }
    void push(std::string_view bytes) {
        stream->push(bytes);
        io.poll();
    }
    void fill(std::string_view name) {
        const cache::key k = cache::make_key(0, name);
        cache.fill(k, cache.begin_fill(k), "$1\r\nv\r\n", 1000);
    }
    bool cached(std::string_view name) const { return cache.contains(cache::make_key(0, name), 1000); }
    // Redis answers the log-in and the SUBSCRIBE: the channel is live.
    void go_live() {
        stream->take_written();
        push("+OK\r\n:42\r\n" + kConfirmed);
    }
};

}  // namespace

TEST_CASE("listener: subscribes after logging in and goes live with its connection's id", "[coherence][listener]") {
    fixture f;
    const auto epoch = f.tracker.state().epoch.load();
    CHECK(f.stream->take_written() == kLogIn);
    f.push("+OK\r\n:42\r\n");
    CHECK(f.listener->current() == phase::subscribing);
    CHECK(f.stream->take_written() == kSubscribe);
    CHECK_FALSE(f.tracker.live());
    f.push(kConfirmed);
    CHECK(f.listener->current() == phase::live);
    CHECK(f.tracker.live());
    CHECK(f.tracker.state().redirect_id.load() == 42);
    CHECK(f.tracker.state().epoch.load() > epoch);
}

TEST_CASE("listener: comes back after a busy Redis refused its log-in and its SUBSCRIBE", "[coherence][listener]") {
    fixture f;
    // Busy: the log-in's CLIENT ID is refused, so there is no id to redirect to: start again.
    CHECK(f.stream->take_written() == kLogIn);
    f.push(kBusy + kBusy);
    CHECK_FALSE(f.tracker.live());
    CHECK(f.stream->connects == 2);
    CHECK(f.stream->take_written() == kLogIn);
    // Still busy for SUBSCRIBE.
    f.push("+OK\r\n:43\r\n");
    CHECK(f.stream->take_written() == kSubscribe);
    f.push(kBusy);
    CHECK_FALSE(f.tracker.live());
    CHECK(f.stream->connects == 3);
    // The script is over: everything is answered, and the channel is live.
    CHECK(f.stream->take_written() == kLogIn);
    f.push("+OK\r\n:44\r\n");
    CHECK(f.stream->take_written() == kSubscribe);
    f.push(kConfirmed);
    CHECK(f.listener->current() == phase::live);
    CHECK(f.tracker.live());
    CHECK(f.tracker.state().redirect_id.load() == 44);
}

TEST_CASE("listener: invalidation messages remove their keys; a nil one flushes", "[coherence][listener]") {
    fixture f;
    f.go_live();
    REQUIRE(f.tracker.live());
    f.fill("a");
    f.fill("b");
    f.fill("c");
    f.push("*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    CHECK_FALSE(f.cached("a"));
    CHECK_FALSE(f.cached("b"));
    CHECK(f.cached("c"));
    f.push("*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*-1\r\n");
    CHECK_FALSE(f.cached("c"));
    CHECK(f.tracker.state().invalidations.load() == 2);
}

TEST_CASE("listener: a lost channel flushes the cache before anything else, then reconnects", "[coherence][listener]") {
    fixture f;
    f.go_live();
    REQUIRE(f.tracker.live());
    const auto epoch = f.tracker.state().epoch.load();
    f.fill("a");
    f.stream->end();
    f.io.poll();
    CHECK_FALSE(f.tracker.live());
    CHECK_FALSE(f.cached("a"));
    CHECK(f.tracker.state().epoch.load() > epoch);
    CHECK(f.tracker.state().losses.load() == 1);
    CHECK(f.tracker.state().channel.load() == nullptr);
    CHECK(f.stream->connects == 2);
    CHECK(f.listener->current() == phase::connecting);
}

TEST_CASE("listener, bcast: tracks for its own connection before SUBSCRIBE, so fills need no prelude",
          "[coherence][listener][bcast]") {
    fixture f(coherence::tracking_mode::bcast);
    CHECK(f.stream->take_written() == kLogIn);
    f.push("+OK\r\n:42\r\n");
    CHECK(f.stream->take_written() == cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "42", "BCAST"}));
    f.push("+OK\r\n");
    CHECK(f.stream->take_written() == kSubscribe);
    CHECK_FALSE(f.tracker.live());
    f.push(kConfirmed);
    REQUIRE(f.tracker.live());

    fakes::scripted_link link(7);
    coherence::link_tracking lt;
    std::string request;
    std::uint32_t replies = 0;
    const coherence::fill_ticket t = f.tracker.prepare_fill(lt, link, request, replies);
    CHECK(request.empty());
    CHECK(replies == 0);
    CHECK(f.tracker.may_fill(t, lt, link));
    // Redis tracked nothing on the data link: losing it loses no invalidation, so nothing is flushed.
    f.fill("a");
    f.tracker.link_closing(lt, link);
    CHECK(f.cached("a"));
    CHECK(f.tracker.state().losses.load() == 0);
    // Losing the channel does: and a read sent before that may not fill.
    f.stream->end();
    f.io.poll();
    CHECK_FALSE(f.cached("a"));
    CHECK_FALSE(f.tracker.may_fill(t, lt, link));
}

TEST_CASE("listener, bcast: a refused CLIENT TRACKING is tried again on a new connection", "[coherence][listener][bcast]") {
    fixture f(coherence::tracking_mode::bcast);
    const std::string tracking_on = cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "42", "BCAST"});
    CHECK(f.stream->take_written() == kLogIn);
    f.push("+OK\r\n:42\r\n");
    CHECK(f.stream->take_written() == tracking_on);
    f.push(kBusy);  // no SUBSCRIBE follows a refusal: the attempt starts again, on a new connection
    CHECK_FALSE(f.tracker.live());
    CHECK(f.stream->connects == 2);
    CHECK(f.stream->take_written() == kLogIn);
    f.push("+OK\r\n:42\r\n");
    CHECK(f.stream->take_written() == tracking_on);
    f.push("+OK\r\n");
    CHECK(f.stream->take_written() == kSubscribe);
    f.push(kConfirmed);
    CHECK(f.listener->current() == phase::live);
    CHECK(f.tracker.live());
}

TEST_CASE("catch-up: a check begun after a batch's bytes were read covers it; no earlier one does",
          "[coherence][listener]") {
    fixture f;
    f.go_live();
    REQUIRE(f.tracker.live());
    f.fill("a");
    f.fill("b");
    const std::string invalidate_a = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\na\r\n";
    const std::string invalidate_b = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nb\r\n";

    // Batch 1 is read, then a check begins (and finds nothing waiting): it covers batch 1.
    const std::uint64_t batch1 = f.tracker.catch_up_mark();
    CHECK_FALSE(f.tracker.covered(batch1));
    CHECK(f.tracker.catch_up(batch1));
    CHECK(f.tracker.covered(batch1));

    // An invalidation reaches the socket after that check began: it came after batch 1's bytes, so batch 1
    // needs no look at the socket (the listener has not read it: the io_context is not run).
    f.stream->push(invalidate_a);
    CHECK(f.tracker.catch_up(batch1));
    CHECK(f.cached("a"));

    // Batch 2 is read after it: no check has begun since, so its own looks at the socket and applies it.
    const std::uint64_t batch2 = f.tracker.catch_up_mark();
    CHECK_FALSE(f.tracker.covered(batch2));
    CHECK(f.tracker.catch_up(batch2));
    CHECK_FALSE(f.cached("a"));
    CHECK(f.cached("b"));
    CHECK(f.tracker.covered(batch2));

    // A batch read before an invalidation arrived, with no check since: its check applies it too.
    const std::uint64_t batch3 = f.tracker.catch_up_mark();
    f.stream->push(invalidate_b);
    CHECK(f.tracker.catch_up(batch3));
    CHECK_FALSE(f.cached("b"));

    // Covered or not, a lost channel is never caught up with.
    f.stream->end();
    f.io.poll();
    REQUIRE_FALSE(f.tracker.live());
    CHECK(f.tracker.covered(batch1));
    CHECK_FALSE(f.tracker.catch_up(batch1));
}
