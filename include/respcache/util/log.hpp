#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

#include <spdlog/spdlog.h>

namespace respcache {

enum class log_format { text, json };

}  // namespace respcache

namespace respcache::log {

// One structured field of a log event. Strings are escaped as JSON strings in json mode and printed as
// key=value (quoted when they contain spaces) in text mode.
struct field {
    std::string_view key;
    std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool> value;

    field(std::string_view k, std::string_view v) : key(k), value(v) {}
    field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
    field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
    field(std::string_view k, bool v) : key(k), value(v) {}
    field(std::string_view k, double v) : key(k), value(v) {}
    template <typename T>
        requires std::is_integral_v<T>
    field(std::string_view k, T v) {
        key = k;
        if constexpr (std::is_signed_v<T>)
            value = static_cast<std::int64_t>(v);
        else
            value = static_cast<std::uint64_t>(v);
    }
};

// Sets up the process-wide logger on stderr. `level` is one of the names --log-level accepts.
void init(log_format format, const std::string& level);
void set_level(const std::string& level);

// Emits one event: a line of text, or one JSON object with time, level, message and the fields.
void emit(spdlog::level::level_enum level, std::string_view message, std::initializer_list<field> fields = {});

inline void debug(std::string_view m, std::initializer_list<field> f = {}) { emit(spdlog::level::debug, m, f); }
inline void info(std::string_view m, std::initializer_list<field> f = {}) { emit(spdlog::level::info, m, f); }
inline void warn(std::string_view m, std::initializer_list<field> f = {}) { emit(spdlog::level::warn, m, f); }
inline void error(std::string_view m, std::initializer_list<field> f = {}) { emit(spdlog::level::err, m, f); }

// Emits the event unless more than `per_second` events of `category` were emitted in the current second;
// the first event let through after some were held back carries their number in a "suppressed" field.
// For what clients can trigger at will (connection errors, protocol errors), so that a flood of clients
// cannot flood the log.
void limited(std::string_view category, spdlog::level::level_enum level, std::string_view message,
             std::initializer_list<field> fields = {}, unsigned per_second = 10);

// The JSON string literal for `s` (with quotes), escaping control characters and invalid UTF-8 bytes.
std::string json_quote(std::string_view s);

}  // namespace respcache::log
