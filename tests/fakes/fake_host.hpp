#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fakes/redis7_catalog.hpp"
#include "respcache/proxy/environment.hpp"

namespace respcache::fakes {

// The process and io thread a client core asks things of, with Redis 7's command table; posted work
// waits until the test runs it.
class fake_host final : public proxy::host {
public:
    command::backend_facts backend{"7.0.15", 16, true, true};
    std::string password;          // --requirepass (empty: none)
    int catalog_refreshes = 0;
    std::vector<std::function<void()>> posted;

    // --cache-commands of the test (default: the default).
    std::shared_ptr<const command::cache_plan> plan = command::cache_plan::build(redis7_catalog(), {});

    const command::catalog* catalog() override { return redis7_catalog().get(); }
    const command::cache_plan& cache_plan() override { return *plan; }
    command::backend_facts facts() const override { return backend; }
    bool password_matches(std::string_view p) const override { return !password.empty() && p == password; }
    std::string proxy_info() override { return "proxy_version:test\r\n"; }
    void refresh_catalog() override { ++catalog_refreshes; }
    void post(std::function<void()> f) override { posted.push_back(std::move(f)); }
    std::atomic<bool>& backend_busy() noexcept override { return busy; }
    proxy::user_links links_for(std::string_view user, std::string_view) override {
        users_asked.emplace_back(user);
        return {};
    }
    std::vector<std::string> users_asked;
    std::atomic<bool> busy{false};
    // Runs what was posted (and what that posts in turn).
    void run_posted() {
        while (!posted.empty()) {
            auto batch = std::move(posted);
            posted.clear();
            for (auto& f : batch) f();
        }
    }
};

}  // namespace respcache::fakes
