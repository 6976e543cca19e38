#include "respcache/util/log.hpp"

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <span>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>

namespace respcache::log {

namespace {
log_format g_format = log_format::text;

void append_value(std::string& out, const field& f, bool json) {
    std::visit(
        [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string_view>) {
                if (json || v.empty() || v.find_first_of(" \"=\t\r\n") != std::string_view::npos)
                    out += json_quote(v);
                else
                    out += v;
            } else if constexpr (std::is_same_v<T, bool>) {
                out += v ? "true" : "false";
            } else {
                out += std::to_string(v);
            }
        },
        f.value);
}

// The part of a line after time and level: `"message":...,"k":v` in json mode, `message k=v` in text.
std::string format_line(std::string_view message, std::span<const field> fields) {
    const bool json = g_format == log_format::json;
    std::string line = json ? "\"message\":" + json_quote(message) : std::string(message);
    for (const auto& f : fields) {
        line += json ? ',' : ' ';
        line += json ? json_quote(f.key) : std::string(f.key);
        line += json ? ':' : '=';
        append_value(line, f, json);
    }
    return line;
}
}  // namespace

std::string json_quote(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out.push_back('"');
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c >= 0x7f) {
                    // Bytes outside printable ASCII are written as \u00XX: always valid JSON.
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out.push_back(static_cast<char>(c));
                }
        }
    }
    out.push_back('"');
    return out;
}

void init(log_format format, const std::string& level) {
    g_format = format;
    auto logger = std::make_shared<spdlog::logger>("respcache", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    if (format == log_format::json)
        logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l",%v})");
    else
        logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
    set_level(level);
}

void set_level(const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); }

void emit(spdlog::level::level_enum level, std::string_view message, std::initializer_list<field> fields) {
    if (!spdlog::should_log(level)) return;
    spdlog::log(level, "{}", format_line(message, std::span<const field>(fields.begin(), fields.size())));
}

void limited(std::string_view category, spdlog::level::level_enum level, std::string_view message,
             std::initializer_list<field> fields, unsigned per_second) {
    if (!spdlog::should_log(level)) return;
    struct window {
        std::chrono::steady_clock::time_point start{};
        unsigned emitted = 0;
        std::uint64_t suppressed = 0;
    };
    static std::mutex mu;
    static std::map<std::string, window, std::less<>> windows;
    std::uint64_t held_back = 0;
    {
        std::lock_guard guard(mu);
        auto it = windows.find(category);
        if (it == windows.end()) it = windows.emplace(std::string(category), window{}).first;
        window& w = it->second;
        const auto now = std::chrono::steady_clock::now();
        if (now - w.start >= std::chrono::seconds(1)) {
            w.start = now;
            w.emitted = 0;
        }
        if (w.emitted >= per_second) {
            ++w.suppressed;
            return;
        }
        ++w.emitted;
        held_back = w.suppressed;
        w.suppressed = 0;
    }
    std::vector<field> all(fields);
    if (held_back > 0) all.emplace_back("suppressed", held_back);
    spdlog::log(level, "{}", format_line(message, all));
}

}  // namespace respcache::log
