// The configuration loader (load_config): command line, RESPCACHE_* environment and config file.
//
// Input: three parts separated by NUL bytes: the command line (one argument per line), the environment
// (one NAME=value per line) and the config file's text. With a third part, the file is written and
// `--config <its path>` comes first on the command line. load_config must never throw, must say the same
// twice, and must explain every usage error.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "respcache/config/config.hpp"
#include "stream_feed.hpp"

using namespace respcache;
using fuzzing::require;

namespace {

std::vector<std::string> lines(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty()) {
        const std::size_t nl = text.find('\n');
        out.emplace_back(text.substr(0, nl));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return out;
}

const std::string& file_path() {
    static const std::string path = "/tmp/respcache-fuzz-config-" + std::to_string(::getpid()) + ".conf";
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t args_end = input.find('\0');
    std::vector<std::string> args = lines(input.substr(0, args_end));
    std::vector<std::string> env;
    if (args_end != std::string_view::npos) {
        const std::string_view rest = input.substr(args_end + 1);
        const std::size_t env_end = rest.find('\0');
        env = lines(rest.substr(0, env_end));
        if (env_end != std::string_view::npos) {
            std::ofstream(file_path(), std::ios::binary | std::ios::trunc) << rest.substr(env_end + 1);
            args.insert(args.begin(), {"--config", file_path()});
        }
    }
    const config_outcome first = load_config(args, env);
    const config_outcome again = load_config(args, env);
    require(first.what == again.what && first.message == again.message, "load_config said two different things");
    switch (first.what) {
        case config_outcome::action::run:
            require(fixed_options_changed(first.cfg, again.cfg).empty(), "the same input gave two configurations");
            break;
        case config_outcome::action::exit_usage_error:
            require(!first.message.empty(), "a usage error without a message");
            break;
        case config_outcome::action::exit_success:
            require(!first.message.empty(), "help or version without text");
            break;
    }
    return 0;
}
