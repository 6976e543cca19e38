#include "respcache/server/backend_probe.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "respcache/backend/connection.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"
#include "respcache/util/log.hpp"

namespace respcache::server {

namespace {

// Stops the probe's io_context as soon as the answer (or the failure) is in.
class probe final : public backend::request {
public:
    explicit probe(boost::asio::io_context& io) : io_(io) {}
    std::optional<std::string> reply;
    std::string error;
    void on_reply(std::size_t, std::string_view bytes) override {
        reply = std::string(bytes);
        io_.stop();
    }
    void on_error(std::string_view reason) override {
        error = std::string(reason);
        io_.stop();
    }

private:
    boost::asio::io_context& io_;
};

}  // namespace

void detect_cluster(config& cfg) {
    if (cfg.backend.tls || cfg.backend.cluster()) return;
    boost::asio::io_context io(1);
    backend::connection_options o;
    o.address = cfg.backend;
    o.address.db = 0;
    o.connect_timeout = cfg.connect_timeout;
    o.request_timeout = cfg.request_timeout;
    o.client_name = "respcache-probe";
    o.reconnect = false;
    auto conn = std::make_shared<backend::connection>(io.get_executor(), std::move(o));
    probe p(io);
    std::string request;
    resp::write_command(request, {"INFO", "cluster"});
    conn->start();
    conn->send(request, 1, &p);
    // Bounded, so that a backend that accepts and says nothing delays the start by at most a second.
    io.run_for(std::min<std::chrono::milliseconds>(cfg.connect_timeout + cfg.request_timeout, std::chrono::seconds(1)));
    conn->close();
    io.restart();
    io.run_for(std::chrono::milliseconds(100));  // lets the closed connection wind down
    const std::optional<std::string_view> text = p.reply ? resp::string_value(*p.reply) : std::nullopt;
    if (!text) {
        log::debug("could not ask the backend whether it is a Redis Cluster node; taken as one Redis",
                   {{"error", p.error.empty() ? std::string("no reply") : p.error}});
        return;
    }
    if (text->find("cluster_enabled:1") == std::string_view::npos) return;
    cfg.backend.cluster_seeds = {{cfg.backend.host, cfg.backend.port}};
    log::info("the backend is a Redis Cluster node: routing to the cluster's masters, with it as the seed",
              {{"backend", cfg.backend.redacted()}});
}

}  // namespace respcache::server
