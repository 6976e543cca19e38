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
}

void pending::on_reply(std::size_t index, std::string_view bytes) {
    if (index < client_index) {
        prelude_reply(index, bytes);
    } else if (index == client_index) {
        if (!sink_->discarding()) data.assign(bytes);
        got_reply = true;
    } else {
        trailing_reply(index, bytes);
    }
    if (index + 1 == replies) {
        complete();
        sink_->completed(*this);
    }
}

void pending::on_error(std::string_view reason) {
    errored = true;
    failed();
    if (!got_reply) {
        data.clear();
        resp::reply_builder(&data).error("ERR " + std::string(reason));
    }
    complete();
    sink_->completed(*this);
}

}  // namespace respcache::proxy
