#include "respcache/resp/reply_builder.hpp"

#include "respcache/resp/writer.hpp"

namespace respcache::resp {

void reply_builder::simple(std::string_view text) { write_simple(*out_, text); }

void reply_builder::error(std::string_view text) { write_error(*out_, text); }

void reply_builder::integer(std::int64_t value) { write_integer(*out_, value); }

void reply_builder::bulk(std::string_view bytes) { write_bulk(*out_, bytes); }

void reply_builder::null() { write_null(*out_); }

void reply_builder::null_array() { write_null_array(*out_); }

void reply_builder::array(std::size_t count) { write_array_header(*out_, count); }

void reply_builder::map(std::size_t pairs) { write_array_header(*out_, 2 * pairs); }

void reply_builder::set(std::size_t count) { write_array_header(*out_, count); }

}  // namespace respcache::resp
