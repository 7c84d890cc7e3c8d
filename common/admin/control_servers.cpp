#include "common/admin/control_servers.h"

#include "common/admin/logging_handler.h"

namespace ambient::admin {

Result<std::unique_ptr<ControlServers>> ControlServers::start(boost::asio::any_io_executor executor, const ControlEndpoints& at,
                                                              telemetry::Registry& registry, Readiness& readiness,
                                                              std::function<std::string()> config_dump, std::function<void()> quit) {
  auto s = std::unique_ptr<ControlServers>(new ControlServers());
  s->admin_ = std::make_unique<HttpServer>(executor, HttpServerOptions{.name = "admin"});
  s->admin_->route("GET", "/config_dump", [dump = std::move(config_dump)](const Request&) {
    Response r;
    r.content_type = "application/json";
    r.body = dump();
    return r;
  });
  s->admin_->route("POST", "/logging", handle_logging);
  s->admin_->route("GET", "/logging", handle_logging);
  s->admin_->route("POST", "/quitquitquit", [quit = std::move(quit)](const Request&) {
    quit();
    return Response::text(200, "OK\n");
  });
  auto a = s->admin_->listen(at.admin);
  if (!a) return errorf(ErrorKind::Io, "admin server: {}", a.error().context);
  s->bound_.admin = *a;

  s->metrics_ = std::make_unique<HttpServer>(executor, HttpServerOptions{.name = "metrics"});
  auto scrape = [&registry](const Request& req) {
    const auto format = telemetry::negotiate_format(req.header("accept"));
    Response r;
    r.content_type = std::string(telemetry::content_type(format));
    r.body = registry.render(format);
    return r;
  };
  s->metrics_->route("GET", "/metrics", scrape);
  s->metrics_->route("GET", "/stats/prometheus", scrape);
  auto m = s->metrics_->listen(at.metrics);
  if (!m) return errorf(ErrorKind::Io, "metrics server: {}", m.error().context);
  s->bound_.metrics = *m;

  s->readiness_ = std::make_unique<HttpServer>(executor, HttpServerOptions{.name = "readiness"});
  add_readiness_route(*s->readiness_, readiness);
  auto rd = s->readiness_->listen(at.readiness);
  if (!rd) return errorf(ErrorKind::Io, "readiness server: {}", rd.error().context);
  s->bound_.readiness = *rd;
  return s;
}

void ControlServers::stop() {
  admin_->stop();
  metrics_->stop();
  readiness_->stop();
}

}  // namespace ambient::admin
