// Lookups per second on the sharded LRU cache: hits and misses from one thread, and the same from 2 and
// 4 threads sharing one cache (contention on the shard mutexes). Each lookup hashes its key, as the
// session does once per GET. 100k entries of 16-byte names and 100-byte values, as in `make bench`.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "respcache/cache/clock.hpp"
#include "respcache/cache/lru_cache.hpp"
#include "respcache/resp/writer.hpp"

namespace {

using namespace respcache;

constexpr std::size_t kKeys = 100'000;
constexpr std::size_t kOrder = 1 << 16;  // length of the pseudo-random lookup sequence (power of two)

std::string name_of(const char* prefix, std::size_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%012zu", prefix, i);
    return buf;
}

struct fixture {
    cache::steady_clock clk;
    std::unique_ptr<cache::lru_cache> cache;
    std::vector<std::string> hit_names;   // cached: key:000000000000 ...
    std::vector<std::string> miss_names;  // never cached: nokey000000000000 ...
    std::vector<std::uint32_t> order;     // pseudo-random permutation-ish indices into the names

    fixture() {
        cache = std::make_unique<cache::lru_cache>(
            cache::limits{.capacity = 2 * kKeys, .max_memory = 0, .ttl = 3'600'000}, 0, clk);
        std::string reply;
        resp::write_bulk(reply, std::string(100, 'x'));
        const cache::millis now = clk.now();
        hit_names.reserve(kKeys);
        miss_names.reserve(kKeys);
        for (std::size_t i = 0; i < kKeys; ++i) {
            hit_names.push_back(name_of("key:", i));
            miss_names.push_back(name_of("nokey", i));
            const cache::key k = cache::make_key(0, hit_names.back());
            const cache::fill_token t = cache->begin_fill(k);
            if (!cache->fill(k, t, reply, now)) std::abort();
        }
        std::uint64_t x = 0x9E3779B97F4A7C15ull;
        order.resize(kOrder);
        for (auto& o : order) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            o = static_cast<std::uint32_t>(x % kKeys);
        }
    }
};

fixture& shared() {
    static fixture f;  // built once, before any thread's timed loop (magic statics are thread-safe)
    return f;
}

void lookups(benchmark::State& state, const std::vector<std::string>& names, bool expect_hit) {
    fixture& f = shared();
    std::string out;
    out.reserve(4096);
    std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919;
    cache::millis now = f.clk.now();
    std::int64_t wrong = 0;
    for (auto _ : state) {
        const std::string& name = names[f.order[i & (kOrder - 1)]];
        ++i;
        out.clear();
        const cache::key k = cache::make_key(0, name);
        if (f.cache->lookup(k, now, out) != expect_hit) ++wrong;
        benchmark::DoNotOptimize(out.data());
        if ((i & 1023) == 0) now = f.clk.now();
    }
    if (wrong != 0) state.SkipWithError("unexpected hit/miss result");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_CacheLookupHit(benchmark::State& state) { lookups(state, shared().hit_names, true); }
void BM_CacheLookupMiss(benchmark::State& state) { lookups(state, shared().miss_names, false); }
BENCHMARK(BM_CacheLookupHit)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
BENCHMARK(BM_CacheLookupMiss)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

// Every thread reads the same key: all lookups serialise on one shard mutex (the worst case).
void BM_CacheLookupHotKey(benchmark::State& state) {
    fixture& f = shared();
    std::string out;
    out.reserve(4096);
    const cache::key k = cache::make_key(0, f.hit_names[42]);
    const cache::millis now = f.clk.now();
    for (auto _ : state) {
        out.clear();
        benchmark::DoNotOptimize(f.cache->lookup(k, now, out));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_CacheLookupHotKey)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

// The miss path's cache work: begin_fill + fill of a new key into a full cache (each fill evicts the
// least recently used entry). A cache of its own, so the shared fixture is not disturbed.
void BM_CacheFillEvict(benchmark::State& state) {
    cache::steady_clock clk;
    cache::lru_cache c(cache::limits{.capacity = kKeys, .max_memory = 0, .ttl = 3'600'000}, 0, clk);
    std::string reply;
    resp::write_bulk(reply, std::string(100, 'x'));
    std::vector<std::string> names;
    names.reserve(4 * kKeys);
    for (std::size_t i = 0; i < 4 * kKeys; ++i) names.push_back(name_of("key:", i));
    const cache::millis now = clk.now();
    for (std::size_t i = 0; i < kKeys; ++i) {
        const cache::key k = cache::make_key(0, names[i]);
        c.fill(k, c.begin_fill(k), reply, now);
    }
    std::size_t i = kKeys;
    for (auto _ : state) {
        const cache::key k = cache::make_key(0, names[i % names.size()]);
        ++i;
        benchmark::DoNotOptimize(c.fill(k, c.begin_fill(k), reply, now));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_CacheFillEvict);

}  // namespace
