#include "respcache/command/table.hpp"

#include <algorithm>
#include <stdexcept>

#include "respcache/command/handlers/handlers.hpp"
#include "respcache/resp/reply_view.hpp"

namespace respcache::command {

table::table(std::vector<row> rows) : rows_(std::move(rows)) {
    for (std::size_t i = 0; i < rows_.size(); ++i) {
        if (rows_[i].name.size() > kLongestName) throw std::logic_error("command name too long for the table");
        by_length_[rows_[i].name.size()].push_back(i);
    }
}

const row* table::find(std::string_view name) const noexcept {
    if (name.size() > kLongestName) return nullptr;
    for (std::size_t i : by_length_[name.size()]) {
        const std::string_view candidate = rows_[i].name;  // lower case
        bool same = true;
        for (std::size_t j = 0; j < name.size() && same; ++j) {
            char c = name[j];
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
            same = c == candidate[j];
        }
        if (same) return &rows_[i];
    }
    return nullptr;
}

namespace {
// GET: a bulk string no longer than --max-value-size, or a null (a missing key: see negative caching).
bool keeps_string(std::string_view reply, std::size_t max_value) {
    if (resp::is_null(reply)) return true;
    if (!resp::is_bulk(reply)) return false;
    const auto value = resp::string_value(reply);
    return value && value->size() <= max_value;
}
constexpr read_policy kStringRead{1, read_policy::form::value, false, 1, keeps_string};
constexpr read_policy kStringsRead{1, read_policy::form::values, true, 2, keeps_string};
}  // namespace

const table& table::local() {
    constexpr std::uint32_t in_multi = local_in_multi;
    constexpr std::uint32_t alone = local_wait_before | local_wait_after;
    static const table t({
        {"auth", -2, local_no_auth, auth},
        {"client", -2, local_in_resp3_pubsub, client},
        {"discard", 1, in_multi, exec_or_discard},
        {"echo", 2, 0, echo},
        {"exec", 1, in_multi, exec_or_discard},
        {"get", 2, 0, read_through, &kStringRead},
        {"hello", -1, local_no_auth | alone, hello},
        {"info", -1, local_in_resp3_pubsub, info},
        {"mget", -2, 0, read_through, &kStringsRead},
        {"monitor", 1, alone, monitor},
        {"multi", 1, in_multi | local_wait_before, multi},
        {"ping", -1, 0, ping},
        {"psubscribe", -2, alone, subscribe},
        {"psync", -3, 0, refuse_replication},
        {"punsubscribe", -1, 0, unsubscribe},
        {"quit", -1, in_multi | local_in_pubsub | local_no_auth, quit},
        {"reset", 1, in_multi | local_in_pubsub | local_no_auth | local_wait_before, reset},
        {"select", 2, 0, select},
        {"ssubscribe", -2, alone, subscribe},
        {"subscribe", -2, alone, subscribe},
        {"sunsubscribe", -1, 0, unsubscribe},
        {"sync", 1, 0, refuse_replication},
        {"unsubscribe", -1, 0, unsubscribe},
        {"unwatch", 1, 0, unwatch},
        {"watch", -2, in_multi | local_wait_before, watch},
    });
    return t;
}

std::string wrong_arity_error(std::string_view fullname) {
    return "ERR wrong number of arguments for '" + std::string(fullname) + "' command";
}

std::string unknown_command_error(args_view args) {
    // As Redis builds it: the name cut at 128 bytes, then quoted arguments while they fit in 128 bytes.
    std::string quoted;
    for (std::size_t i = 1; i < args.size() && quoted.size() < 128; ++i) {
        const std::size_t room = 128 - quoted.size();
        quoted += '\'';
        quoted.append(args[i].substr(0, room));
        quoted += "' ";
    }
    return "ERR unknown command '" + std::string(args[0].substr(0, 128)) + "', with args beginning with: " + quoted;
}

std::string unknown_subcommand_error(std::string_view sub, std::string_view container) {
    std::string upper(container);
    for (char& c : upper)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    return "ERR unknown subcommand '" + std::string(sub.substr(0, 128)) + "'. Try " + upper + " HELP.";
}

}  // namespace respcache::command
