// The client core stepped by hand: bytes in, advance(), Redis's replies scripted on the links, bytes out.

#include "respcache/proxy/client_core.hpp"

#include <catch2/catch.hpp>

#include <string>

#include "proxy/core_fixture.hpp"
#include "respcache/command/cache_plan.hpp"

using namespace respcache;
using respcache::tests::cmd;
using respcache::tests::core_fixture;
using respcache::tests::next;
using proxy::mode;

TEST_CASE("core: replies leave in request order, hits, misses and local replies mixed, whole or split at every byte",
          "[proxy][core]") {
    const std::string pipeline = cmd({"GET", "a"}) + cmd({"GET", "b"}) + cmd({"PING"}) + cmd({"GET", "a"}) +
                                 cmd({"ECHO", "x"}) + cmd({"SET", "c", "1"});
    for (const bool bytewise : {false, true}) {
        CAPTURE(bytewise);
        core_fixture f;
        f.cache_value("a", "va");
        CHECK((bytewise ? f.send_bytewise(pipeline) : f.send(pipeline)) == next::wait);
        // The first hit leaves at once; everything behind the miss waits for it.
        CHECK(f.out() == "$2\r\nva\r\n");
        CHECK(f.links.shared_link.take_sent() ==
              cmd({"GET", "b"}) + cmd({"PTTL", "b"}) + cmd({"SET", "c", "1"}));
        CHECK(f.answer(f.links.shared_link, "$2\r\nvb\r\n:-1\r\n") == next::wait);
        CHECK(f.out() == "$2\r\nvb\r\n+PONG\r\n$2\r\nva\r\n$1\r\nx\r\n");
        CHECK(f.answer(f.links.shared_link, "+OK\r\n") == next::read);
        CHECK(f.out() == "+OK\r\n");
        CHECK(f.cached("b"));  // the miss filled the cache
        CHECK(f.stats.hits.get() == 2);
        CHECK(f.stats.misses.get() == 1);
        CHECK(f.core->in_flight() == 0);
    }
}

TEST_CASE("core: a backend failure in the middle of a pipeline answers every request once, in order",
          "[proxy][core]") {
    core_fixture f;
    CHECK(f.send(cmd({"GET", "b"}) + cmd({"SET", "c", "1"}) + cmd({"PING"}) + cmd({"GET", "d"})) == next::wait);
    CHECK(f.answer(f.links.shared_link, "$-1\r\n:-2\r\n") == next::wait);
    CHECK(f.out() == "$-1\r\n");
    f.links.shared_link.fail("Connection reset by peer");
    CHECK(f.core->advance() == next::read);
    const std::string error = "-ERR backend unavailable: Connection reset by peer\r\n";
    CHECK(f.out() == error + "+PONG\r\n" + error);
    CHECK(f.core->in_flight() == 0);
    CHECK(f.stats.backend_errors.get() == 2);
    CHECK(f.cached("b"));  // its reply came whole before the failure, with PTTL -2: a missing key, cached
}

TEST_CASE("core: MULTI pins a dedicated link; queued commands never touch the cache; EXEC releases it clean",
          "[proxy][core]") {
    core_fixture f;
    f.cache_value("k", "old");
    CHECK(f.send(cmd({"MULTI"})) == next::wait);
    REQUIRE(f.links.dedicated.size() == 1);
    auto& d = f.links.last_dedicated();
    CHECK(d.take_sent() == cmd({"MULTI"}));
    CHECK(f.answer(d, "+OK\r\n") == next::read);
    CHECK(f.core->current_mode() == mode::transaction);
    CHECK(f.out() == "+OK\r\n");

    CHECK(f.send(cmd({"SET", "k", "new"}) + cmd({"GET", "k"})) == next::wait);
    CHECK(d.take_sent() == cmd({"SET", "k", "new"}) + cmd({"GET", "k"}));
    CHECK_FALSE(f.cached("k"));  // the queued write invalidates at once
    CHECK(f.answer(d, "+QUEUED\r\n+QUEUED\r\n") == next::read);
    CHECK(f.out() == "+QUEUED\r\n+QUEUED\r\n");
    CHECK(f.core->client().multi.load() == 2);

    CHECK(f.send(cmd({"EXEC"})) == next::wait);
    CHECK(d.take_sent() == cmd({"EXEC"}));
    CHECK(f.core->current_mode() == mode::normal);
    CHECK(f.answer(d, "*2\r\n+OK\r\n$3\r\nnew\r\n") == next::read);
    CHECK(f.out() == "*2\r\n+OK\r\n$3\r\nnew\r\n");
    CHECK(f.links.released_clean == std::vector<bool>{true});
    CHECK(f.links.shared_link.sent().empty());
    CHECK(f.stats.hits.get() == 0);
}

TEST_CASE("core: a command that cannot be queued aborts EXEC, as Redis does", "[proxy][core]") {
    core_fixture f;
    f.send(cmd({"MULTI"}));
    auto& d = f.links.last_dedicated();
    f.answer(d, "+OK\r\n");
    d.take_sent();
    CHECK(f.send(cmd({"SUBSCRIBE", "ch"})) == next::read);
    CHECK(f.out() == "+OK\r\n-ERR Command not allowed inside a transaction\r\n");
    CHECK(d.sent().empty());
    CHECK(f.send(cmd({"EXEC"})) == next::wait);
    CHECK(d.take_sent() == cmd({"DISCARD"}));
    CHECK(f.answer(d, "+OK\r\n") == next::read);
    CHECK(f.out() == "-EXECABORT Transaction discarded because of previous errors.\r\n");
}

TEST_CASE("core: WATCH pins a dedicated link, reads go to Redis on it, UNWATCH lets it go", "[proxy][core]") {
    core_fixture f;
    f.cache_value("k", "v");
    CHECK(f.send(cmd({"WATCH", "k"})) == next::wait);
    auto& d = f.links.last_dedicated();
    CHECK(d.take_sent() == cmd({"WATCH", "k"}));
    CHECK(f.answer(d, "+OK\r\n") == next::read);
    CHECK(f.links.released_clean.empty());  // still held: the watch lives on that connection

    CHECK(f.send(cmd({"GET", "k"})) == next::wait);
    CHECK(d.take_sent() == cmd({"GET", "k"}));
    CHECK(f.links.shared_link.sent().empty());
    CHECK(f.answer(d, "$1\r\nv\r\n") == next::read);
    CHECK(f.stats.hits.get() == 0);

    CHECK(f.send(cmd({"UNWATCH"})) == next::wait);
    CHECK(d.take_sent() == cmd({"UNWATCH"}));
    CHECK(f.answer(d, "+OK\r\n") == next::read);
    CHECK(f.out() == "+OK\r\n$1\r\nv\r\n+OK\r\n");
    CHECK(f.links.released_clean == std::vector<bool>{true});
}

TEST_CASE("core: a write racing a fill: the fill is not inserted; without the race it is", "[proxy][core]") {
    SECTION("raced by another client's write") {
        core_fixture f;
        auto writer = f.new_core(8);
        CHECK(f.send(cmd({"GET", "k"})) == next::wait);
        CHECK(f.send(cmd({"SET", "k", "2"}), *writer) == next::wait);
        CHECK(f.links.shared_link.take_sent() == cmd({"GET", "k"}) + cmd({"PTTL", "k"}) + cmd({"SET", "k", "2"}));
        // Redis ran the GET before the SET: the old value comes back, after the SET was sent.
        f.links.shared_link.reply("$1\r\n1\r\n:-1\r\n");
        f.links.shared_link.reply("+OK\r\n");
        CHECK(f.out() == "$1\r\n1\r\n");
        CHECK(f.out(*writer) == "+OK\r\n");
        CHECK_FALSE(f.cached("k"));
        CHECK(f.cache.stats().fills_dropped == 1);
    }
    SECTION("raced by an invalidation") {
        core_fixture f;
        f.send(cmd({"GET", "k"}));
        f.cache.invalidate("k");
        f.answer(f.links.shared_link, "$1\r\n1\r\n:-1\r\n");
        CHECK_FALSE(f.cached("k"));
    }
    SECTION("no race") {
        core_fixture f;
        f.send(cmd({"GET", "k"}));
        f.answer(f.links.shared_link, "$1\r\n1\r\n:-1\r\n");
        CHECK(f.cached("k"));
    }
    SECTION("a read pipelined behind an unanswered write of its key bypasses the cache") {
        core_fixture f;
        f.cache_value("k", "old");
        CHECK(f.send(cmd({"SET", "k", "new"}) + cmd({"GET", "k"})) == next::wait);
        // The GET follows the SET on the same link instead of being served the entry (invalidated anyway).
        CHECK(f.links.shared_link.take_sent() == cmd({"SET", "k", "new"}) + cmd({"GET", "k"}));
        CHECK(f.answer(f.links.shared_link, "+OK\r\n$3\r\nnew\r\n") == next::read);
        CHECK(f.out() == "+OK\r\n$3\r\nnew\r\n");
        CHECK(f.stats.hits.get() == 0);
    }
}

TEST_CASE("core: CLIENT REPLY OFF and SKIP suppress replies, local or from Redis", "[proxy][core]") {
    core_fixture f;
    CHECK(f.send("CLIENT REPLY SKIP\r\nPING\r\nPING\r\n") == next::read);
    CHECK(f.out() == "+PONG\r\n");
    CHECK(f.send("CLIENT REPLY OFF\r\nPING\r\nGET b\r\nECHO hidden\r\nCLIENT REPLY ON\r\nPING\r\n") == next::wait);
    CHECK(f.out().empty());  // held behind the GET, and suppressed anyway
    CHECK(f.answer(f.links.shared_link, "$1\r\nx\r\n:-1\r\n") == next::read);
    CHECK(f.out() == "+OK\r\n+PONG\r\n");
    // RESET is answered even with replies off.
    CHECK(f.send("CLIENT REPLY OFF\r\nRESET\r\nPING\r\n") == next::read);
    CHECK(f.out() == "+RESET\r\n+PONG\r\n");
}

namespace {
std::string push(std::initializer_list<std::string_view> items) {
    std::string out = "*";  // (built by parts: GCC 12 warns falsely about "*" + std::string)
    out += std::to_string(items.size());
    out += "\r\n";
    for (auto item : items) {
        if (!item.empty() && item[0] == ':')
            out += std::string(item) + "\r\n";
        else
            resp::write_bulk(out, item);
    }
    return out;
}
}  // namespace

TEST_CASE("core: QUIT while subscribed ends the tunnel after everything before it is relayed", "[proxy][core]") {
    core_fixture f;
    CHECK(f.send(cmd({"SUBSCRIBE", "ch"})) == next::watch);
    auto& d = f.links.last_dedicated();
    CHECK(d.streaming());
    CHECK(f.core->current_mode() == mode::tunnel);
    CHECK(d.take_sent() == cmd({"SUBSCRIBE", "ch"}));
    CHECK(f.answer(d, push({"subscribe", "ch", ":1"})) == next::watch);
    CHECK(f.out() == push({"subscribe", "ch", ":1"}));
    // While subscribed, PING goes to Redis (which answers as it does to subscribers).
    CHECK(f.send(cmd({"PING"})) == next::watch);
    CHECK(d.take_sent() == cmd({"PING"}));
    CHECK(f.send(cmd({"QUIT"})) == next::watch);
    const std::string marker = "respcache-marker:7:1";
    CHECK(d.take_sent() == cmd({"PING", marker}));
    // Redis's replies to what came before QUIT, and a message, are relayed first.
    f.answer(d, push({"pong", ""}) + push({"message", "ch", "hello"}));
    CHECK(f.out() == push({"pong", ""}) + push({"message", "ch", "hello"}));
    CHECK(f.answer(d, push({"pong", marker})) == next::close);
    CHECK(f.out() == "+OK\r\n");
    CHECK(f.links.released_clean == std::vector<bool>{false});
}

TEST_CASE("core: RESET while subscribed ends the tunnel and starts the client afresh", "[proxy][core]") {
    core_fixture f;
    f.send(cmd({"SELECT", "3"}));
    f.send(cmd({"PSUBSCRIBE", "p*"}));
    auto& d = f.links.last_dedicated();
    // The dedicated link is put in the client's database first, answered before the stream starts.
    CHECK(d.take_sent() == cmd({"SELECT", "3"}) + cmd({"PSUBSCRIBE", "p*"}));
    f.answer(d, "+OK\r\n" + push({"psubscribe", "p*", ":1"}));
    CHECK(f.core->client().subscriptions.load() == 1);
    f.out();
    CHECK(f.send(cmd({"RESET"})) == next::watch);
    f.answer(d, push({"pmessage", "p*", "px", "late"}));
    CHECK(f.answer(d, push({"pong", "respcache-marker:7:1"})) == next::read);
    CHECK(f.out() == push({"pmessage", "p*", "px", "late"}) + "+RESET\r\n");
    CHECK(f.core->current_mode() == mode::normal);
    CHECK(f.core->db() == 0);
    CHECK(f.core->client().subscriptions.load() == 0);
    CHECK(f.links.released_clean == std::vector<bool>{false});
    CHECK(f.send(cmd({"PING"})) == next::read);
    CHECK(f.out() == "+PONG\r\n");
}

TEST_CASE("core: the last unsubscribe ends the tunnel once a marker confirms nothing else is coming",
          "[proxy][core]") {
    core_fixture f;
    f.send(cmd({"SUBSCRIBE", "ch"}));
    auto& d = f.links.last_dedicated();
    f.answer(d, push({"subscribe", "ch", ":1"}));
    f.send(cmd({"UNSUBSCRIBE", "ch"}));
    d.take_sent();
    CHECK(f.answer(d, push({"unsubscribe", "ch", ":0"})) == next::watch);
    CHECK(d.take_sent() == cmd({"PING", "respcache-marker:7:1"}));
    CHECK(f.answer(d, push({"pong", "respcache-marker:7:1"})) == next::read);
    CHECK(f.core->current_mode() == mode::normal);
    CHECK(f.links.released_clean == std::vector<bool>{true});  // clean: nothing subscribed on it any more
}

TEST_CASE("core: a blocked client's further commands wait for the blocking reply", "[proxy][core]") {
    core_fixture f;
    CHECK(f.send(cmd({"BLPOP", "q", "0"}) + cmd({"PING"})) == next::watch);
    CHECK(f.core->current_mode() == mode::blocked);
    CHECK(f.core->client().blocked.load());
    auto& d = f.links.last_dedicated();
    CHECK(d.take_sent() == cmd({"BLPOP", "q", "0"}));
    CHECK(f.send(cmd({"ECHO", "later"})) == next::watch);  // buffered, not dispatched
    CHECK(f.out().empty());
    CHECK(f.answer(d, "*2\r\n$1\r\nq\r\n$1\r\nv\r\n") == next::read);
    CHECK(f.out() == "*2\r\n$1\r\nq\r\n$1\r\nv\r\n+PONG\r\n$5\r\nlater\r\n");
    CHECK(f.core->current_mode() == mode::normal);
    CHECK(f.links.released_clean == std::vector<bool>{true});
}

TEST_CASE("core: a client that leaves while blocked lets its link go, which fails the command", "[proxy][core]") {
    core_fixture f;
    f.send(cmd({"BLPOP", "q", "0"}));
    f.core->client_gone();
    CHECK(f.links.last_dedicated().closed());
    CHECK(f.core->in_flight() == 0);
    CHECK(f.core->advance() == next::close);
    CHECK(f.out().empty());
}

TEST_CASE("core: the output limit is checked as each reply is queued, not after the batch", "[proxy][core]") {
    core_fixture f;
    f.settings.output_buffer_limit = 100;
    std::string pipeline;
    for (int i = 0; i < 10; ++i) pipeline += cmd({"GET", "big" + std::to_string(i)});  // ten misses
    CHECK(f.send(pipeline) == next::wait);
    const std::string value(60, 'v');
    std::string reply;
    resp::write_bulk(reply, value);
    reply += ":-1\r\n";
    f.links.shared_link.reply(reply);
    CHECK(f.core->current_mode() == mode::normal);  // 67 bytes waiting: under the limit
    f.links.shared_link.reply(reply);
    // 134 bytes would wait for a client that does not read: it is cut off now, with 8 replies to come.
    CHECK(f.core->current_mode() == mode::closing);
    CHECK(f.core->replies().discarding());
    CHECK(f.core->advance() == next::close);
    CHECK(f.stats.output_limit_disconnects.get() == 1);
    for (int i = 0; i < 8; ++i) f.links.shared_link.reply(reply);
    CHECK(f.core->replies().unwritten() == 0);
    CHECK(f.core->in_flight() == 0);
}

TEST_CASE("core: a protocol error is answered with Redis's text, then the connection closes", "[proxy][core]") {
    core_fixture f;
    CHECK(f.send("PING\r\n*1\r\n$x\r\n") == next::close);
    CHECK(f.out() == "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
    CHECK(f.stats.protocol_errors.get() == 1);
}

TEST_CASE("core: an inline line over 64 KB is refused even when it arrives in one read", "[proxy][core]") {
    core_fixture f;
    CHECK(f.send(std::string(100'000, 'A') + "\r\n") == next::close);
    CHECK(f.out() == "-ERR Protocol error: too big inline request\r\n");
}

TEST_CASE("core: --consistency strict serves a hit only after a read barrier", "[proxy][core]") {
    core_fixture f(coherence::invalidation_mode::tracking, coherence::consistency_mode::strict);
    std::vector<std::uint64_t> barriers;
    f.coherence.state().send_barrier = [&](std::uint64_t seq) { barriers.push_back(seq); };
    f.coherence.state().live = true;
    f.cache_value("k", "v");
    CHECK(f.send(cmd({"PING"}) + cmd({"GET", "k"})) == next::wait);
    CHECK(f.out() == "+PONG\r\n");  // what is answered already need not wait
    REQUIRE(barriers == std::vector<std::uint64_t>{1});
    f.coherence.state().barrier_answered(1);
    f.host.run_posted();
    CHECK(f.core->advance() == next::read);
    CHECK(f.out() == "$1\r\nv\r\n");
    CHECK(f.links.shared_link.sent().empty());
    CHECK(f.stats.hits.get() == 1);
}

TEST_CASE("core: tracked fills carry the tracking prelude and are refused under a newer channel epoch",
          "[proxy][core]") {
    core_fixture f(coherence::invalidation_mode::tracking);
    auto& t = f.coherence.state();
    t.live = true;
    t.redirect_id = 42;
    CHECK(f.send(cmd({"GET", "k"})) == next::wait);
    CHECK(f.links.shared_link.take_sent() == cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "42", "OPTIN"}) +
                                                 cmd({"CLIENT", "CACHING", "yes"}) + cmd({"GET", "k"}) +
                                                 cmd({"PTTL", "k"}));
    CHECK(f.answer(f.links.shared_link, "+OK\r\n+OK\r\n$1\r\n1\r\n:-1\r\n") == next::read);
    CHECK(f.out() == "$1\r\n1\r\n");
    CHECK(f.cached("k"));
    // Tracking is on for this link now: the next fill sends CLIENT CACHING yes only. The channel is
    // re-established while it is in flight: the reply may have been tracked for nobody, so it is dropped.
    f.send(cmd({"GET", "j"}));
    CHECK(f.links.shared_link.take_sent() == cmd({"CLIENT", "CACHING", "yes"}) + cmd({"GET", "j"}) + cmd({"PTTL", "j"}));
    t.epoch.fetch_add(1);
    f.answer(f.links.shared_link, "+OK\r\n$1\r\n2\r\n:-1\r\n");
    CHECK(f.out() == "$1\r\n2\r\n");
    CHECK_FALSE(f.cached("j"));
}

TEST_CASE("core: AUTH is checked by Redis on a connection of its own, never reused", "[proxy][core]") {
    core_fixture f;
    CHECK(f.send(cmd({"AUTH", "alice", "secret"})) == next::wait);
    auto& own = f.links.last_dedicated();
    CHECK(own.take_sent() == cmd({"AUTH", "alice", "secret"}));
    CHECK(f.answer(own, "+OK\r\n") == next::read);
    CHECK(f.out() == "+OK\r\n");
    CHECK(f.links.released_clean == std::vector<bool>{false});
    std::lock_guard guard(f.core->client().mu);
    CHECK(f.core->client().user == "alice");
}

TEST_CASE("core: with --requirepass nothing but AUTH, HELLO, QUIT and RESET runs before logging in",
          "[proxy][core]") {
    core_fixture f;
    f.settings.password_required = true;
    f.host.password = "pw";
    f.core = f.new_core(9);
    CHECK(f.send(cmd({"GET", "k"}) + cmd({"AUTH", "wrong"}) + cmd({"AUTH", "pw"}) + cmd({"PING"})) == next::read);
    CHECK(f.out() == "-NOAUTH Authentication required.\r\n"
                     "-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n+PONG\r\n");
    CHECK(f.links.shared_link.sent().empty());
}

TEST_CASE("core: a push Redis sends ahead of a reply reaches the client before it", "[proxy][core]") {
    core_fixture f;
    f.send(cmd({"HELLO", "3"}));
    f.out();
    auto& link = f.links.shared_resp3;
    CHECK(f.send(cmd({"DEBUG", "PROTOCOL", "push"})) == next::wait);
    link.take_sent();
    const std::string push = ">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n";
    const std::string reply = "$40\r\nSome real reply following the push reply\r\n";
    // The link's own tracking pushes are nobody's; this one is the command's.
    CHECK(f.answer(link, ">2\r\n$21\r\ntracking-redir-broken\r\n:9\r\n" + push + reply) == next::read);
    CHECK(f.out() == push + reply);
}

TEST_CASE("core: MGET serves the keys it has from the cache and fetches only the others, in one request",
          "[proxy][core][mget]") {
    core_fixture f;
    f.cache_value("a", "va");
    CHECK(f.send(cmd({"MGET", "a", "b", "c"})) == next::wait);
    CHECK(f.links.shared_link.take_sent() == cmd({"MGET", "b", "c"}) + cmd({"PTTL", "b"}) + cmd({"PTTL", "c"}));
    CHECK(f.out().empty());
    // b exists, c does not (PTTL -2): both are kept, c as a missing key.
    CHECK(f.answer(f.links.shared_link, "*2\r\n$2\r\nvb\r\n$-1\r\n:-1\r\n:-2\r\n") == next::read);
    const std::string whole = "*3\r\n$2\r\nva\r\n$2\r\nvb\r\n$-1\r\n";
    CHECK(f.out() == whole);
    CHECK(f.cached("b"));
    CHECK(f.cached("c"));
    // Now every key is a hit: nothing is sent, and GET shares MGET's entries.
    CHECK(f.send(cmd({"MGET", "a", "b", "c"}) + cmd({"GET", "b"})) == next::read);
    CHECK(f.links.shared_link.take_sent().empty());
    CHECK(f.out() == whole + "$2\r\nvb\r\n");
    CHECK(f.stats.hits.get() == 5);
    CHECK(f.stats.misses.get() == 2);
    const auto& mget = f.stats.cached_commands[command::stat_slot("mget")];
    CHECK(mget.partial.get() == 1);
    CHECK(mget.hits.get() == 1);
    CHECK(mget.misses.get() == 0);
}

TEST_CASE("core: an MGET key whose PTTL disagrees with its value, or with a write in flight, is not kept",
          "[proxy][core][mget]") {
    core_fixture f;
    CHECK(f.send(cmd({"SET", "w", "1"}) + cmd({"MGET", "w", "x", "y"})) == next::wait);
    CHECK(f.links.shared_link.take_sent() == cmd({"SET", "w", "1"}) + cmd({"MGET", "w", "x", "y"}) +
                                                 cmd({"PTTL", "w"}) + cmd({"PTTL", "x"}) + cmd({"PTTL", "y"}));
    // x: a null, yet PTTL says it exists (created in between); y: about to expire (PTTL 0).
    CHECK(f.answer(f.links.shared_link, "+OK\r\n*3\r\n$1\r\n1\r\n$-1\r\n$1\r\nv\r\n:-1\r\n:-1\r\n:0\r\n") ==
          next::read);
    CHECK(f.out() == "+OK\r\n*3\r\n$1\r\n1\r\n$-1\r\n$1\r\nv\r\n");
    CHECK_FALSE(f.cached("w"));
    CHECK_FALSE(f.cached("x"));
    CHECK_FALSE(f.cached("y"));
    // x is read anew by a GET of its own, in the background: its value is kept, and nothing is left waiting.
    CHECK(f.links.shared_link.take_sent() == cmd({"GET", "x"}) + cmd({"PTTL", "x"}));
    CHECK(f.core->outstanding() == 1);
    CHECK(f.answer(f.links.shared_link, "$2\r\nvx\r\n:-1\r\n") == next::read);
    CHECK(f.out().empty());
    CHECK(f.cached("x"));
    CHECK(f.core->outstanding() == 0);
}

TEST_CASE("core: an MGET whose fetch fails answers the error, once", "[proxy][core][mget]") {
    core_fixture f;
    f.cache_value("a", "va");
    CHECK(f.send(cmd({"MGET", "a", "b"}) + cmd({"PING"})) == next::wait);
    f.links.shared_link.fail("Connection reset by peer");
    CHECK(f.core->advance() == next::read);
    CHECK(f.out() == "-ERR backend unavailable: Connection reset by peer\r\n+PONG\r\n");
    CHECK(f.core->in_flight() == 0);
    CHECK_FALSE(f.cached("b"));
}

TEST_CASE("core: concurrent misses of one entry share one request; the others get its reply or its error",
          "[proxy][core][shared]") {
    core_fixture f;
    auto other = f.new_core(8);
    CHECK(f.send(cmd({"GET", "k"})) == next::wait);
    CHECK(f.send(cmd({"GET", "k"}), *other) == next::wait);
    CHECK(f.links.shared_link.take_sent() == cmd({"GET", "k"}) + cmd({"PTTL", "k"}));  // one request
    CHECK(other->in_flight() == 1);
    SECTION("the reply") {
        CHECK(f.answer(f.links.shared_link, "$1\r\nv\r\n:-1\r\n") == next::read);
        CHECK(f.out() == "$1\r\nv\r\n");
        CHECK(f.out(*other).empty());  // posted to the other client's thread
        f.host.run_posted();
        CHECK(other->advance() == next::read);
        CHECK(f.out(*other) == "$1\r\nv\r\n");
        CHECK(f.stats.shared_misses.get() == 1);
        CHECK(f.stats.backend_errors.get() == 0);
    }
    SECTION("the error") {
        f.links.shared_link.fail("Connection reset by peer");
        f.host.run_posted();
        CHECK(other->advance() == next::read);
        CHECK(f.out(*other) == "-ERR backend unavailable: Connection reset by peer\r\n");
        CHECK(other->in_flight() == 0);
    }
}

TEST_CASE("core: a miss never waits for a request sent before its key was invalidated", "[proxy][core][shared]") {
    core_fixture f;
    auto other = f.new_core(8);
    CHECK(f.send(cmd({"GET", "k"})) == next::wait);
    f.links.shared_link.take_sent();
    f.cache.invalidate("k");  // a write of k was acknowledged: the request in flight may predate it
    CHECK(f.send(cmd({"GET", "k"}), *other) == next::wait);
    CHECK(f.links.shared_link.take_sent() == cmd({"GET", "k"}) + cmd({"PTTL", "k"}));  // its own request
    CHECK(f.stats.shared_misses.get() == 0);
}

TEST_CASE("core: a miss behind the channel (its read barrier failed) never waits for a fill in flight",
          "[proxy][core][shared][mget]") {
    core_fixture f(coherence::invalidation_mode::tracking, coherence::consistency_mode::strict);
    auto& t = f.coherence.state();
    std::vector<std::uint64_t> barriers;
    t.send_barrier = [&](std::uint64_t seq) { barriers.push_back(seq); };
    t.live = true;
    t.redirect_id = 42;
    auto other = f.new_core(8);
    // The first client passes its barrier, misses and leads a fill of k.
    CHECK(f.send(cmd({"GET", "k"})) == next::wait);
    REQUIRE(barriers == std::vector<std::uint64_t>{1});
    t.barrier_answered(1);
    f.host.run_posted();
    CHECK(f.core->advance() == next::wait);
    CHECK(f.links.shared_link.take_sent() == cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "42", "OPTIN"}) +
                                                 cmd({"CLIENT", "CACHING", "yes"}) + cmd({"GET", "k"}) +
                                                 cmd({"PTTL", "k"}));
    // The other's barrier fails (the channel was lost, and is back by the time it reads): the fill in
    // flight may predate a write the channel had not yet shown it, so it reads k on its own.
    const bool mget = GENERATE(false, true);
    CAPTURE(mget);
    CHECK(f.send(mget ? cmd({"MGET", "k", "j"}) : cmd({"GET", "k"}), *other) == next::wait);
    REQUIRE(barriers == std::vector<std::uint64_t>{1, 2});
    t.live = false;
    t.barriers_failed();
    t.live = true;
    f.host.run_posted();
    CHECK(other->advance() == next::wait);
    const std::string caching = cmd({"CLIENT", "CACHING", "yes"});
    CHECK(f.links.shared_link.take_sent() ==
          caching + (mget ? cmd({"MGET", "k", "j"}) + cmd({"PTTL", "k"}) + cmd({"PTTL", "j"})
                          : cmd({"GET", "k"}) + cmd({"PTTL", "k"})));
    CHECK(f.stats.shared_misses.get() == 0);
    const std::string own = mget ? "*2\r\n$3\r\nnew\r\n$1\r\nj\r\n" : "$3\r\nnew\r\n";
    CHECK(f.answer(f.links.shared_link,
                   "+OK\r\n+OK\r\n$3\r\nold\r\n:-1\r\n+OK\r\n" + own + (mget ? ":-1\r\n:-1\r\n" : ":-1\r\n")) ==
          next::read);
    CHECK(f.out() == "$3\r\nold\r\n");
    f.host.run_posted();
    other->advance();
    CHECK(f.out(*other) == own);
}

TEST_CASE("core: a shared GET's null reaches each client in its own protocol", "[proxy][core][shared]") {
    core_fixture f;
    auto other = f.new_core(8);
    CHECK(f.send(cmd({"HELLO", "3"}), *other) == next::read);
    f.out(*other);
    CHECK(f.send(cmd({"GET", "gone"})) == next::wait);
    CHECK(f.send(cmd({"GET", "gone"}), *other) == next::wait);
    CHECK(f.answer(f.links.shared_link, "$-1\r\n:-2\r\n") == next::read);
    CHECK(f.out() == "$-1\r\n");
    f.host.run_posted();
    other->advance();
    CHECK(f.out(*other) == "_\r\n");
}

TEST_CASE("core: a hit late in its entry's life reads it again in the background (--refresh-ahead)",
          "[proxy][core][refresh]") {
    core_fixture f;
    f.cache.set_limits({1024, 0, 10'000, 0.5});  // a hit in the last 5 s of a 10 s life refreshes
    const cache::key k = cache::make_key(0, "hot");
    f.cache.fill(k, f.cache.begin_fill(k), "$3\r\nold\r\n", proxy::steady_ms() - 6'000);  // 4 s left
    CHECK(f.send(cmd({"GET", "hot"})) == next::read);
    CHECK(f.out() == "$3\r\nold\r\n");  // the hit is answered at once
    CHECK(f.links.shared_link.take_sent() == cmd({"GET", "hot"}) + cmd({"PTTL", "hot"}));
    CHECK(f.core->in_flight() == 0);  // nothing of the client's waits for it
    CHECK(f.core->outstanding() == 1);
    CHECK(f.send(cmd({"GET", "hot"})) == next::read);  // asked once per entry
    CHECK(f.out() == "$3\r\nold\r\n");
    CHECK(f.links.shared_link.take_sent().empty());
    const int wakes = f.wakes;
    f.links.shared_link.reply("$3\r\nnew\r\n:-1\r\n");
    CHECK(f.core->outstanding() == 0);
    CHECK(f.wakes == wakes + 1);
    CHECK(f.out().empty());  // the refresh's reply is nobody's
    CHECK(f.send(cmd({"GET", "hot"})) == next::read);
    CHECK(f.out() == "$3\r\nnew\r\n");
    CHECK(f.links.shared_link.take_sent().empty());
    CHECK(f.stats.refreshes.get() == 1);
    CHECK(f.stats.misses.get() == 0);
}
