// ztunnel: Istio-compatible per-node tunnel. See README.md and ARCHITECTURE.md.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "common/base/log.h"
#include "common/telemetry/protobuf_log.h"
#include "ztunnel/app/app.h"

int main(int argc, char** argv) {
  using namespace ambient;
  std::string help;
  // A write to a connection or pipe that is gone is an error to handle (EPIPE), never a reason to exit.
  std::signal(SIGPIPE, SIG_IGN);
  auto config = ztunnel::load_config(argc, argv, &help);
  if (!config) {
    std::fprintf(stderr, "ztunnel: %s\n", config.error().message().c_str());
    return 2;
  }
  if (!help.empty()) {
    std::printf("%s", help.c_str());
    return 0;
  }
  if (auto r = log::init(config->log_level); !r) {
    std::fprintf(stderr, "ztunnel: %s\n", r.error().message().c_str());
    return 2;
  }
  telemetry::route_protobuf_logs();  // a peer's bad strings must not flood stderr
  // Like ztunnel: use every fd the hard limit allows (one per connection end).
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  ztunnel::App app(std::move(*config));
  if (auto r = app.start(); !r) {
    spdlog::error("ztunnel failed to start: {}", r.error());
    return 1;
  }
  return app.run();
}
