// Throughput of the request parser on pipelined GETs, the shape a busy client sends.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "respcache/resp/parser.hpp"

namespace {

constexpr int kCommands = 1000;

std::string pipelined_multibulk() {
    std::string buf;
    for (int i = 0; i < kCommands; ++i) buf += "*2\r\n$3\r\nGET\r\n$16\r\nkey:000000001234\r\n";
    return buf;
}

std::string pipelined_inline() {
    std::string buf;
    for (int i = 0; i < kCommands; ++i) buf += "GET key:000000001234\r\n";
    return buf;
}

// Parses the whole buffer command by command, as a session does with one read's worth of bytes.
void parse_all(benchmark::State& state, const std::string& buf) {
    respcache::resp::request_parser parser;
    for (auto _ : state) {
        std::string_view rest = buf;
        int parsed = 0;
        while (!rest.empty()) {
            const auto r = parser.parse(rest);
            if (r.status != respcache::resp::parse_status::done) {
                state.SkipWithError("parser did not return done");
                return;
            }
            benchmark::DoNotOptimize(parser.args().data());
            rest.remove_prefix(r.consumed);
            ++parsed;
        }
        if (parsed != kCommands) {
            state.SkipWithError("wrong command count");
            return;
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(buf.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kCommands);
}

void BM_ParsePipelinedMultibulkGet(benchmark::State& state) {
    static const std::string buf = pipelined_multibulk();
    parse_all(state, buf);
}
BENCHMARK(BM_ParsePipelinedMultibulkGet);

void BM_ParsePipelinedInlineGet(benchmark::State& state) {
    static const std::string buf = pipelined_inline();
    parse_all(state, buf);
}
BENCHMARK(BM_ParsePipelinedInlineGet);

// One multibulk command delivered in pieces of `state.range(0)` bytes: the resumable path
// (need_more, then the same bytes plus more).
void BM_ParseFragmentedGet(benchmark::State& state) {
    const std::string cmd = "*2\r\n$3\r\nGET\r\n$16\r\nkey:000000001234\r\n";
    const std::size_t step = static_cast<std::size_t>(state.range(0));
    respcache::resp::request_parser parser;
    for (auto _ : state) {
        std::size_t have = 0;
        for (;;) {
            have = std::min(cmd.size(), have + step);
            const auto r = parser.parse(std::string_view(cmd).substr(0, have));
            if (r.status == respcache::resp::parse_status::done) break;
            if (r.status == respcache::resp::parse_status::error || have == cmd.size()) {
                state.SkipWithError("fragmented parse failed");
                return;
            }
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(cmd.size()));
}
BENCHMARK(BM_ParseFragmentedGet)->Arg(1)->Arg(8);

}  // namespace
