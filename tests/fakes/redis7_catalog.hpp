#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>

#include "respcache/command/catalog.hpp"

namespace respcache::fakes {

// The bytes of a COMMAND reply captured from a real redis-server 7.0 (RESP2), kept in
// tests/fixtures/command_reply_redis7.resp. Throws if the file cannot be read.
inline const std::string& redis7_command_reply() {
    static const std::string bytes = [] {
        const auto path = std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" /
                          "command_reply_redis7.resp";
        std::ifstream in(path, std::ios::binary);
        if (!in) throw std::runtime_error("cannot read the fixture " + path.string());
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }();
    return bytes;
}

// The catalog built from that reply, shared by the tests that need one (it is immutable).
inline std::shared_ptr<const command::catalog> redis7_catalog() {
    static const auto cat = command::catalog::from_reply(redis7_command_reply());
    return cat;
}

}  // namespace respcache::fakes
