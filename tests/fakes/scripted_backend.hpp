#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/backend/link.hpp"
#include "respcache/backend/reply_matcher.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/io_buffer.hpp"

namespace respcache::fakes {

// A backend link whose Redis is the test: it records every byte sent to it, and the test answers with
// reply bytes (split however it likes) or fails it. Replies are matched to requests in FIFO order by the
// real backend::reply_matcher, stream mode included, so what a client core sees is what a real
// connection would hand it. Synchronous: a reply is delivered inside reply().
class scripted_link final : public backend::link {
public:
    explicit scripted_link(std::int64_t id) : id_(id) {}

    // ---- the test's side ----
    // Everything sent since the last call (the bytes Redis would have received).
    std::string take_sent() {
        std::string out;
        out.swap(sent_);
        return out;
    }
    const std::string& sent() const noexcept { return sent_; }
    // Bytes from Redis: delivers every complete reply in them (and keeps a partial one for later).
    void reply(std::string_view bytes) {
        in_.append(bytes);
        const std::string error = matcher_.feed(in_, stopped_);
        if (!error.empty()) fail("protocol error: " + error);
    }
    // The connection fails: every request still waiting gets on_error (the sink too).
    void fail(std::string_view reason) { matcher_.fail_all(backend::unavailable(reason)); }
    std::size_t waiting() const noexcept { return matcher_.waiting(); }
    bool closed() const noexcept { return state_ == backend::link_state::closed; }
    bool streaming() const noexcept { return matcher_.sink() != nullptr; }

    // ---- backend::link ----
    void send(std::string_view bytes, std::uint32_t replies, backend::request* r,
              std::chrono::milliseconds timeout) override {
        if (state_ == backend::link_state::closed) {
            if (r != nullptr) r->on_error(backend::unavailable("connection closed"));
            return;
        }
        matcher_.expect(r, replies, timeout, backend::reply_matcher::clock::now());
        sent_.append(bytes);
    }
    void send(std::string_view bytes, std::uint32_t replies, backend::request* r) override {
        send(bytes, replies, r, std::chrono::milliseconds(3000));
    }
    void select(std::uint32_t db) override {
        if (db == db_) return;
        db_ = db;
        std::string cmd;
        const std::string n = std::to_string(db);
        resp::write_command(cmd, {"SELECT", n});
        send(cmd, 1, nullptr);
    }
    std::uint32_t selected_db() const noexcept override { return db_; }
    void assume_selected(std::uint32_t db) noexcept override { db_ = db; }
    void set_stream_sink(backend::stream_sink* sink) noexcept override { matcher_.set_sink(sink); }
    backend::link_state state() const noexcept override { return state_; }
    std::size_t in_flight() const noexcept override { return matcher_.waiting(); }
    std::int64_t backend_id() const noexcept override { return id_; }
    std::uint64_t socket_id() const noexcept override { return 1; }
    resp::protocol protocol() const noexcept override { return proto_; }
    resp::protocol proto_ = resp::protocol::resp2;
    void close() override {
        if (state_ == backend::link_state::closed) return;
        state_ = backend::link_state::closed;
        stopped_ = true;
        matcher_.set_sink(nullptr);
        matcher_.fail_all(backend::unavailable("connection closed"));
    }

private:
    std::int64_t id_;
    backend::link_state state_ = backend::link_state::ready;
    backend::reply_matcher matcher_{resp::limits{}};
    io_buffer in_;
    std::string sent_;
    std::uint32_t db_ = 0;
    bool stopped_ = false;
};

// The links of one io thread, scripted: one shared link, and a new dedicated link for every
// acquire_dedicated (kept here so that the test can script and inspect it).
class scripted_pool final : public backend::link_pool {
public:
    scripted_link shared_link{1};
    scripted_link shared_resp3{2};  // the RESP3 clients' shared link
    std::vector<std::shared_ptr<scripted_link>> dedicated;  // in the order they were acquired
    std::vector<bool> released_clean;                       // what each release_dedicated said

    scripted_pool() { shared_resp3.proto_ = resp::protocol::resp3; }
    std::size_t shared_index(std::uint64_t, resp::protocol p) const noexcept override {
        return p == resp::protocol::resp3 ? 1 : 0;
    }
    backend::link& shared(std::size_t index) override { return index == 1 ? shared_resp3 : shared_link; }
    std::shared_ptr<backend::link> acquire_dedicated(resp::protocol p) override {
        dedicated.push_back(std::make_shared<scripted_link>(100 + static_cast<std::int64_t>(dedicated.size())));
        dedicated.back()->proto_ = p;
        return dedicated.back();
    }
    void release_dedicated(std::shared_ptr<backend::link> l, bool clean) override {
        released_clean.push_back(clean);
        if (l) l->close();
    }
    scripted_link& last_dedicated() { return *dedicated.back(); }
};

}  // namespace respcache::fakes
