#include "respcache/resp/writer.hpp"

#include <charconv>

namespace respcache::resp {

namespace {
void append_header(std::string& out, char type, std::int64_t value) {
    char buf[24];
    buf[0] = type;
    auto [end, ec] = std::to_chars(buf + 1, buf + sizeof(buf) - 2, value);
    (void)ec;
    *end++ = '\r';
    *end++ = '\n';
    out.append(buf, static_cast<std::size_t>(end - buf));
}
std::size_t decimal_digits(std::size_t v) noexcept {
    std::size_t n = 1;
    while (v >= 10) {
        v /= 10;
        ++n;
    }
    return n;
}
}  // namespace

void write_simple(std::string& out, std::string_view text) {
    out.push_back('+');
    out.append(text);
    out.append("\r\n", 2);
}

void write_error(std::string& out, std::string_view text) {
    out.push_back('-');
    const std::size_t start = out.size();
    out.append(text);
    for (std::size_t i = start; i < out.size(); ++i)
        if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
    out.append("\r\n", 2);
}

void write_integer(std::string& out, std::int64_t value) { append_header(out, ':', value); }

void write_bulk(std::string& out, std::string_view bytes) {
    append_header(out, '$', static_cast<std::int64_t>(bytes.size()));
    out.append(bytes);
    out.append("\r\n", 2);
}

void write_null(std::string& out) { out.append("$-1\r\n", 5); }

void write_null_array(std::string& out) { out.append("*-1\r\n", 5); }

void write_array_header(std::string& out, std::size_t count) {
    append_header(out, '*', static_cast<std::int64_t>(count));
}

void write_command(std::string& out, std::span<const std::string_view> args) {
    write_array_header(out, args.size());
    for (auto a : args) write_bulk(out, a);
}

void write_command(std::string& out, std::initializer_list<std::string_view> args) {
    write_command(out, std::span<const std::string_view>(args.begin(), args.size()));
}

std::size_t bulk_encoded_size(std::size_t len) noexcept { return 1 + decimal_digits(len) + 2 + len + 2; }

}  // namespace respcache::resp
