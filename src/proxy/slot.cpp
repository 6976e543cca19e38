#include "respcache/proxy/slot.hpp"

namespace respcache::proxy {

void slot_home::give_back(std::unique_ptr<slot> s) {
    // Keep the slots for the next batch, the first ones with modest buffers; a burst of large replies is
    // not kept.
    if (free_.size() >= kKept) return;
    s->clear();
    if (s->data.capacity() > kKeptBytes || free_.size() >= kKeptWithBuffer) std::string().swap(s->data);
    free_.push_back(std::move(s));
}

std::unique_ptr<slot> slot_home::take_free() {
    if (free_.empty()) return nullptr;
    std::unique_ptr<slot> s = std::move(free_.back());
    free_.pop_back();
    return s;
}

}  // namespace respcache::proxy
