// CLIENT TRACKING through the client core and the tracking table, stepped by hand: which reads are
// remembered and tracked in Redis, what a client is sent when a key changes, and when.

#include "respcache/proxy/tracking_table.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "proxy/core_fixture.hpp"

using namespace respcache;
using respcache::tests::cmd;
using respcache::tests::core_fixture;
using respcache::tests::next;

namespace {

// A tracking-mode fixture whose channel is live, whose clients are in the registry, and whose
// invalidations reach the core at once (as the shell's post would, one turn later).
struct tracking_fixture : core_fixture {
    tracking_fixture() : core_fixture(coherence::invalidation_mode::tracking) {
        coherence.state().live = true;
        coherence.state().redirect_id = 42;
        coherence.observe([this](std::span<const std::string_view> keys, bool flush) { client_tracking.changed(keys, flush); });
        attach(*core);
    }
    std::vector<std::unique_ptr<proxy::client_core>> others;

    void attach(proxy::client_core& c) {
        auto& info = c.client();
        std::shared_ptr<command::client_info> shared(std::shared_ptr<void>(), &info);
        clients.add(shared);
        std::lock_guard guard(info.mu);
        info.inbox = [&c](command::tracking_message m) { c.deliver_tracking(m); };
    }
    proxy::client_core& another(std::uint64_t id) {
        others.push_back(new_core(id));
        attach(*others.back());
        return *others.back();
    }
    // A change the proxy's channel heard of.
    void changed(std::initializer_list<std::string_view> keys) {
        std::vector<std::string_view> v(keys);
        client_tracking.changed(v, false);
    }
    std::string hello3(proxy::client_core& c) {
        send(cmd({"HELLO", "3"}), c);
        return out(c);
    }
    // Redis answers the read(s) last sent on `link` as a tracked read: +OK for each CLIENT TRACKING and
    // CLIENT CACHING before it, the reply, and :-1 for a fill's PTTL.
    next answer_read(fakes::scripted_link& link, std::string_view reply) {
        const std::string sent = link.take_sent();
        std::string bytes;
        for (std::size_t at = 0; (at = sent.find("\r\nCLIENT\r\n", at)) != std::string::npos; ++at) bytes += "+OK\r\n";
        bytes += reply;
        if (sent.find("PTTL") != std::string::npos) bytes += ":-1\r\n";
        return answer(link, bytes);
    }
    void read_key(std::string_view key, std::string_view value) {
        send(cmd({"GET", key}));
        std::string reply;
        resp::write_bulk(reply, value);
        answer_read(links.shared_resp3, reply);
    }
};

std::string invalidate(std::initializer_list<std::string_view> keys) {
    std::string out = ">2\r\n$10\r\ninvalidate\r\n*";
    out += std::to_string(keys.size());
    out += "\r\n";
    for (auto k : keys) resp::write_bulk(out, k);
    return out;
}

}  // namespace

TEST_CASE("tracking: a RESP3 client hears once of each key it read, after it read it", "[proxy][tracking]") {
    tracking_fixture f;
    f.hello3(*f.core);
    CHECK(f.send(cmd({"CLIENT", "TRACKING", "on"})) == next::read);
    CHECK(f.out() == "+OK\r\n");
    f.read_key("a", "1");
    CHECK(f.out() == "$1\r\n1\r\n");
    f.changed({"b"});  // never read: nothing
    CHECK(f.out().empty());
    f.changed({"a"});
    CHECK(f.out() == invalidate({"a"}));
    f.changed({"a"});  // not read again since: nothing more
    CHECK(f.out().empty());
}

TEST_CASE("tracking: a hit remembered after the table heard of its key's change is told of it at once",
          "[proxy][tracking]") {
    // A hit finds its entry just before the channel's thread drops it and tells the table; the hit's
    // keys are remembered after that. The mark taken before the hit shows the change came in between.
    tracking_fixture f;
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on"}));
    f.out();
    const std::uint64_t id = f.core->client().id;
    const std::vector<std::string_view> a{"a"};
    const std::vector<std::string_view> b{"b"};

    const std::uint64_t before = f.client_tracking.mark();
    f.changed({"a"});
    CHECK(f.client_tracking.mark() > before);
    f.client_tracking.remember(id, a, &before);
    CHECK(f.out() == invalidate({"a"}));
    f.changed({"a"});  // told already, so not remembered: nothing more
    CHECK(f.out().empty());

    // A mark taken after the change: remembered, and told of the next change only.
    const std::uint64_t after = f.client_tracking.mark();
    f.client_tracking.remember(id, a, &after);
    CHECK(f.out().empty());
    f.changed({"a"});
    CHECK(f.out() == invalidate({"a"}));

    // Another key's change (of another stripe) since the mark tells nothing about this one.
    std::string other = "other";
    for (int i = 0; proxy::tracking_table::stripe(other) == proxy::tracking_table::stripe("a"); ++i)
        other = "other:" + std::to_string(i);
    const std::vector<std::string_view> o{other};
    const std::uint64_t m = f.client_tracking.mark();
    f.client_tracking.changed(o, false);
    f.client_tracking.remember(id, a, &m);
    CHECK(f.out().empty());
    f.changed({"a"});
    CHECK(f.out() == invalidate({"a"}));

    // Without a mark (a read Redis answered), remembered as before.
    f.changed({"b"});
    f.client_tracking.remember(id, b);
    CHECK(f.out().empty());
    f.changed({"b"});
    CHECK(f.out() == invalidate({"b"}));
}

TEST_CASE("tracking: a read sent to Redis carries CLIENT CACHING yes on the shared link", "[proxy][tracking]") {
    tracking_fixture f;
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on"}));
    f.out();
    // HRANDFIELD is a read that is never cached (its reply is random): forwarded, and tracked in Redis.
    CHECK(f.send(cmd({"HRANDFIELD", "h"})) == next::wait);
    auto& link = f.links.shared_resp3;
    CHECK(link.take_sent() == cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "42", "OPTIN"}) +
                                  cmd({"CLIENT", "CACHING", "yes"}) + cmd({"HRANDFIELD", "h"}));
    CHECK(f.answer(link, "+OK\r\n+OK\r\n$1\r\nv\r\n") == next::read);
    CHECK(f.out() == "$1\r\nv\r\n");
    f.changed({"h"});
    CHECK(f.out() == invalidate({"h"}));
}

TEST_CASE("tracking: a read whose tracking Redis refused is followed by a flush", "[proxy][tracking]") {
    tracking_fixture f;
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on"}));
    f.out();
    f.send(cmd({"HRANDFIELD", "h"}));
    auto& link = f.links.shared_resp3;
    link.take_sent();
    f.answer(link, "-BUSY Redis is busy running a script.\r\n-BUSY Redis is busy running a script.\r\n$1\r\nv\r\n");
    CHECK(f.out() == "$1\r\nv\r\n>2\r\n$10\r\ninvalidate\r\n_\r\n");
}

TEST_CASE("tracking: an invalidation waits behind the replies already queued", "[proxy][tracking]") {
    tracking_fixture f;
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on"}));
    f.out();
    f.read_key("k", "old");
    f.out();
    // A read of another key is in flight when k's change is heard: k's invalidation follows its reply.
    CHECK(f.send(cmd({"HGET", "h", "f"})) == next::wait);
    f.changed({"k"});
    CHECK(f.out().empty());
    f.answer_read(f.links.shared_resp3, "$1\r\nv\r\n");
    CHECK(f.out() == "$1\r\nv\r\n" + invalidate({"k"}));
}

TEST_CASE("tracking: OPTIN remembers only the read after CLIENT CACHING yes", "[proxy][tracking]") {
    tracking_fixture f;
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on", "OPTIN"}));
    f.read_key("a", "1");
    f.send(cmd({"CLIENT", "CACHING", "yes"}));
    f.read_key("b", "2");
    f.read_key("a", "1");
    CHECK(f.out() == "+OK\r\n$1\r\n1\r\n+OK\r\n$1\r\n2\r\n$1\r\n1\r\n");
    f.changed({"a", "b"});
    CHECK(f.out() == invalidate({"b"}));
}

TEST_CASE("tracking: NOLOOP is not told of its own writes", "[proxy][tracking]") {
    tracking_fixture f;
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on", "NOLOOP"}));
    f.read_key("a", "1");
    f.read_key("b", "2");
    f.send(cmd({"SET", "a", "mine"}));
    f.answer(f.links.shared_resp3, "+OK\r\n");
    f.out();
    f.changed({"a", "b"});  // a: its own write; b: someone else's
    CHECK(f.out() == invalidate({"b"}));
}

TEST_CASE("tracking: BCAST hears of keys under its prefixes, read or not", "[proxy][tracking]") {
    tracking_fixture f;
    f.hello3(*f.core);
    CHECK(f.send(cmd({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:"})) == next::wait);
    // The registration is Redis's, on a connection of the client's own, redirected to the channel.
    auto& reg = f.links.last_dedicated();
    CHECK(reg.take_sent() == cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "42", "BCAST", "PREFIX", "user:"}));
    CHECK(f.answer(reg, "+OK\r\n") == next::read);
    CHECK(f.out() == "+OK\r\n");
    f.changed({"user:1", "order:1", "user:2"});
    CHECK(f.out() == invalidate({"user:1", "user:2"}));
    CHECK(f.send(cmd({"CLIENT", "TRACKINGINFO"})) == next::read);
    CHECK(f.out() ==
          "%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*1\r\n$5\r\nuser:\r\n");
    // Off: the registration's connection goes, and nothing more is heard.
    f.send(cmd({"CLIENT", "TRACKING", "off"}));
    CHECK(reg.closed());
    f.changed({"user:3"});
    CHECK(f.out() == "+OK\r\n");
}

TEST_CASE("tracking: REDIRECT to a RESP2 subscriber sends it messages on __redis__:invalidate",
          "[proxy][tracking]") {
    tracking_fixture f;
    auto& target = f.another(8);
    f.send(cmd({"SUBSCRIBE", "__redis__:invalidate"}), target);
    f.links.last_dedicated().reply("*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n");
    f.out(target);
    f.send(cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "8"}));
    CHECK(f.out() == "+OK\r\n");
    f.send(cmd({"GET", "k"}));
    f.answer_read(f.links.shared_link, "$1\r\nv\r\n");
    f.out();
    f.changed({"k"});
    CHECK(f.out().empty());  // the tracking client itself hears nothing
    CHECK(f.out(target) == "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n");
    // A flush is a nil message.
    f.client_tracking.changed({}, true);
    CHECK(f.out(target) == "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n");
    // Redis writes that null in the tracking client's protocol.
    f.hello3(*f.core);
    f.out();
    f.client_tracking.changed({}, true);
    CHECK(f.out(target) == "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n_\r\n");
}

TEST_CASE("tracking: a redirect that is gone is reported to a RESP3 client", "[proxy][tracking]") {
    tracking_fixture f;
    f.another(8);
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "8"}));
    f.out();
    f.clients.remove(8);
    f.read_key("k", "v");
    f.out();
    f.changed({"k"});
    CHECK(f.out() == ">2\r\n$21\r\ntracking-redir-broken\r\n:8\r\n");
    f.send(cmd({"CLIENT", "TRACKINGINFO"}));
    CHECK(f.out().find("broken_redirect") != std::string::npos);
}

TEST_CASE("tracking: a tracking client's dedicated link tracks before its first command", "[proxy][tracking]") {
    tracking_fixture f;
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on"}));
    f.out();
    CHECK(f.send(cmd({"MULTI"})) == next::wait);
    auto& d = f.links.last_dedicated();
    CHECK(d.take_sent() == cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "42"}) + cmd({"MULTI"}));
    CHECK(f.answer(d, "+OK\r\n+OK\r\n") == next::read);
    CHECK(f.out() == "+OK\r\n");  // the prelude's reply is nobody's
    f.send(cmd({"GET", "k"}) + cmd({"EXEC"}));
    f.answer(d, "+QUEUED\r\n*1\r\n$1\r\nv\r\n");
    CHECK(f.out() == "+QUEUED\r\n*1\r\n$1\r\nv\r\n");
    f.changed({"k"});  // read inside the transaction: remembered
    CHECK(f.out() == invalidate({"k"}));
    // Redis forgets what a connection tracked when it closes: the client keeps it for its next transaction.
    CHECK(f.links.released_clean.empty());
    d.take_sent();
    CHECK(f.send(cmd({"MULTI"})) == next::wait);
    CHECK(f.links.dedicated.size() == 1);
    CHECK(d.take_sent() == cmd({"MULTI"}));  // tracking is still on there: no second prelude
    f.answer(d, "+OK\r\n");
    f.send(cmd({"GET", "k"}) + cmd({"EXEC"}));
    f.answer(d, "+QUEUED\r\n*1\r\n$1\r\nw\r\n");
    f.out();
    f.send(cmd({"CLIENT", "TRACKING", "off"}));
    f.out();
    CHECK(f.links.released_clean == std::vector<bool>{false});  // a tracking connection is never reused
}

TEST_CASE("tracking: argument errors are Redis's", "[proxy][tracking]") {
    tracking_fixture f;
    const std::pair<std::string, std::string> rows[] = {
        {cmd({"CLIENT", "TRACKING", "on", "PREFIX", "a"}), "-ERR PREFIX option requires BCAST mode to be enabled\r\n"},
        {cmd({"CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"}), "-ERR You can't specify both OPTIN mode and OPTOUT mode\r\n"},
        {cmd({"CLIENT", "TRACKING", "on", "BCAST", "OPTIN"}), "-ERR OPTIN and OPTOUT are not compatible with BCAST\r\n"},
        {cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "999"}), "-ERR The client ID you want redirect to does not exist\r\n"},
        {cmd({"CLIENT", "TRACKING", "on", "REDIRECT", "x"}), "-ERR value is not an integer or out of range\r\n"},
        {cmd({"CLIENT", "TRACKING", "maybe"}), "-ERR syntax error\r\n"},
        {cmd({"CLIENT", "TRACKING", "on", "FOO"}), "-ERR syntax error\r\n"},
        {cmd({"CLIENT", "CACHING", "yes"}),
         "-ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled\r\n"},
        {cmd({"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "ab"}),
         "-ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single client must not overlap.\r\n"},
        {cmd({"CLIENT", "GETREDIR"}), ":-1\r\n"},
    };
    for (const auto& [request, reply] : rows) {
        CAPTURE(request);
        f.send(request);
        CHECK(f.out() == reply);
    }
}

TEST_CASE("tracking: the invalidation of a client's own write follows that write's reply at once", "[proxy][tracking]") {
    tracking_fixture f;
    std::vector<std::uint64_t> barriers;
    f.coherence.state().send_barrier = [&](std::uint64_t seq) { barriers.push_back(seq); };
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on"}));
    f.out();
    f.read_key("k", "old");
    f.out();
    auto& link = f.links.shared_resp3;
    // A write of a key it does not track: answered as it comes, no barrier.
    f.send(cmd({"SET", "other", "x"}));
    link.take_sent();
    CHECK(f.answer(link, "+OK\r\n") == next::read);
    CHECK(f.out() == "+OK\r\n");
    CHECK(barriers.empty());
    // A write of k: its reply is held until the channel has passed a barrier sent after it.
    CHECK(f.send(cmd({"SET", "k", "new"})) == next::wait);
    link.take_sent();
    CHECK(f.answer(link, "+OK\r\n") == next::wait);
    REQUIRE(barriers == std::vector<std::uint64_t>{1});
    CHECK(f.core->in_flight() == 1);
    f.changed({"k"});  // the channel brings k's invalidation before the barrier's PONG
    CHECK(f.out().empty());
    f.coherence.state().barrier_answered(1);
    f.host.run_posted();
    CHECK(f.core->advance() == next::read);
    CHECK(f.out() == "+OK\r\n" + invalidate({"k"}));  // as Redis writes them: the reply, then the push
}

TEST_CASE("tracking: NOLOOP, and a RESP2 client without a redirect, do not wait for their own writes",
          "[proxy][tracking]") {
    for (const bool resp3 : {true, false}) {
        CAPTURE(resp3);
        tracking_fixture f;
        std::vector<std::uint64_t> barriers;
        f.coherence.state().send_barrier = [&](std::uint64_t seq) { barriers.push_back(seq); };
        if (resp3) f.hello3(*f.core);
        if (resp3)
            f.send(cmd({"CLIENT", "TRACKING", "on", "NOLOOP"}));
        else
            f.send(cmd({"CLIENT", "TRACKING", "on"}));
        f.out();
        auto& link = resp3 ? f.links.shared_resp3 : f.links.shared_link;
        f.send(cmd({"GET", "k"}));
        f.answer_read(link, "$1\r\nv\r\n");
        f.out();
        f.send(cmd({"SET", "k", "new"}));
        link.take_sent();
        CHECK(f.answer(link, "+OK\r\n") == next::read);
        CHECK(f.out() == "+OK\r\n");
        CHECK(barriers.empty());
    }
}

TEST_CASE("tracking: a shared link that tracked the client's reads closes: the client is flushed", "[proxy][tracking]") {
    tracking_fixture f;
    f.hello3(*f.core);
    f.send(cmd({"CLIENT", "TRACKING", "on"}));
    f.out();
    f.read_key("k", "v");
    f.out();
    // Redis forgets what a connection tracked when it closes: k's next change would be heard by nobody.
    for (auto& lt : f.tracking) f.coherence.link_closing(lt, f.links.shared_resp3);
    CHECK(f.out() == ">2\r\n$10\r\ninvalidate\r\n_\r\n");
}
