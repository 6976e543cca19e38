// The client core before a client has logged in (--requirepass): what it answers, and what reaches Redis.

#include "respcache/proxy/client_core.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "proxy/core_fixture.hpp"

using namespace respcache;
using respcache::tests::cmd;
using respcache::tests::core_fixture;
using respcache::tests::next;

TEST_CASE("core: before logging in, an unknown command or a wrong arity gets Redis's error, not NOAUTH",
          "[proxy][core]") {
    core_fixture f;
    f.settings.password_required = true;  // a client core made after this must log in first
    f.host.password = "pw";
    f.core = f.new_core(9);
    // The texts are redis-server 7.0's to a client that has not authenticated.
    const std::vector<std::pair<std::string, std::string>> rows = {
        {cmd({"NOPE", "a", "b"}), "-ERR unknown command 'NOPE', with args beginning with: 'a' 'b' \r\n"},
        {cmd({"GET"}), "-ERR wrong number of arguments for 'get' command\r\n"},
        {cmd({"SELECT"}), "-ERR wrong number of arguments for 'select' command\r\n"},
        {cmd({"CLIENT"}), "-ERR wrong number of arguments for 'client' command\r\n"},
        {cmd({"CLIENT", "FOO"}), "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"},
        {cmd({"CLIENT", "KILL"}), "-ERR wrong number of arguments for 'client|kill' command\r\n"},
        {cmd({"CLIENT", "LIST"}), "-NOAUTH Authentication required.\r\n"},
        {cmd({"PING", "a", "b"}), "-NOAUTH Authentication required.\r\n"},
        {cmd({"GET", "k"}), "-NOAUTH Authentication required.\r\n"},
    };
    for (const auto& [request, expected] : rows) {
        CAPTURE(request);
        CHECK(f.send(request) == next::read);
        CHECK(f.out() == expected);
    }
    CHECK(f.links.shared_link.sent().empty());
}
