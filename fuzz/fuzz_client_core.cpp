// The client core (proxy::client_core) driven by a script of what its client and its Redis do, with
// the unit tests' fakes around it: scripted backend links (the real reply matcher behind them), a fake
// host with Redis 7's command table, a real cache and coherence tracker. The harness plays the I/O
// shell (server::session) as it behaves: the client's bytes reach the core only while the core reads,
// a wait ends only when the core was woken, nothing is advanced after close, and the core is destroyed
// only once no link holds a request of it.
//
// Input: byte 0 picks the set-up (bit 0 tracking invalidation, bit 1 strict consistency, bit 2
// --requirepass, bit 3 a small output buffer limit); then a script of steps, each an opcode byte and
// its operands (see step()). Every byte the client is sent must be a well-formed RESP stream.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/core_fixture.hpp"
#include "respcache/resp/reply_framer.hpp"
#include "respcache/util/log.hpp"
#include "stream_feed.hpp"

using namespace respcache;
using fuzzing::require;
using tests::next;

namespace {

// Replies a Redis could give, for the step that answers one request with a well-formed reply.
constexpr std::string_view canned_replies[] = {
    "+OK\r\n", "$-1\r\n", "$3\r\nabc\r\n", ":1\r\n", ":0\r\n", ":-1\r\n", ":-2\r\n", ":5000\r\n",
    "-ERR unknown command\r\n", "+QUEUED\r\n", "*-1\r\n", "*0\r\n", "*2\r\n$1\r\na\r\n:1\r\n", "+PONG\r\n",
    "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n",
    "*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n", "+1700000000.000000 [0 127.0.0.1:1] \"get\" \"k\"\r\n",
    "_\r\n", "%1\r\n+server\r\n+redis\r\n", ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n",
    ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", "-NOAUTH Authentication required.\r\n",
    "-NOPERM User has no permissions to run the 'get' command\r\n", "-BUSY Redis is busy running a script.\r\n",
    "*2\r\n+OK\r\n$3\r\nnew\r\n", "-EXECABORT Transaction discarded because of previous errors.\r\n",
    "$10\r\n0123456789\r\n", "*1\r\n*3\r\n:1\r\n:2\r\n:3\r\n", "~1\r\n$1\r\na\r\n",
};

// Reads the script: each read past the end gives 0.
class script {
public:
    script(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    bool done() const noexcept { return at_ >= size_; }
    std::uint8_t byte() noexcept { return at_ < size_ ? data_[at_++] : 0; }
    std::string_view bytes(std::size_t n) noexcept {
        n = std::min(n, size_ - std::min(at_, size_));
        const std::string_view out(reinterpret_cast<const char*>(data_) + at_, n);
        at_ += n;
        return out;
    }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t at_ = 0;
};

class shell {
public:
    explicit shell(std::uint8_t setup)
        : f_(setup & 1 ? coherence::invalidation_mode::tracking : coherence::invalidation_mode::ttl,
             setup & 2 ? coherence::consistency_mode::strict : coherence::consistency_mode::bounded) {
        if (setup & 1) {
            f_.coherence.state().live = true;
            f_.coherence.state().redirect_id = 42;
        }
        if (setup & 4) {
            f_.settings.password_required = true;
            f_.host.password = "pw";
        }
        if (setup & 8) f_.settings.output_buffer_limit = 256;
        // The fixture made its core before the settings changed; this one sees them.
        f_.core = f_.new_core(8);
    }

    void step(script& s);
    void end();

private:
    enum class parked { running, reading, waiting, watching, closed };

    fakes::scripted_link* link(std::uint8_t which) {
        switch (which % 4) {
            case 0: return &f_.links.shared_link;
            case 1: return &f_.links.shared_resp3;
            default:
                if (f_.links.dedicated.empty()) return nullptr;
                return f_.links.dedicated[(which / 4) % f_.links.dedicated.size()].get();
        }
    }
    bool woken() {
        const bool w = f_.wakes != wakes_seen_;
        wakes_seen_ = f_.wakes;
        return w;
    }
    void deliver() {
        const std::size_t n = std::min<std::size_t>(socket_.size(), 4096);
        f_.core->input().append(std::string_view(socket_).substr(0, n));
        socket_.erase(0, n);
        f_.core->bytes_arrived();
    }
    void take_output();
    bool resume();
    void run();

    tests::core_fixture f_;
    std::string socket_;  // what the client sent that the core has not read yet
    bool eof_ = false;
    parked at_ = parked::running;
    int wakes_seen_ = 0;
    std::string client_bytes_;  // what the client received, not yet framed
    resp::reply_framer client_framer_;
};

void shell::take_output() {
    std::string out;
    f_.core->replies().take_output(out);
    f_.core->replies().written();
    client_bytes_.append(out);
    for (;;) {
        const resp::frame_result r = client_framer_.next(client_bytes_);
        require(r.status != resp::frame_status::error, "the client was sent bytes that are not RESP");
        if (r.status == resp::frame_status::need_more) return;
        client_bytes_.erase(0, r.length);
    }
}

// What session::serve does with each answer of advance(), until it would park.
void shell::run() {
    for (int spins = 0;; ++spins) {
        require(spins < 200000, "advance() keeps asking to go on without any new event");
        const next n = f_.core->advance();
        take_output();
        switch (n) {
            case next::read:
                if (!socket_.empty()) deliver();
                else if (eof_) f_.core->finish();
                else return void(at_ = parked::reading);
                break;
            case next::read_now:
                if (!socket_.empty()) deliver();
                else f_.core->finish();
                break;
            case next::wait:
                if (!woken()) return void(at_ = parked::waiting);
                break;
            case next::watch:
                if (woken()) break;
                if (!socket_.empty()) deliver();
                else if (eof_) f_.core->client_gone();
                else return void(at_ = parked::watching);
                break;
            case next::proceed: break;
            case next::close:
                // session::finish: write what is queued, let go of every link.
                at_ = parked::closed;
                f_.core->release_links();
                return;
        }
    }
}

// Whether what happened ends the shell's park.
bool shell::resume() {
    const bool input = !socket_.empty() || eof_;
    switch (at_) {
        case parked::reading: return input;
        case parked::waiting: return woken();
        case parked::watching: return woken() || input;
        case parked::running: return true;
        case parked::closed: return false;
    }
    return false;
}

// One step of the script: the opcode's low 3 bits say what happens, the others which link.
void shell::step(script& s) {
    const std::uint8_t op = s.byte();
    const std::uint8_t which = op >> 3;
    switch (op & 7) {
        case 0: socket_.append(s.bytes(s.byte())); break;  // the client sends up to 255 bytes
        case 1:                                               // Redis sends raw bytes on a link
            if (auto* l = link(which)) l->reply(s.bytes(s.byte()));
            break;
        case 2: {  // Redis answers one request on a link with a well-formed reply
            const std::string_view r = canned_replies[s.byte() % std::size(canned_replies)];
            if (auto* l = link(which)) l->reply(r);
            break;
        }
        case 3:  // a link fails
            if (auto* l = link(which)) l->fail("Connection reset by peer");
            break;
        case 4: eof_ = true; break;  // the client closes its side
        case 5:                      // time passes; posted work runs
            f_.clock.advance(static_cast<cache::millis>(s.byte()) * 100);
            f_.host.run_posted();
            break;
        case 6:
            if (at_ != parked::closed) f_.core->stop();
            break;
        case 7:
            if (at_ != parked::closed) f_.core->client_gone();
            break;
    }
    if (at_ != parked::closed && resume()) run();
}

// The client goes and every link fails: the core must close and be let go by every link.
void shell::end() {
    eof_ = true;
    if (at_ != parked::closed) {
        f_.core->client_gone();
        run();
    }
    f_.links.shared_link.fail("gone");
    f_.links.shared_resp3.fail("gone");
    for (auto& d : f_.links.dedicated) d->fail("gone");
    f_.host.run_posted();
    if (at_ != parked::closed && resume()) run();
    require(at_ == parked::closed, "the core did not close once its client and every link were gone");
    require(f_.core->outstanding() == 0, "a link still holds a request of a closed core");
}

}  // namespace

// The core logs what a daemon would (protocol errors, clients cut off): not wanted thousands of times a
// second.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level("off");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    shell sh(data[0]);
    script s(data + 1, size - 1);
    for (int steps = 0; !s.done() && steps < 512; ++steps) sh.step(s);
    sh.end();
    return 0;
}
