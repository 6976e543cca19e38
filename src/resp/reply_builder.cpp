#include "respcache/resp/reply_builder.hpp"

#include <charconv>

#include "respcache/resp/writer.hpp"

namespace respcache::resp {

namespace {
void header(std::string& out, char type, std::size_t count) {
    char buf[24];
    buf[0] = type;
    auto [end, ec] = std::to_chars(buf + 1, buf + sizeof(buf) - 2, count);
    (void)ec;
    *end++ = '\r';
    *end++ = '\n';
    out.append(buf, static_cast<std::size_t>(end - buf));
}
}  // namespace

void reply_builder::simple(std::string_view text) { write_simple(*out_, text); }

void reply_builder::error(std::string_view text) { write_error(*out_, text); }

void reply_builder::integer(std::int64_t value) { write_integer(*out_, value); }

void reply_builder::bulk(std::string_view bytes) { write_bulk(*out_, bytes); }

void reply_builder::null() {
    if (proto_ == protocol::resp3)
        out_->append("_\r\n", 3);
    else
        write_null(*out_);
}

void reply_builder::null_array() {
    if (proto_ == protocol::resp3)
        out_->append("_\r\n", 3);
    else
        write_null_array(*out_);
}

void reply_builder::array(std::size_t count) { write_array_header(*out_, count); }

void reply_builder::map(std::size_t pairs) {
    if (proto_ == protocol::resp3)
        header(*out_, '%', pairs);
    else
        write_array_header(*out_, 2 * pairs);
}

void reply_builder::set(std::size_t count) { header(*out_, proto_ == protocol::resp3 ? '~' : '*', count); }

void reply_builder::push(std::size_t count) { header(*out_, proto_ == protocol::resp3 ? '>' : '*', count); }

void reply_builder::verbatim(std::string_view text, std::string_view format) {
    if (proto_ != protocol::resp3 || format.size() != 3) return bulk(text);
    header(*out_, '=', text.size() + 4);
    out_->append(format);
    out_->push_back(':');
    out_->append(text);
    out_->append("\r\n", 2);
}

void reply_builder::boolean(bool value) {
    if (proto_ == protocol::resp3)
        out_->append(value ? "#t\r\n" : "#f\r\n", 4);
    else
        integer(value ? 1 : 0);
}

}  // namespace respcache::resp
