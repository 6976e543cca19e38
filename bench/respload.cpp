// respload: a small RESP load generator that costs little per reply (bench/README.md, "respload").
//
// One thread, one epoll loop, -c connections, each sending batches of -P requests (the next batch once
// every reply of the previous one has arrived, as redis-benchmark -P does). The command is pre-encoded
// once as a RESP multibulk; each __rand_int__ in it is overwritten in place, per request, by 12 digits of
// a number drawn below -r (redis-benchmark's naming: h:000000000042). Replies are counted by a framer
// that walks their structure (arrays, maps, sets, pushes, attributes nested; bulk strings skipped by
// length; simple lines) without allocating or building anything per element. Error replies (-..., !...)
// are counted apart: a run with any is a failure (exit status 3). Latency per request, from the write of
// its batch to the read that completed its reply, goes into a fixed log-linear histogram (128 buckets
// per power of two: < 0.8% error).
//
// Output: one JSON line on stdout. Exit status: 0 ok, 1 bad usage, 2 connection failure (connect,
// closed by the server, protocol error), 3 error replies, 4 replies still missing at --timeout.
//
// usage: respload [--host H] [--port P | -p P] [-c clients] [-P pipeline] [--duration S | -n N]
//                 [-r keyspace] [--timeout S] [--seed N] COMMAND ARG...

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view kPlaceholder = "__rand_int__";  // 12 characters, replaced by 12 digits
constexpr int kMaxDepth = 64;                               // nesting of aggregates the framer follows
constexpr std::size_t kReadBuffer = 256 * 1024;             // per connection; a line must fit in it

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void die(int status, const std::string& msg) {
    std::fprintf(stderr, "respload: %s\n", msg.c_str());
    std::exit(status);
}

// --------------------------------------------------------------------------------------------------
// Latency histogram: values in ns; exact below 128 ns, then 128 buckets per power of two.
class Histogram {
public:
    void add(std::uint64_t ns) {
        ++counts_[index(ns)];
        ++total_;
        sum_ += ns;
        if (ns > max_) max_ = ns;
    }
    std::uint64_t total() const { return total_; }
    double mean_ns() const { return total_ ? double(sum_) / double(total_) : 0.0; }
    std::uint64_t max_ns() const { return max_; }
    // The value at quantile q (0..1), nearest rank, as its bucket's midpoint.
    double quantile_ns(double q) const {
        if (total_ == 0) return 0.0;
        std::uint64_t rank = std::uint64_t(q * double(total_));
        if (rank < 1) rank = 1;
        if (rank > total_) rank = total_;
        std::uint64_t seen = 0;
        for (int i = 0; i < kBuckets; ++i) {
            seen += counts_[i];
            if (seen >= rank) return midpoint(i);
        }
        return double(max_);
    }

private:
    static constexpr int kSub = 128;
    static constexpr int kBuckets = 58 * kSub;
    static int index(std::uint64_t ns) {
        if (ns < kSub) return int(ns);
        int shift = std::bit_width(ns) - 8;  // ns >> shift is in [128, 256)
        return (shift + 1) * kSub + int((ns >> shift) & (kSub - 1));
    }
    static double midpoint(int i) {
        if (i < kSub) return i;
        int shift = i / kSub - 1;
        double low = double(std::uint64_t(kSub + i % kSub) << shift);
        return low + double(std::uint64_t(1) << shift) / 2.0;
    }
    std::uint64_t counts_[kBuckets] = {};
    std::uint64_t total_ = 0, sum_ = 0, max_ = 0;
};

// --------------------------------------------------------------------------------------------------
// A resumable RESP2/RESP3 framer: feed() consumes bytes and reports each complete top-level reply.
// It keeps no reply data, only the remaining element count of each open aggregate and the bytes of a
// bulk body still to skip; an unfinished line stays in the caller's buffer (feed returns where it
// stopped).
class Framer {
public:
    struct Counts {
        std::uint64_t replies = 0, errors = 0;
    };

    // Consumes [p, end); returns how far it got (a partial line is left at the end), or nullptr on a
    // protocol error (message in error()). on_reply(is_error) runs once per complete top-level reply
    // (pushes excluded); on_error_text(text) once per top-level simple error line.
    template <class OnReply, class OnErrorText>
    const char* feed(const char* p, const char* end, OnReply&& on_reply, OnErrorText&& on_error_text) {
        while (p < end) {
            if (skip_ > 0) {  // inside a bulk body (+ its CRLF)
                std::size_t n = std::size_t(end - p) < skip_ ? std::size_t(end - p) : skip_;
                p += n;
                skip_ -= n;
                if (skip_ == 0) element_done(on_reply);
                continue;
            }
            const char* nl = static_cast<const char*>(std::memchr(p, '\n', std::size_t(end - p)));
            if (nl == nullptr) return p;  // the rest of this line has not arrived
            if (nl == p || nl[-1] != '\r') return fail("line not ended by CRLF");
            const char type = *p;
            const char* body = p + 1;
            const char* body_end = nl - 1;
            p = nl + 1;
            switch (type) {
            case '-':
                if (depth_ == 0) {
                    top_error_ = true;
                    on_error_text(std::string_view(body, std::size_t(body_end - body)));
                }
                element_done(on_reply);
                break;
            case '+': case ':': case '_': case ',': case '#': case '(':
                element_done(on_reply);
                break;
            case '$': case '=': case '!': {
                long long len;
                if (!number(body, body_end, len)) return fail("bad bulk length");
                if (type == '!' && depth_ == 0) {
                    top_error_ = true;
                    on_error_text("(blob error)");
                }
                if (len < 0) element_done(on_reply);  // null
                else skip_ = std::size_t(len) + 2;     // the body and its CRLF
                break;
            }
            case '*': case '~': case '>': case '%': case '|': {
                long long n;
                if (!number(body, body_end, n)) return fail("bad aggregate length");
                if (type == '%' || type == '|') n *= 2;
                const bool attribute = type == '|';
                const bool push = type == '>' && depth_ == 0;
                if (n <= 0) {
                    if (!attribute) element_done(on_reply, push);
                    break;
                }
                if (depth_ == kMaxDepth) return fail("aggregates nested too deep");
                stack_[depth_++] = Level{std::uint64_t(n), attribute, push};
                break;
            }
            default:
                return fail("unknown reply type byte");
            }
        }
        return p;
    }

    const char* error() const { return error_; }

private:
    struct Level {
        std::uint64_t remaining;
        bool attribute;  // |: metadata before a value, not an element of its own
        bool push;       // a top-level push: out of band, not a reply
    };

    template <class OnReply>
    void element_done(OnReply& on_reply, bool push = false) {
        while (depth_ > 0) {
            Level& top = stack_[depth_ - 1];
            if (--top.remaining > 0) return;
            --depth_;
            push = top.push;
            if (top.attribute) return;  // the value it annotates is still to come
        }
        if (!push) on_reply(top_error_);
        top_error_ = false;
    }

    static bool number(const char* b, const char* e, long long& out) {
        bool neg = false;
        if (b < e && *b == '-') {
            neg = true;
            ++b;
        }
        if (b == e || e - b > 18) return false;
        long long v = 0;
        for (; b < e; ++b) {
            if (*b < '0' || *b > '9') return false;
            v = v * 10 + (*b - '0');
        }
        out = neg ? -v : v;
        return true;
    }

    const char* fail(const char* msg) {
        error_ = msg;
        return nullptr;
    }

    Level stack_[kMaxDepth];
    int depth_ = 0;
    std::size_t skip_ = 0;
    bool top_error_ = false;
    const char* error_ = "";
};

// --------------------------------------------------------------------------------------------------

struct Options {
    std::string host = "127.0.0.1";
    int port = 6379;
    int clients = 50;
    int pipeline = 1;
    double duration = 0;     // seconds; 0 with requests == 0: 5 s
    std::uint64_t requests = 0;
    std::uint64_t keyspace = 0;  // -r; 0: __rand_int__ is left as 000000000000
    double timeout = 0;      // hard bound on the whole run; 0: derived
    std::uint64_t seed = 0;
    bool seeded = false;
    std::vector<std::string> command;
};

void usage() {
    std::fprintf(stderr,
                 "usage: respload [--host H] [--port P | -p P] [-c clients] [-P pipeline]\n"
                 "                [--duration S | -n requests] [-r keyspace] [--timeout S] [--seed N]\n"
                 "                COMMAND ARG...   (each __rand_int__ becomes 12 digits below -r, per request)\n");
}

Options parse(int argc, char** argv) {
    Options o;
    int i = 1;
    auto value = [&](const char* name) -> std::string {
        if (i + 1 >= argc) {
            usage();
            die(1, std::string(name) + " needs a value");
        }
        return argv[++i];
    };
    auto integer = [&](const char* name, long long lo) -> long long {
        std::string v = value(name);
        char* end = nullptr;
        errno = 0;
        long long x = std::strtoll(v.c_str(), &end, 10);
        if (errno || end == v.c_str() || *end || x < lo) die(1, std::string(name) + ": bad value " + v);
        return x;
    };
    auto real = [&](const char* name) -> double {
        std::string v = value(name);
        char* end = nullptr;
        double x = std::strtod(v.c_str(), &end);
        if (end == v.c_str() || *end || !(x > 0)) die(1, std::string(name) + ": bad value " + v);
        return x;
    };
    for (; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--host" || a == "-h") o.host = value("--host");
        else if (a == "--port" || a == "-p") o.port = int(integer("--port", 1));
        else if (a == "-c") o.clients = int(integer("-c", 1));
        else if (a == "-P") o.pipeline = int(integer("-P", 1));
        else if (a == "--duration") o.duration = real("--duration");
        else if (a == "-n") o.requests = std::uint64_t(integer("-n", 1));
        else if (a == "-r") o.keyspace = std::uint64_t(integer("-r", 1));
        else if (a == "--timeout") o.timeout = real("--timeout");
        else if (a == "--seed") {
            o.seed = std::uint64_t(integer("--seed", 0));
            o.seeded = true;
        } else if (a == "--help") {
            usage();
            std::exit(0);
        } else if (a.size() > 1 && a[0] == '-') {
            usage();
            die(1, "unknown option " + std::string(a));
        } else break;
    }
    for (; i < argc; ++i) o.command.emplace_back(argv[i]);
    if (o.command.empty()) {
        usage();
        die(1, "no command given");
    }
    if (o.port > 65535) die(1, "--port: out of range");
    if (o.keyspace > 1000000000000ULL) die(1, "-r: at most 10^12 (12 digits)");
    if (o.duration == 0 && o.requests == 0) o.duration = 5;
    if (o.timeout == 0) o.timeout = (o.duration > 0 ? o.duration : 0) + (o.requests ? 300 : 30);
    return o;
}

// The command as RESP, and where each __rand_int__ sits in it.
struct Template {
    std::string bytes;
    std::vector<std::size_t> slots;
};

Template encode(const std::vector<std::string>& args) {
    Template t;
    t.bytes = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args) {
        t.bytes += "$" + std::to_string(a.size()) + "\r\n";
        std::size_t base = t.bytes.size();
        for (std::size_t at = a.find(kPlaceholder); at != std::string::npos;
             at = a.find(kPlaceholder, at + kPlaceholder.size()))
            t.slots.push_back(base + at);
        t.bytes += a;
        t.bytes += "\r\n";
    }
    return t;
}

int connect_to(const Options& o) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &res);
    if (rc != 0) die(2, "cannot resolve " + o.host + ": " + gai_strerror(rc));
    int fd = -1, err = 0;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        err = errno;
        ::close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) die(2, "cannot connect to " + o.host + ":" + std::to_string(o.port) + ": " + std::strerror(err));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

struct Conn {
    int fd = -1;
    std::string out;          // the batch being written
    std::size_t out_off = 0;
    bool want_write = false;  // EPOLLOUT registered (a write was partial)
    std::vector<char> in;
    std::size_t in_len = 0;   // bytes in `in`; an unfinished line from in[0]
    Framer framer;
    std::uint64_t in_flight = 0;  // replies of the current batch still to come
    std::int64_t batch_sent_ns = 0;
};

std::string json_string(std::string_view s) {
    std::string r = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            r += '\\';
            r += char(c);
        } else if (c < 0x20 || c >= 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            r += buf;
        } else r += char(c);
    }
    return r + "\"";
}

}  // namespace

int main(int argc, char** argv) {
    const std::int64_t process_start = now_ns();  // its CPU share counts the connects too
    const Options o = parse(argc, argv);
    const Template tpl = encode(o.command);
    std::mt19937_64 rng(o.seeded ? o.seed : std::random_device{}());
    std::uniform_int_distribution<std::uint64_t> draw(0, o.keyspace ? o.keyspace - 1 : 0);

    std::vector<Conn> conns(std::size_t(o.clients));
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die(2, std::string("epoll_create1: ") + std::strerror(errno));
    for (std::size_t i = 0; i < conns.size(); ++i) {
        Conn& c = conns[i];
        c.fd = connect_to(o);
        c.in.resize(kReadBuffer);
        c.out.reserve(tpl.bytes.size() * std::size_t(o.pipeline));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) < 0) die(2, std::string("epoll_ctl: ") + std::strerror(errno));
    }

    Histogram hist;
    std::uint64_t issued = 0, replies = 0, errors = 0;
    std::string first_error;
    const std::int64_t start = now_ns();
    const std::int64_t stop_issuing = o.duration > 0 ? start + std::int64_t(o.duration * 1e9) : INT64_MAX;
    const std::int64_t hard_stop = start + std::int64_t(o.timeout * 1e9);
    std::int64_t last_reply = start;
    std::size_t busy = 0;  // connections with a batch in flight

    auto set_write_interest = [&](std::size_t i, bool on) {
        Conn& c = conns[i];
        if (c.want_write == on) return;
        epoll_event ev{};
        ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
        ev.data.u64 = i;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        c.want_write = on;
    };
    auto flush = [&](std::size_t i) {
        Conn& c = conns[i];
        while (c.out_off < c.out.size()) {
            ssize_t w = ::write(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off);
            if (w > 0) {
                c.out_off += std::size_t(w);
            } else if (w < 0 && errno == EINTR) {
                continue;
            } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                set_write_interest(i, true);
                return;
            } else {
                die(2, std::string("write: ") + std::strerror(errno));
            }
        }
        set_write_interest(i, false);
    };
    // Starts connection i's next batch, unless the run has stopped issuing; returns whether it did.
    auto start_batch = [&](std::size_t i, std::int64_t now) -> bool {
        if (now >= stop_issuing) return false;
        std::uint64_t n = std::uint64_t(o.pipeline);
        if (o.requests) {
            if (issued >= o.requests) return false;
            if (o.requests - issued < n) n = o.requests - issued;
        }
        Conn& c = conns[i];
        c.out.clear();
        c.out_off = 0;
        for (std::uint64_t k = 0; k < n; ++k) {
            std::size_t base = c.out.size();
            c.out += tpl.bytes;
            for (std::size_t slot : tpl.slots) {
                std::uint64_t x = draw(rng);
                char* d = c.out.data() + base + slot;
                for (int j = 11; j >= 0; --j, x /= 10) d[j] = char('0' + x % 10);
            }
        }
        issued += n;
        c.in_flight = n;
        c.batch_sent_ns = now;
        ++busy;
        flush(i);
        return true;
    };

    for (std::size_t i = 0; i < conns.size(); ++i) start_batch(i, start);

    std::vector<epoll_event> events(conns.size());
    bool timed_out = false;
    while (busy > 0) {
        std::int64_t now = now_ns();
        if (now >= hard_stop) {
            timed_out = true;
            break;
        }
        std::int64_t wait_ms = (hard_stop - now) / 1000000 + 1;
        if (stop_issuing != INT64_MAX && now < stop_issuing) wait_ms = std::min<std::int64_t>(wait_ms, (stop_issuing - now) / 1000000 + 1);
        int ready = ::epoll_wait(ep, events.data(), int(events.size()), int(std::min<std::int64_t>(wait_ms, 1000)));
        if (ready < 0) {
            if (errno == EINTR) continue;
            die(2, std::string("epoll_wait: ") + std::strerror(errno));
        }
        for (int e = 0; e < ready; ++e) {
            const std::size_t i = events[e].data.u64;
            Conn& c = conns[i];
            if (events[e].events & EPOLLOUT) flush(i);
            if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t r = ::read(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
                die(2, std::string("read: ") + std::strerror(errno));
            }
            if (r == 0) die(2, "connection closed by the server");
            const std::int64_t t = now_ns();  // every reply completed by this read arrived now
            c.in_len += std::size_t(r);
            std::uint64_t done = 0;
            const char* begin = c.in.data();
            const char* stop = c.framer.feed(
                begin, begin + c.in_len,
                [&](bool is_error) {
                    ++done;
                    if (is_error) ++errors;
                },
                [&](std::string_view text) {
                    if (first_error.empty()) first_error.assign(text.substr(0, 200));
                });
            if (stop == nullptr) die(2, std::string("protocol error: ") + c.framer.error());
            std::size_t left = std::size_t(begin + c.in_len - stop);
            if (left == c.in.size()) die(2, "a reply line longer than the read buffer");
            if (left) std::memmove(c.in.data(), stop, left);
            c.in_len = left;
            if (done == 0) continue;
            if (done > c.in_flight) die(2, "more replies than requests (unsolicited replies?)");
            for (std::uint64_t k = 0; k < done; ++k) hist.add(std::uint64_t(t - c.batch_sent_ns));
            replies += done;
            c.in_flight -= done;
            last_reply = t;
            if (c.in_flight == 0) {
                --busy;
                start_batch(i, t);
            }
        }
    }

    const double seconds = double(last_reply - start) / 1e9;
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    const double user = double(ru.ru_utime.tv_sec) + double(ru.ru_utime.tv_usec) / 1e6;
    const double sys = double(ru.ru_stime.tv_sec) + double(ru.ru_stime.tv_usec) / 1e6;
    const double wall = double(now_ns() - process_start) / 1e9;
    std::printf("{\"requests\":%llu,\"seconds\":%.6f,\"rps\":%.2f,\"errors\":%llu,\"first_error\":%s,"
                "\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f,\"avg_ms\":%.4f,"
                "\"clients\":%d,\"pipeline\":%d,\"issued\":%llu,\"timed_out\":%s,"
                "\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_share\":%.3f}\n",
                (unsigned long long)replies, seconds, seconds > 0 ? double(replies) / seconds : 0.0,
                (unsigned long long)errors, first_error.empty() ? "null" : json_string(first_error).c_str(),
                hist.quantile_ns(0.50) / 1e6, hist.quantile_ns(0.99) / 1e6, hist.quantile_ns(0.999) / 1e6,
                double(hist.max_ns()) / 1e6, hist.mean_ns() / 1e6, o.clients, o.pipeline,
                (unsigned long long)issued, timed_out ? "true" : "false", user, sys,
                wall > 0 ? (user + sys) / wall : 0.0);
    std::fflush(stdout);
    for (Conn& c : conns) ::close(c.fd);
    ::close(ep);
    if (timed_out) {
        std::fprintf(stderr, "respload: %llu replies still missing after --timeout %gs\n",
                     (unsigned long long)(issued - replies), o.timeout);
        return 4;
    }
    if (errors) {
        std::fprintf(stderr, "respload: %llu error replies, first: %s\n", (unsigned long long)errors,
                     first_error.c_str());
        return 3;
    }
    return 0;
}
