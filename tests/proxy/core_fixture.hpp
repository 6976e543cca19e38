#pragma once

// A client core with everything around it scripted: the backend (fakes::scripted_pool), the process
// (fakes::fake_host), a real cache and a real coherence tracker. Tests step it by hand: bytes in,
// advance(), replies scripted on the links, bytes out. No sockets, no threads, no sleeping.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fakes/fake_host.hpp"
#include "fakes/manual_clock.hpp"
#include "fakes/scripted_backend.hpp"
#include "respcache/proxy/client_core.hpp"
#include "respcache/proxy/tracking_table.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::tests {

using next = proxy::client_core::next;

// The multibulk bytes of one command.
inline std::string cmd(std::initializer_list<std::string_view> args) {
    std::string out;
    resp::write_command(out, args);
    return out;
}

struct core_fixture {
    explicit core_fixture(coherence::invalidation_mode inv = coherence::invalidation_mode::ttl,
                          coherence::consistency_mode cons = coherence::consistency_mode::bounded)
        : coherence(cache, inv, cons) {
        core = new_core(7);
    }

    fakes::manual_clock clock;
    cache::lru_cache cache{{1024, 0, 300'000}, 1, clock};
    coherence::tracker coherence;
    proxy::settings settings;
    fakes::scripted_pool links;
    std::vector<coherence::link_tracking> tracking{2};
    command::client_registry clients;
    proxy::tracking_table client_tracking{clients};
    thread_stats stats;
    fakes::fake_host host;
    proxy::environment env{host, settings, cache, coherence, links, tracking, clients, client_tracking, stats};
    int wakes = 0;
    std::unique_ptr<proxy::client_core> core;

    std::unique_ptr<proxy::client_core> new_core(std::uint64_t id) {
        auto info = std::make_shared<command::client_info>();
        info->id = id;
        return std::make_unique<proxy::client_core>(env, info, [this] { ++wakes; });
    }

    // The client sends `bytes` in one piece: what the core says next.
    next send(std::string_view bytes, proxy::client_core& c) {
        c.input().append(bytes);
        c.bytes_arrived();
        return c.advance();
    }
    next send(std::string_view bytes) { return send(bytes, *core); }
    // The same, one byte at a time, advancing after each.
    next send_bytewise(std::string_view bytes) {
        next n = next::read;
        for (char ch : bytes) n = send(std::string_view(&ch, 1));
        return n;
    }
    // Redis answers on `link`: what the core says next.
    next answer(fakes::scripted_link& link, std::string_view bytes) {
        link.reply(bytes);
        return core->advance();
    }
    // The bytes the client has been sent since the last call (as the shell would write them).
    std::string out(proxy::client_core& c) {
        std::string s;
        c.replies().take_output(s);
        c.replies().written();
        return s;
    }
    std::string out() { return out(*core); }

    // Puts GET's reply for `name` (database 0) in the cache, as a fill would.
    void cache_value(std::string_view name, std::string_view value) {
        const cache::key k = cache::make_key(0, name);
        std::string reply;
        resp::write_bulk(reply, value);
        cache.fill(k, cache.begin_fill(k), reply, proxy::steady_ms());
    }
    bool cached(std::string_view name) const { return cache.contains(cache::make_key(0, name), proxy::steady_ms()); }
};

}  // namespace respcache::tests
