#pragma once
// ControlServers: the three control-plane HTTP servers every proxy process here runs, on Istio's ports:
//   admin 15000 (localhost by default)  GET /config_dump (the caller's JSON), GET/POST /logging, POST /quitquitquit
//   metrics 15020                       GET /metrics, /stats/prometheus (the registry; text or OpenMetrics by Accept)
//   readiness 15021                     GET /healthz/ready (the Readiness tasks)
// All three run on the control executor; the data plane never blocks on them (the scrape sums per-worker shards).
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/admin/http_server.h"
#include "common/admin/readiness.h"
#include "common/base/result.h"
#include "common/telemetry/metrics.h"

namespace ambient::admin {

struct ControlEndpoints {
  boost::asio::ip::tcp::endpoint admin, metrics, readiness;
};

class ControlServers {
 public:
  // Binds the three servers (port 0 picks one: see the bound endpoints). Errors name the server that failed.
  static Result<std::unique_ptr<ControlServers>> start(boost::asio::any_io_executor executor, const ControlEndpoints& at,
                                                       telemetry::Registry& registry, Readiness& readiness,
                                                       std::function<std::string()> config_dump, std::function<void()> quit);
  const ControlEndpoints& bound() const { return bound_; }
  HttpServer& admin() { return *admin_; }  // more routes (on the control executor)
  void stop();

 private:
  std::unique_ptr<HttpServer> admin_, metrics_, readiness_;
  ControlEndpoints bound_;
};

}  // namespace ambient::admin
