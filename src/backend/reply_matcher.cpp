#include "respcache/backend/reply_matcher.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "respcache/resp/reply_view.hpp"

namespace respcache::backend {

namespace {
bool is_tracking_push(std::string_view bytes) {
    const auto items = resp::elements(bytes);
    if (!items || items->empty()) return false;
    const auto kind = resp::string_value((*items)[0]);
    return kind && (*kind == "invalidate" || *kind == "tracking-redir-broken");
}
}  // namespace

std::string unavailable(std::string_view detail) { return "backend unavailable: " + std::string(detail); }

void reply_matcher::expect(request* r, std::uint32_t replies, milliseconds timeout, clock::time_point now) {
    if (sink_ != nullptr) return;
    if (pending_.empty()) last_progress_ = now;
    pending_.push_back({r, replies, 0, now, timeout, false, nullptr});
}

void reply_matcher::expect_first(request* r, std::uint32_t replies, milliseconds timeout, clock::time_point now) {
    last_progress_ = now;
    pending_.push_front({r, replies, 0, now, timeout, false, nullptr});
}

bool reply_matcher::deliver(std::string_view bytes) {
    // A RESP3 push is never the reply to a request: it goes to the sink; or nowhere when it is about
    // the link's tracking (a connection that tracks keys for a redirect hears "tracking-redir-broken"
    // when the redirect goes away); or else to the request it came ahead of.
    if (resp::is_push(bytes)) {
        if (sink_ != nullptr) {
            sink_->on_stream_reply(bytes);
        } else if (!pending_.empty() && pending_.front().target != nullptr && !is_tracking_push(bytes)) {
            pending_.front().target->on_push(bytes);
        }
        return true;
    }
    // Requests sent before stream mode began (the log-in, a SELECT) keep their replies; everything
    // after goes to the sink.
    if (pending_.empty()) {
        if (sink_ == nullptr) return false;
        sink_->on_stream_reply(bytes);
        return true;
    }
    pending& front = pending_.front();
    request* target = front.expired ? nullptr : front.target;
    const std::size_t index = front.next_index++;
    const std::shared_ptr<const std::string> replacement = front.replacement;
    if (--front.remaining == 0) {
        if (front.expired) --expired_front_;
        pending_.pop_front();
    }
    if (target != nullptr) target->on_reply(index, replacement ? std::string_view(*replacement) : bytes);
    return true;
}

std::string reply_matcher::feed(io_buffer& in, const bool& stop) {
    while (!stop) {
        const resp::frame_result fr = framer_.next(in.readable());
        if (fr.status == resp::frame_status::need_more) {
            if (sink_ != nullptr) sink_->on_stream_batch_end();
            return std::string();
        }
        if (fr.status == resp::frame_status::error) return "protocol error: " + framer_.error_text();
        const std::string_view bytes = in.readable().substr(0, fr.length);
        const bool wanted = deliver(bytes);
        in.consume(fr.length);
        if (!wanted) return "a reply nobody asked for";
    }
    return std::string();
}

void reply_matcher::fail_all(std::string_view reason) {
    std::deque<pending> failed;
    failed.swap(pending_);
    expired_front_ = 0;
    for (auto& p : failed)
        if (p.target != nullptr && !p.expired) p.target->on_error(reason);
    if (sink_ != nullptr) sink_->on_stream_error(reason);
}

std::size_t reply_matcher::expire(clock::time_point now) {
    // Marked first, told after: a request told may call back into the link (send, close, fail_all).
    std::vector<std::pair<request*, milliseconds>> late;
    for (std::size_t i = expired_front_; i < pending_.size(); ++i) {
        pending& p = pending_[i];
        if (p.timeout == milliseconds::max() || now - std::max(p.sent, last_progress_) <= p.timeout) break;
        p.expired = true;
        ++expired_front_;
        if (p.target != nullptr) late.emplace_back(p.target, p.timeout);
    }
    for (auto [target, timeout] : late) target->on_error(unavailable("no reply within " + std::to_string(timeout.count()) + "ms"));
    return late.size();
}

std::optional<reply_matcher::milliseconds> reply_matcher::silent(clock::time_point now, int factor) const noexcept {
    if (pending_.empty()) return std::nullopt;
    const pending& front = pending_.front();
    if (front.timeout == milliseconds::max()) return std::nullopt;
    if (now - std::max(front.sent, last_progress_) > front.timeout * factor) return front.timeout;
    return std::nullopt;
}

bool reply_matcher::replace_replies(request* until, std::string_view error) {
    auto shared = std::make_shared<const std::string>(error);
    for (pending& p : pending_) {
        if (p.target == until) return true;
        p.replacement = shared;
    }
    return false;
}

}  // namespace respcache::backend
