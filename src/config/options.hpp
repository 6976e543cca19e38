#pragma once

// The option table of load_config (config.cpp), inside the config layer.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "respcache/config/config.hpp"

namespace respcache::options {

// One option: its name, its help text with the accepted form, and how to apply a value to a config.
// Returning false means "not of the accepted form".
struct option_row {
    const char* name;
    const char* form;  // the accepted form, quoted in errors and in --help
    const char* help;
    std::function<bool(config&, const std::string&)> apply;
};

// Every option, in the order of --help; load_config applies them, and reports their errors, in this order.
const std::vector<option_row>& option_table();

// The first line of a file, without its line ending; nullopt if the file cannot be read.
std::optional<std::string> read_secret_file(const std::string& path);

}  // namespace respcache::options
