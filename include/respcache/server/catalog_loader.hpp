#pragma once

#include <functional>
#include <memory>

#include "respcache/backend/connection.hpp"
#include "respcache/server/services.hpp"

namespace respcache::server {

// Learns the backend's command table (COMMAND), version (INFO server) and database count (CONFIG GET
// databases) on a connection of its own, each time that connection comes up, and publishes them in
// `services`. Lives on one executor; must outlive its connection, which close() ends.
class catalog_loader final : public backend::request {
public:
    catalog_loader(backend::asio::any_io_executor ex, backend::connection_options options, services& shared);
    ~catalog_loader() override;

    // Starts; `settled` is called once, on the loader's executor, when the first attempt has an outcome:
    // the backend's facts are known, or the backend could not be reached.
    void start(std::function<void()> settled = {});
    void close();
    // Fetches everything again (after MODULE LOAD or UNLOAD changed the command table).
    void refresh();

    void on_reply(std::size_t index, std::string_view bytes) override;
    void on_error(std::string_view reason) override;

private:
    void settle();

    services& services_;
    std::shared_ptr<backend::connection> conn_;
    std::function<void()> settled_;
    bool in_flight_ = false;
    bool warned_cluster_ = false;
    bool warned_no_tracking_ = false;
    backend_facts next_;
};

}  // namespace respcache::server
