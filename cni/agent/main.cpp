// cni-agent: the node agent (enrolls pods into the ambient mesh without restarting them) and its CLI.
// See cni/agent/node_agent.h and README.md.
#include <csignal>
#include <cstdio>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include "cni/agent/agent_cli.h"
#include "cni/agent/kube_pod_source.h"
#include "cni/agent/node_agent.h"
#include "cni/api/api_server.h"
#include "common/admin/http_server.h"
#include "common/base/log.h"
#include "common/telemetry/protobuf_log.h"

int main(int argc, char** argv) {
  using namespace ambient;
  using namespace ambient::cni;
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::printf("%s", top_usage().c_str());
    return argc < 2 ? 2 : 0;
  }
  const std::string verb = argv[1];
  std::string help;
  if (verb != "run") {
    auto out = run_cli_verb(verb, argc - 1, argv + 1, &help);
    if (!help.empty()) {
      std::printf("%s", help.c_str());
      return 0;
    }
    if (!out) {
      std::fprintf(stderr, "cni-agent %s: %s\n", verb.c_str(), out.error().message().c_str());
      return 1;
    }
    std::printf("%s\n", out->c_str());
    return 0;
  }
  auto config = parse_run_config(argc - 1, argv + 1, &help);
  if (!config) {
    std::fprintf(stderr, "cni-agent run: %s\n", config.error().message().c_str());
    return 2;
  }
  if (!help.empty()) {
    std::printf("%s", help.c_str());
    return 0;
  }
  if (auto r = log::init(config->log_level); !r) {
    std::fprintf(stderr, "cni-agent: %s\n", r.error().message().c_str());
    return 2;
  }
  telemetry::route_protobuf_logs();  // a peer's bad strings must not flood stderr
  boost::asio::io_context io(1);
  NodeAgent agent(io.get_executor(), config->agent);
  std::vector<PodSourcePtr> sources;
  sources.push_back(std::make_unique<ApiServer>(io.get_executor(), config->api));
  KubePodSource* kube_source = nullptr;
  if (config->kube.enabled) {
    auto source = std::make_unique<KubePodSource>(io.get_executor(), kube::ApiClient(io.get_executor(), config->kube.api),
                                                  config->kube.source);
    kube_source = source.get();
    // The CNI plugin's ADDs are decided by the same labels as the watch's pods.
    agent.set_cni_admission([kube_source](PodSpec spec) { return kube_source->admit(std::move(spec)); });
    sources.push_back(std::move(source));
  }
  if (auto r = agent.start(std::move(sources)); !r) {
    spdlog::error("cni-agent failed to start: {}", r.error());
    return 1;
  }
  // GET /readyz: ZDS served, and from Kubernetes both caches synced (Istio's istio-cni probe on :8000).
  admin::HttpServer readiness(io.get_executor(), admin::HttpServerOptions{.name = "readiness"});
  if (config->readiness) {
    readiness.route("GET", "/readyz", [&agent, kube_source](const admin::Request&) {
      if (!agent.serving()) return admin::Response::text(503, "not ready: ZDS is not served\n");
      if (kube_source != nullptr && !kube_source->synced())
        return admin::Response::text(503, "not ready: pod and namespace caches not synced\n");
      return admin::Response::text(200, "ready\n");
    });
    if (auto bound = readiness.listen(*config->readiness); !bound) {
      spdlog::error("cni-agent: readiness server on {}: {}", config->readiness->address().to_string(), bound.error());
      return 1;
    }
  }
  spdlog::info("cni-agent ready: ZDS on {}, API on {}, {} rules, {} pods known, pod source {}", config->agent.zds.path,
               config->api.socket_path, to_string(config->agent.backend), agent.store().size(),
               config->kube.enabled ? "kubernetes (node " + config->kube.source.node_name + ")" : std::string("api"));
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    // Pods keep their rules and ztunnel keeps their proxies: an agent restart must not cut traffic.
    spdlog::info("cni-agent: signal {}, stopping (enrolled pods stay enrolled)", sig);
    readiness.stop();
    agent.stop();
    io.stop();
  });
  io.run();
  return 0;
}
