// backend::connection over a memory stream: its log-in, the framing of what Redis sends however it is
// split, FIFO matching of replies to requests, stream mode, and what it does when the stream fails.
// io_context::poll() steps it; nothing waits on a clock.

#include "respcache/backend/connection.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <string>
#include <utility>
#include <vector>

#include "fakes/memory_stream.hpp"
#include "respcache/resp/writer.hpp"

using namespace respcache;

namespace {

std::string cmd(std::initializer_list<std::string_view> args) {
    std::string out;
    resp::write_command(out, args);
    return out;
}

// Records what a request was told.
struct recorder final : backend::request, backend::stream_sink {
    std::vector<std::pair<std::size_t, std::string>> replies;
    std::vector<std::string> errors;
    std::vector<std::string> stream;
    void on_reply(std::size_t index, std::string_view bytes) override { replies.emplace_back(index, bytes); }
    void on_error(std::string_view reason) override { errors.emplace_back(reason); }
    void on_stream_reply(std::string_view bytes) override { stream.emplace_back(bytes); }
    void on_stream_error(std::string_view reason) override { errors.emplace_back(reason); }
};

struct fixture {
    boost::asio::io_context io;
    fakes::memory_stream* stream = nullptr;
    std::shared_ptr<backend::connection> conn;

    explicit fixture(backend::connection_options o = {}) {
        o.client_name = "t";
        o.make_stream = [this](boost::asio::any_io_executor ex) {
            auto s = std::make_unique<fakes::memory_stream>(ex);
            stream = s.get();
            return s;
        };
        conn = std::make_shared<backend::connection>(io.get_executor(), std::move(o));
        conn->start();
        io.poll();
    }
    ~fixture() {
        conn->close();
        io.poll();
        conn.reset();
        io.poll();
    }
    // Answers the log-in (CLIENT SETNAME t, CLIENT ID) as Redis would.
    void log_in(std::string_view id_reply = ":7\r\n") {
        REQUIRE(stream->take_written() == cmd({"CLIENT", "SETNAME", "t"}) + cmd({"CLIENT", "ID"}));
        stream->push("+OK\r\n");
        stream->push(id_reply);
        io.poll();
    }
    void push(std::string_view bytes) {
        stream->push(bytes);
        io.poll();
    }
};

}  // namespace

TEST_CASE("connection: logs in, then is ready with the backend's CLIENT ID", "[backend][connection]") {
    fixture f;
    CHECK(f.conn->state() == backend::link_state::connecting);
    f.log_in();
    CHECK(f.conn->state() == backend::link_state::ready);
    CHECK(f.conn->backend_id() == 7);
}

TEST_CASE("connection: pipelined replies are matched to requests in order, however the bytes are split",
          "[backend][connection]") {
    const std::string replies = "+OK\r\n*2\r\n$1\r\na\r\n*-1\r\n$-1\r\n:42\r\n$5\r\nhello\r\n-ERR no\r\n";
    for (const std::size_t piece : {std::size_t(1), std::size_t(2), std::size_t(3), std::size_t(7), replies.size()}) {
        CAPTURE(piece);
        fixture f;
        f.log_in();
        recorder a, b, c;
        f.conn->send(cmd({"SET", "k", "v"}), 1, &a);
        f.conn->send(cmd({"MGET", "a"}) + cmd({"GET", "x"}) + cmd({"INCR", "n"}), 3, &b);
        f.conn->send(cmd({"ECHO", "hello"}) + cmd({"BAD"}), 2, &c);
        f.io.poll();
        // Requests of one turn of the event loop leave in one write.
        CHECK(f.stream->take_written() == cmd({"SET", "k", "v"}) + cmd({"MGET", "a"}) + cmd({"GET", "x"}) +
                                              cmd({"INCR", "n"}) + cmd({"ECHO", "hello"}) + cmd({"BAD"}));
        for (std::size_t at = 0; at < replies.size(); at += piece) f.push(replies.substr(at, piece));
        using r = std::pair<std::size_t, std::string>;
        CHECK(a.replies == std::vector<r>{{0, "+OK\r\n"}});
        CHECK(b.replies == std::vector<r>{{0, "*2\r\n$1\r\na\r\n*-1\r\n"}, {1, "$-1\r\n"}, {2, ":42\r\n"}});
        CHECK(c.replies == std::vector<r>{{0, "$5\r\nhello\r\n"}, {1, "-ERR no\r\n"}});
        CHECK(a.errors.empty());
        CHECK(b.errors.empty());
        CHECK(c.errors.empty());
        CHECK(f.conn->in_flight() == 0);
    }
}

TEST_CASE("connection: stream mode hands replies to the sink once the pending requests are answered",
          "[backend][connection]") {
    fixture f;
    f.log_in();
    recorder before, sink;
    f.conn->send(cmd({"PING"}), 1, &before);
    f.conn->set_stream_sink(&sink);
    f.conn->send(cmd({"SUBSCRIBE", "ch"}), 0, nullptr);
    f.io.poll();
    CHECK(f.conn->in_flight() == 1);
    f.push("+PONG\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n");
    CHECK(before.replies.size() == 1);
    CHECK(sink.stream == std::vector<std::string>{"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
                                                  "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"});
    f.conn->set_stream_sink(nullptr);  // the sink goes before the connection does
}

TEST_CASE("connection: when the stream ends, what is pending fails after the replies that came, then it reconnects",
          "[backend][connection]") {
    fixture f;
    f.log_in();
    recorder a, b;
    std::vector<std::string> downs;
    f.conn->on_down([&](std::string_view why) { downs.emplace_back(why); });
    f.conn->send(cmd({"GET", "x"}) + cmd({"GET", "y"}), 2, &a);
    f.conn->send(cmd({"PING"}), 1, &b);
    f.io.poll();
    CHECK(f.stream->take_written() == cmd({"GET", "x"}) + cmd({"GET", "y"}) + cmd({"PING"}));
    f.push("$1\r\n1\r\n");
    f.stream->end();
    f.io.poll();
    CHECK(a.replies.size() == 1);
    CHECK(a.errors == std::vector<std::string>{"backend unavailable: connection closed by the backend"});
    CHECK(b.replies.empty());
    CHECK(b.errors == std::vector<std::string>{"backend unavailable: connection closed by the backend"});
    CHECK(downs == std::vector<std::string>{"connection closed by the backend"});
    // A connection that was working is retried at once, and logs in again.
    CHECK(f.stream->connects == 2);
    f.log_in(":8\r\n");
    CHECK(f.conn->backend_id() == 8);
}

TEST_CASE("connection: a reply nobody asked for, or bytes that are not RESP, end the socket",
          "[backend][connection]") {
    SECTION("unasked reply") {
        fixture f;
        f.log_in();
        f.push("+OK\r\n");
        CHECK(f.conn->last_error() == "a reply nobody asked for");
        CHECK(f.stream->connects == 2);
    }
    SECTION("not RESP") {
        fixture f;
        f.log_in();
        recorder a;
        f.conn->send(cmd({"PING"}), 1, &a);
        f.io.poll();
        f.push("%not resp\r\n");
        CHECK(a.errors.size() == 1);
        CHECK(a.errors[0].starts_with("backend unavailable: protocol error"));
    }
}

TEST_CASE("connection: select() sends SELECT only when the database changes; what follows a refused one gets "
          "its refusal", "[backend][connection]") {
    fixture f;
    f.log_in();
    f.conn->select(0);
    f.io.poll();
    CHECK(f.stream->take_written().empty());
    recorder a, b, c, d;
    f.conn->select(3);
    f.conn->send(cmd({"GET", "k"}), 1, &a);
    f.conn->send(cmd({"GET", "j"}), 1, &b);
    f.io.poll();
    CHECK(f.stream->take_written() == cmd({"SELECT", "3"}) + cmd({"GET", "k"}) + cmd({"GET", "j"}));
    CHECK(f.conn->selected_db() == 3);
    const std::string busy = "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
    // The GETs ran in database 0 (the script ended in between) or were refused: either way Redis's
    // refusal is their answer, and the socket stays.
    f.push(busy + "$1\r\nx\r\n" + busy);
    CHECK(a.replies == std::vector<std::pair<std::size_t, std::string>>{{0, busy}});
    CHECK(b.replies == std::vector<std::pair<std::size_t, std::string>>{{0, busy}});
    CHECK(a.errors.empty());
    CHECK(f.stream->connects == 1);
    // The database is unknown now: the next request selects again, even database 3.
    f.conn->select(3);
    f.conn->send(cmd({"GET", "k"}), 1, &c);
    f.conn->select(4);
    f.conn->send(cmd({"GET", "k"}), 1, &d);
    f.io.poll();
    CHECK(f.stream->take_written() == cmd({"SELECT", "3"}) + cmd({"GET", "k"}) + cmd({"SELECT", "4"}) + cmd({"GET", "k"}));
    // A refusal reaches only the requests up to the next SELECT.
    f.push(busy + busy + "+OK\r\n$1\r\nv\r\n");
    CHECK(c.replies == std::vector<std::pair<std::size_t, std::string>>{{0, busy}});
    CHECK(d.replies == std::vector<std::pair<std::size_t, std::string>>{{0, "$1\r\nv\r\n"}});
    CHECK(f.conn->selected_db() == 4);
}

TEST_CASE("connection: a refused AUTH at log-in is the connection's error", "[backend][connection]") {
    backend::connection_options o;
    o.address.password = "secret";
    fixture f(o);
    CHECK(f.stream->take_written() == cmd({"AUTH", "secret"}) + cmd({"CLIENT", "SETNAME", "t"}) + cmd({"CLIENT", "ID"}));
    f.stream->refuse = "Connection refused";  // and the next attempt cannot connect
    f.push("-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    CHECK(f.conn->state() == backend::link_state::down);
    CHECK(f.conn->last_error() == "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.");
    recorder a;
    f.conn->send(cmd({"PING"}), 1, &a);
    CHECK(a.errors.size() == 1);  // failed at once while down
}
