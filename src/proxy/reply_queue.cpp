#include "respcache/proxy/reply_queue.hpp"

namespace respcache::proxy {

// A reply made by the proxy itself behind one still waiting for Redis.
class reply_queue::local_slot final : public slot {
public:
    local_slot(slot_home& home, reply_queue&) : slot(home) {}
};

reply_queue::reply_queue() : locals_(*this) {}

void reply_queue::begin_command() noexcept {
    skip_saved_ = skip_next_;
    this_suppressed_ = off_ || skip_next_;
    skip_next_ = false;
}

void reply_queue::undo_begin() noexcept { skip_next_ = skip_saved_; }

void reply_queue::set_mode(command::reply_mode m) noexcept {
    if (m == command::reply_mode::on)
        off_ = skip_next_ = false;
    else if (m == command::reply_mode::off)
        off_ = true;
    else
        skip_next_ = true;
    this_suppressed_ = m != command::reply_mode::on;
}

void reply_queue::unsuppress() noexcept {
    off_ = false;
    skip_next_ = false;
    this_suppressed_ = false;
}

void reply_queue::settle_local() noexcept {
    if (last_local_ == nullptr) return;
    held_ += last_local_->data.size();
    last_local_->held = true;
    last_local_ = nullptr;
}

std::string& reply_queue::local_target() {
    settle_local();
    if (this_suppressed_) {
        scratch_.clear();
        return scratch_;
    }
    if (slots_.empty()) return out_;
    std::unique_ptr<local_slot> s = locals_.take();
    s->done = true;
    last_local_ = s.get();
    slots_.push_back(std::move(s));
    return last_local_->data;
}

void reply_queue::abandon_local() noexcept {
    if (last_local_ == nullptr || !last_local_->data.empty() || slots_.back().get() != last_local_) return;
    std::unique_ptr<slot> s = std::move(slots_.back());
    slots_.pop_back();
    last_local_ = nullptr;
    s->home().give_back(std::move(s));
}

void reply_queue::push(std::unique_ptr<slot> s) {
    settle_local();
    s->suppressed = this_suppressed_;
    slots_.push_back(std::move(s));
}

void reply_queue::push_unsolicited(std::string_view bytes) {
    if (discarding_) return;
    if (slots_.empty()) {
        out_.append(bytes);
        return;
    }
    settle_local();
    std::unique_ptr<local_slot> s = locals_.take();
    s->data.assign(bytes);
    s->done = true;
    s->held = true;
    held_ += s->data.size();
    slots_.push_back(std::move(s));
}

void reply_queue::finished(slot& s) {
    s.done = true;
    if (discarding_) {
        s.data.clear();
    } else if (slots_.empty() || slots_.front().get() != &s) {
        held_ += s.data.size();
        s.held = true;
    }
    drain();
}

void reply_queue::drain() {
    settle_local();
    while (!slots_.empty() && slots_.front()->done) {
        std::unique_ptr<slot> s = std::move(slots_.front());
        slots_.pop_front();
        if (s->held) held_ -= s->data.size();
        if (!s->suppressed && !discarding_) out_.append(s->data);
        s->home().give_back(std::move(s));
    }
}

void reply_queue::take_output(std::string& into) {
    into.clear();
    into.swap(out_);
    writing_ = into.size();
}

void reply_queue::discard() noexcept {
    discarding_ = true;
    settle_local();
    out_.clear();
    for (auto& s : slots_)
        if (s->done) s->data.clear();
    held_ = 0;
    for (auto& s : slots_) s->held = false;
}

}  // namespace respcache::proxy
