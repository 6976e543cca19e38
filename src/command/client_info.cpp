#include "respcache/command/client_info.hpp"

#include <algorithm>
#include <cstring>

namespace respcache::command {

std::string client_info::describe() const {
    using namespace std::chrono;
    const auto now = steady_clock::now();
    const auto now_ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
    const long long age = duration_cast<seconds>(now - created).count();
    const long long idle = std::max<long long>(0, (now_ms - last_active_ms.load(std::memory_order_relaxed)) / 1000);
    std::string flags;
    if (multi.load() >= 0) flags += 'x';
    if (blocked.load()) flags += 'b';
    if (subscriptions.load() + shard_subscriptions.load() > 0) flags += 'P';
    if (monitor.load()) flags += 'O';
    std::lock_guard guard(mu);
    if (no_evict) flags += 'e';
    if (no_touch) flags += 'T';
    if (flags.empty()) flags = "N";
    std::string out;
    out += "id=" + std::to_string(id);
    out += " addr=" + addr;
    out += " laddr=" + laddr;
    out += " fd=-1";
    out += " name=" + name;
    out += " age=" + std::to_string(age);
    out += " idle=" + std::to_string(idle);
    out += " flags=" + flags;
    out += " db=" + std::to_string(db.load());
    out += " sub=" + std::to_string(subscriptions.load());
    out += " psub=0";
    out += " ssub=" + std::to_string(shard_subscriptions.load());
    out += " multi=" + std::to_string(multi.load());
    out += " qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r";
    out += " cmd=" + last_command;
    out += " user=" + user;
    out += " redir=-1 resp=" + std::to_string(resp.load());
    out += " lib-name=" + lib_name;
    out += " lib-ver=" + lib_ver;
    return out;
}

void client_info::end() const {
    std::function<void()> f;
    {
        std::lock_guard guard(mu);
        f = kill;
    }
    if (f) f();
}

void client_info::deliver(tracking_message m) const {
    std::function<void(tracking_message)> f;
    {
        std::lock_guard guard(mu);
        f = inbox;
    }
    if (f) f(std::move(m));
}

void client_info::note_command(std::string_view name) {
    char lower[sizeof last_seen_];
    const std::size_t n = std::min(name.size(), sizeof lower);
    for (std::size_t i = 0; i < n; ++i) {
        const char c = name[i];
        lower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    }
    if (n == last_seen_len_ && std::memcmp(lower, last_seen_, n) == 0) return;
    std::memcpy(last_seen_, lower, n);
    last_seen_len_ = static_cast<std::uint8_t>(n);
    std::lock_guard guard(mu);
    last_command.assign(lower, n);
}

void client_registry::add(std::shared_ptr<client_info> c) {
    std::lock_guard guard(mu_);
    clients_[c->id] = std::move(c);
}

void client_registry::remove(std::uint64_t id) {
    std::lock_guard guard(mu_);
    clients_.erase(id);
}

std::vector<std::shared_ptr<client_info>> client_registry::snapshot() const {
    std::lock_guard guard(mu_);
    std::vector<std::shared_ptr<client_info>> out;
    out.reserve(clients_.size());
    for (auto& [id, c] : clients_) out.push_back(c);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a->id < b->id; });
    return out;
}

std::shared_ptr<client_info> client_registry::find(std::uint64_t id) const {
    std::lock_guard guard(mu_);
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : it->second;
}

std::size_t client_registry::size() const {
    std::lock_guard guard(mu_);
    return clients_.size();
}

}  // namespace respcache::command
