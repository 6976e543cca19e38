// Cost of encoding replies and requests into an output buffer (the buffer is reused, as a session does).
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "respcache/resp/writer.hpp"

namespace {

void BM_WriteBulk100(benchmark::State& state) {
    const std::string value(100, 'x');
    std::string out;
    out.reserve(256);
    for (auto _ : state) {
        out.clear();
        respcache::resp::write_bulk(out, value);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(respcache::resp::bulk_encoded_size(value.size())));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_WriteBulk100);

// 16 replies of 100 bytes appended to one buffer: a pipelined batch gathered for one write.
void BM_WriteBulk100Batch16(benchmark::State& state) {
    const std::string value(100, 'x');
    std::string out;
    out.reserve(4096);
    for (auto _ : state) {
        out.clear();
        for (int i = 0; i < 16; ++i) respcache::resp::write_bulk(out, value);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 16 *
                            static_cast<std::int64_t>(respcache::resp::bulk_encoded_size(value.size())));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 16);
}
BENCHMARK(BM_WriteBulk100Batch16);

void BM_WriteCommandGet(benchmark::State& state) {
    std::string out;
    out.reserve(256);
    for (auto _ : state) {
        out.clear();
        respcache::resp::write_command(out, {"GET", "key:000000001234"});
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_WriteCommandGet);

void BM_WriteCommandSet100(benchmark::State& state) {
    const std::string value(100, 'x');
    std::string out;
    out.reserve(256);
    for (auto _ : state) {
        out.clear();
        respcache::resp::write_command(out, {"SET", "key:000000001234", value});
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(out.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_WriteCommandSet100);

void BM_WriteInteger(benchmark::State& state) {
    std::string out;
    out.reserve(64);
    std::int64_t v = 1234567;
    for (auto _ : state) {
        out.clear();
        respcache::resp::write_integer(out, v++);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_WriteInteger);

}  // namespace
