#include "respcache/log.hpp"

#include <cstdio>

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
    std::string line;
    if (g_format == log_format::json) {
        line = "\"message\":" + json_quote(message);
        for (const auto& f : fields) {
            line += ',';
            line += json_quote(f.key);
            line += ':';
            append_value(line, f, true);
        }
    } else {
        line.assign(message);
        for (const auto& f : fields) {
            line += ' ';
            line += f.key;
            line += '=';
            append_value(line, f, false);
        }
    }
    spdlog::log(level, "{}", line);
}

}  // namespace respcache::log
