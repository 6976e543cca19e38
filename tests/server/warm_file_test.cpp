#include "respcache/server/warm_start.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

using namespace std::string_literals;
using respcache::resp::protocol;
using respcache::server::decode_warm_file;
using respcache::server::encode_warm_file;
using respcache::server::warm_read;

std::vector<warm_read> sample() {
    std::vector<warm_read> reads(3);
    reads[0].read.args = {"GET", "a"};
    reads[1].db = 3;
    reads[1].read.args = {"hgetall", "h\r\nwith\0bytes"s};
    reads[2].read.proto = protocol::resp3;
    reads[2].read.args = {"lrange", "l", "0", "-1"};
    return reads;
}

}  // namespace

TEST_CASE("warm file: what is saved is read back", "[server][warm]") {
    const std::string bytes = encode_warm_file(sample());
    std::string error;
    const auto back = decode_warm_file(bytes, error);
    INFO(error);
    REQUIRE(back);
    REQUIRE(back->size() == 3);
    CHECK((*back)[0].read.args == std::vector<std::string>{"GET", "a"});
    CHECK((*back)[1].db == 3);
    CHECK((*back)[1].read.args[1] == "h\r\nwith\0bytes"s);
    CHECK((*back)[2].read.proto == protocol::resp3);
    CHECK((*back)[2].read.args == std::vector<std::string>{"lrange", "l", "0", "-1"});
    const auto empty = decode_warm_file(encode_warm_file({}), error);
    REQUIRE(empty);
    CHECK(empty->empty());
}

TEST_CASE("warm file: a truncated or corrupt file is refused, never half read", "[server][warm]") {
    const std::string bytes = encode_warm_file(sample());
    std::string error;
    // Cut anywhere: refused (the trailer is gone or does not match).
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        CAPTURE(n);
        CHECK_FALSE(decode_warm_file(std::string_view(bytes).substr(0, n), error));
    }
    // One byte changed anywhere: refused.
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::string bad = bytes;
        bad[i] = static_cast<char>(bad[i] ^ 0x20);
        CAPTURE(i);
        CHECK_FALSE(decode_warm_file(bad, error));
    }
    CHECK_FALSE(decode_warm_file("garbage", error));
    CHECK(error.find("respcache-warm") != std::string::npos);
}

TEST_CASE("warm file: written atomically, over the old one", "[server][warm]") {
    namespace fs = std::filesystem;
    std::string dir_template = (fs::temp_directory_path() / "respcache-warm-test-XXXXXX").string();
    REQUIRE(::mkdtemp(dir_template.data()) != nullptr);
    const fs::path dir = dir_template;
    const std::string path = (dir / "w").string();
    std::string error;
    REQUIRE(respcache::server::write_file_atomically(path, "old", error));
    REQUIRE(respcache::server::write_file_atomically(path, "new contents", error));
    std::ifstream in(path, std::ios::binary);
    CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "new contents");
    CHECK_FALSE(fs::exists(path + ".tmp"));
    CHECK_FALSE(respcache::server::write_file_atomically((dir / "no" / "such" / "dir").string(), "x", error));
    CHECK_FALSE(error.empty());
    fs::remove_all(dir);
}
