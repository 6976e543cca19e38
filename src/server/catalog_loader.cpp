#include "respcache/server/catalog_loader.hpp"

#include <charconv>

#include "respcache/util/log.hpp"
#include "respcache/resp/reply_view.hpp"
#include "respcache/resp/writer.hpp"

namespace respcache::server {

catalog_loader::catalog_loader(backend::asio::any_io_executor ex, backend::connection_options options, services& shared)
    : services_(shared) {
    options.client_name = "respcache-control";
    conn_ = std::make_shared<backend::connection>(ex, std::move(options));
    conn_->on_ready([this] { refresh(); });
}

catalog_loader::~catalog_loader() { close(); }

void catalog_loader::start(std::function<void()> settled) {
    settled_ = std::move(settled);
    conn_->on_down([this](std::string_view) { settle(); });
    conn_->start();
}

void catalog_loader::settle() {
    if (!settled_) return;
    auto f = std::move(settled_);
    settled_ = nullptr;
    f();
}

void catalog_loader::close() {
    if (conn_) conn_->close();
}

void catalog_loader::refresh() {
    if (in_flight_ || conn_->state() != backend::link_state::ready) return;
    in_flight_ = true;
    next_ = services_.facts();
    std::string bytes;
    resp::write_command(bytes, {"COMMAND"});
    resp::write_command(bytes, {"INFO", "server"});
    resp::write_command(bytes, {"CONFIG", "GET", "databases"});
    conn_->send(bytes, 3, this);
}

void catalog_loader::on_reply(std::size_t index, std::string_view bytes) {
    switch (index) {
        case 0:
            if (auto c = command::catalog::from_reply(bytes)) {
                log::debug("learned the backend's command table", {{"commands", c->size()}});
                services_.publish_catalog(std::move(c));
            } else {
                log::warn("the backend's COMMAND reply could not be read; write commands will flush the cache");
            }
            break;
        case 1:
            if (auto text = resp::string_value(bytes)) {
                constexpr std::string_view tag = "redis_version:";
                if (auto at = text->find(tag); at != std::string_view::npos) {
                    auto v = text->substr(at + tag.size());
                    next_.version = std::string(v.substr(0, v.find_first_of("\r\n")));
                    int major = 0;
                    std::from_chars(next_.version.data(), next_.version.data() + next_.version.size(), major);
                    next_.tracking_supported = major >= 6;
                }
                next_.cluster = text->find("redis_mode:cluster") != std::string_view::npos;
                if (next_.cluster && !services_.startup_config().backend.cluster() && !warned_cluster_) {
                    // Not found so at start (it did not answer then, or it was restarted in cluster mode).
                    warned_cluster_ = true;
                    log::warn("the backend is a Redis Cluster node: restart respcache, or give --backend "
                              "redis+cluster://host:port, so that commands are routed to the node of their keys "
                              "(clients may now see MOVED)");
                }
            }
            break;
        case 2:
            if (auto items = resp::array_elements(bytes); items && items->size() == 2) {
                if (auto n = resp::string_value((*items)[1])) {
                    std::uint32_t dbs = 0;
                    auto [p, ec] = std::from_chars(n->data(), n->data() + n->size(), dbs);
                    if (ec == std::errc() && dbs > 0) {
                        next_.databases = dbs;
                        next_.databases_known = true;
                    }
                }
            }
            in_flight_ = false;
            services_.coherence().set_supported(next_.tracking_supported);
            if (!next_.tracking_supported && services_.startup_config().invalidation == invalidation_mode::tracking &&
                !warned_no_tracking_) {
                warned_no_tracking_ = true;
                if (services_.startup_config().consistency == consistency_mode::strict)
                    log::warn("the backend has no client tracking (Redis older than 6.0): --consistency strict cannot "
                              "be kept, so GETs are not cached (every GET goes to the backend)",
                              {{"backend_version", next_.version}});
                else
                    log::warn("the backend has no client tracking (Redis older than 6.0): falling back to TTL-only "
                          "invalidation; values written behind the proxy are served until their TTL",
                          {{"backend_version", next_.version}});
            }
            log::info("backend ready", {{"version", next_.version}, {"databases", next_.databases}});
            services_.set_backend_facts(next_);
            settle();
            break;
        default:
            break;
    }
}

void catalog_loader::on_error(std::string_view) {
    in_flight_ = false;
    settle();
}

}  // namespace respcache::server
