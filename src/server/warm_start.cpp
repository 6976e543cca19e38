#include "respcache/server/warm_start.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include <boost/asio/post.hpp>

#include "respcache/proxy/client_core.hpp"
#include "respcache/resp/parser.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/server/services.hpp"
#include "respcache/server/worker.hpp"
#include "respcache/util/log.hpp"

namespace respcache::server {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kHeader = "respcache-warm 1\n";
constexpr std::string_view kTrailer = "end ";

std::uint64_t fnv1a(std::string_view bytes) noexcept {
    std::uint64_t h = 14695981039346656037ULL;
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
    return h;
}

std::string trailer(std::size_t count, std::uint64_t hash) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "end %zu %016llx\n", count, static_cast<unsigned long long>(hash));
    return buf;
}

template <typename T>
bool whole_number(std::string_view s, T& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

// The reads of the body (the bytes between header and trailer), or nullopt with `error`.
std::optional<std::vector<warm_read>> decode_body(std::string_view body, std::size_t count, std::string& error) {
    std::vector<warm_read> reads;
    resp::request_parser parser;
    while (!body.empty()) {
        const resp::parse_result r = parser.parse(body);
        const auto args = parser.args();
        unsigned db = 0, proto = 0;
        if (r.status != resp::parse_status::done || args.size() < 4 || !whole_number(args[0], db) || db > 255 ||
            !whole_number(args[1], proto) || (proto != 2 && proto != 3)) {
            error = "read " + std::to_string(reads.size() + 1) + " is not well formed";
            return std::nullopt;
        }
        warm_read w;
        w.db = db;
        w.read.proto = static_cast<resp::protocol>(proto);
        for (std::size_t i = 2; i < args.size(); ++i) w.read.args.emplace_back(args[i]);
        reads.push_back(std::move(w));
        body.remove_prefix(r.consumed);
    }
    if (reads.size() != count) {
        error = "it holds " + std::to_string(reads.size()) + " reads, its trailer says " + std::to_string(count);
        return std::nullopt;
    }
    return reads;
}

}  // namespace

std::string encode_warm_file(const std::vector<warm_read>& reads) {
    std::string body;
    std::vector<std::string_view> args;
    for (const warm_read& w : reads) {
        const std::string db = std::to_string(w.db);
        const std::string proto = std::to_string(static_cast<int>(w.read.proto));
        args.assign({db, proto});
        for (const auto& a : w.read.args) args.emplace_back(a);
        resp::write_command(body, args);
    }
    return std::string(kHeader) + body + trailer(reads.size(), fnv1a(body));
}

std::optional<std::vector<warm_read>> decode_warm_file(std::string_view bytes, std::string& error) {
    if (!bytes.starts_with(kHeader)) {
        error = "it does not begin with \"respcache-warm 1\"";
        return std::nullopt;
    }
    bytes.remove_prefix(kHeader.size());
    const std::size_t at = bytes.rfind(kTrailer);
    std::size_t count = 0;
    std::uint64_t hash = 0;
    const std::string_view tail = at == std::string_view::npos ? std::string_view() : bytes.substr(at);
    const std::size_t space = tail.find(' ', kTrailer.size());
    if (at == std::string_view::npos || !tail.ends_with('\n') || space == std::string_view::npos ||
        !whole_number(tail.substr(kTrailer.size(), space - kTrailer.size()), count) ||
        std::from_chars(tail.data() + space + 1, tail.data() + tail.size() - 1, hash, 16).ec != std::errc() ||
        tail != trailer(count, hash)) {
        error = "it is truncated (no trailer)";
        return std::nullopt;
    }
    const std::string_view body = bytes.substr(0, at);
    if (fnv1a(body) != hash) {
        error = "its contents do not match its hash";
        return std::nullopt;
    }
    return decode_body(body, count, error);
}

std::vector<warm_read> hottest_reads(const cache::lru_cache& cache, const command::cache_plan& plan, std::size_t max) {
    std::vector<warm_read> out;
    for (const auto& k : cache.hottest(max))
        if (auto read = command::read_of_entry(plan, k.name, k.variant)) out.push_back({k.db, std::move(*read)});
    return out;
}

bool write_file_atomically(const std::string& path, std::string_view bytes, std::string& error) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = std::strerror(errno);
        return false;
    }
    bool ok = true;
    for (std::size_t done = 0; ok && done < bytes.size();) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) done += static_cast<std::size_t>(n);
    }
    ok = ok && ::fsync(fd) == 0;
    if (!ok) error = std::strerror(errno);
    ::close(fd);
    if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
        error = std::strerror(errno);
        ok = false;
    }
    if (!ok) ::unlink(tmp.c_str());
    return ok;
}

// A client core with no socket, fed the reads of one protocol as a client would send them; what it
// answers is dropped (the fills are what matters).
class warm_start::replayer {
public:
    replayer(worker& w, std::string input, std::function<void()> finished)
        : io_(w.io()),
          core_(w.environment(), info(), [this] { asio::post(io_, [this] { step(); }); }),
          input_(std::move(input)),
          finished_(std::move(finished)) {}

    void step() {
        if (done_) return;
        for (;;) {
            const auto next = core_.advance();
            std::string out;
            core_.replies().take_output(out);
            core_.replies().written();
            using n = proxy::client_core::next;
            if (next == n::proceed) continue;
            if (next == n::wait || next == n::watch) return;
            if (next != n::close && fed_ < input_.size()) {
                const std::size_t chunk = std::min<std::size_t>(64 * 1024, input_.size() - fed_);
                core_.input().append(std::string_view(input_).substr(fed_, chunk));
                fed_ += chunk;
                core_.bytes_arrived();
                continue;
            }
            if (core_.outstanding() > 0) return;
            done_ = true;
            finished_();
            return;
        }
    }

private:
    static std::shared_ptr<command::client_info> info() {
        auto i = std::make_shared<command::client_info>();
        i->name = "respcache-warm-start";
        return i;
    }

    asio::io_context& io_;
    proxy::client_core core_;
    std::string input_;
    std::size_t fed_ = 0;
    bool done_ = false;
    std::function<void()> finished_;
};

warm_start::warm_start(worker& w, services& svc) : worker_(w), svc_(svc), timer_(w.io()) {}

warm_start::~warm_start() = default;

void warm_start::start() {
    const std::string& path = svc_.startup_config().warm_file;
    std::ifstream in(path, std::ios::binary);
    std::vector<warm_read> reads;
    if (!in) {
        log::warn("warm start: no warm file, starting cold", {{"path", path}});
    } else {
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::string error;
        if (auto decoded = decode_warm_file(bytes, error))
            reads = std::move(*decoded);
        else
            log::warn("warm start: the warm file is unusable, starting cold", {{"path", path}, {"reason", error}});
    }
    if (reads.empty()) {
        schedule_save();
        return;
    }
    svc_.set_warming(true);
    wait_until_ready(std::move(reads), std::chrono::steady_clock::now() + 10 * svc_.startup_config().connect_timeout);
}

// The reads are sent once the backend is up and (with tracking) the invalidation channel live, so that
// they fill the cache; if that takes too long, they are left out.
void warm_start::wait_until_ready(std::vector<warm_read> reads, std::chrono::steady_clock::time_point give_up) {
    std::string why;
    const bool ready = svc_.backend_ready(why);
    if (ready && svc_.plan()->table() != nullptr) return replay(std::move(reads));
    if (ready) why = "the backend's command table is not known yet";
    if (std::chrono::steady_clock::now() >= give_up) {
        log::warn("warm start: the backend is not ready, starting cold", {{"reason", why}});
        svc_.set_warming(false);
        return schedule_save();
    }
    timer_.expires_after(std::chrono::milliseconds(20));
    timer_.async_wait([this, reads = std::move(reads), give_up](boost::system::error_code ec) mutable {
        if (!ec && !stopped_) wait_until_ready(std::move(reads), give_up);
    });
}

void warm_start::replay(std::vector<warm_read> reads) {
    began_ = std::chrono::steady_clock::now();
    reads_ = reads.size();
    std::stable_sort(reads.begin(), reads.end(), [](const warm_read& a, const warm_read& b) { return a.db < b.db; });
    const std::string password = svc_.startup_config().requirepass;
    for (const auto proto : {resp::protocol::resp2, resp::protocol::resp3}) {
        std::string input;
        if (!password.empty()) resp::write_command(input, {"AUTH", password});
        if (proto == resp::protocol::resp3) resp::write_command(input, {"HELLO", "3"});
        std::uint32_t db = svc_.settings().start_db;
        bool any = false;
        for (const warm_read& w : reads) {
            if (w.read.proto != proto) continue;
            if (w.db != db) resp::write_command(input, {"SELECT", std::to_string(db = w.db)});
            std::vector<std::string_view> args(w.read.args.begin(), w.read.args.end());
            resp::write_command(input, args);
            any = true;
        }
        if (!any) continue;
        ++pending_;
        replayers_.push_back(std::make_unique<replayer>(worker_, std::move(input), [this] { replayed(); }));
    }
    for (auto& r : replayers_) r->step();
}

void warm_start::replayed() {
    if (--pending_ > 0) return;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began_);
    log::info("warm start: saved reads fetched again", {{"reads", reads_},
                                                        {"cached_keys", svc_.cache().stats().entries},
                                                        {"ms", static_cast<std::int64_t>(ms.count())}});
    svc_.set_warming(false);
    schedule_save();
}

void warm_start::schedule_save() {
    if (stopped_) return;
    timer_.expires_after(svc_.startup_config().warm_interval);
    timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped_) return;
        save_now();
        schedule_save();
    });
}

void warm_start::save_now() {
    const config& cfg = svc_.startup_config();
    const auto reads = hottest_reads(svc_.cache(), *svc_.plan(), cfg.warm_keys);
    std::string error;
    if (write_file_atomically(cfg.warm_file, encode_warm_file(reads), error))
        log::info("warm file saved", {{"path", cfg.warm_file}, {"reads", reads.size()}});
    else
        log::warn("warm file not saved", {{"path", cfg.warm_file}, {"error", error}});
}

void warm_start::stop() {
    if (stopped_) return;
    stopped_ = true;
    timer_.cancel();
    save_now();
}

}  // namespace respcache::server
