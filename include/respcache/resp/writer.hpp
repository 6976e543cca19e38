#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace respcache::resp {

// Appenders of RESP2 replies (and of multibulk requests) to an output buffer owned by the caller.
// Each appends exactly one complete protocol element and never clears `out`.

// +text\r\n. `text` must not contain CR or LF.
void write_simple(std::string& out, std::string_view text);
// -text\r\n, `text` without the leading '-', e.g. "ERR unknown command". CR and LF in `text` are
// replaced by spaces, as Redis does, so that an error can never break the framing.
void write_error(std::string& out, std::string_view text);
// :value\r\n
void write_integer(std::string& out, std::int64_t value);
// $len\r\nbytes\r\n
void write_bulk(std::string& out, std::string_view bytes);
// $-1\r\n (the RESP2 nil bulk string)
void write_null(std::string& out);
// *-1\r\n (the RESP2 nil array)
void write_null_array(std::string& out);
// *count\r\n; the caller appends the elements.
void write_array_header(std::string& out, std::size_t count);
// A request as Redis expects it from clients: an array of bulk strings.
void write_command(std::string& out, std::span<const std::string_view> args);
void write_command(std::string& out, std::initializer_list<std::string_view> args);

// The number of bytes write_bulk appends for a value of `len` bytes.
std::size_t bulk_encoded_size(std::size_t len) noexcept;

}  // namespace respcache::resp
