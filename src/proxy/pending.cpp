#include "respcache/proxy/pending.hpp"

#include <string>

#include "respcache/resp/reply_builder.hpp"

namespace respcache::proxy {

void pending::clear() {
    slot::clear();
    link = nullptr;
    client_index = 0;
    replies = 1;
    errored = false;
    got_reply = false;
    await_echo = false;
    keep_reply = false;
    parts_awaited = 0;
    link_done_ = false;
    pushed_.clear();
}

void pending::on_reply(std::size_t index, std::string_view bytes) {
    if (index < client_index) {
        prelude_reply(index, bytes);
    } else if (index == client_index) {
        if (keep_reply || !sink_->discarding()) data.assign(bytes);
        got_reply = true;
    } else {
        trailing_reply(index, bytes);
    }
    if (index + 1 == replies) link_finished();
}

void pending::deliver(std::string_view bytes, bool answered) {
    if (!sink_->discarding()) data.assign(bytes);
    errored = !answered;
    got_reply = answered;
    finish();
}

void pending::part_arrived() {
    if (--parts_awaited == 0 && link_done_) finish();
}

void pending::link_finished() {
    link_done_ = true;
    link_complete();
    if (parts_awaited == 0) finish();
}

void pending::on_push(std::string_view bytes) {
    if (!sink_->discarding()) pushed_.append(bytes);
}

void pending::finish() {
    complete();  // sees the reply alone (a fill caches it)
    if (!pushed_.empty()) {
        data.insert(0, pushed_);
        pushed_.clear();
    }
    sink_->completed(*this);
}

void pending::on_error(std::string_view reason) {
    errored = true;
    failed();
    if (!got_reply) {
        data.clear();
        resp::reply_builder(&data).error("ERR " + std::string(reason));
    }
    link_finished();
}

}  // namespace respcache::proxy
