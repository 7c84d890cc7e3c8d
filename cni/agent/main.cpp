// cni-agent: the node agent (enrolls pods into the ambient mesh without restarting them) and its CLI.
// See cni/agent/node_agent.h and README.md.
#include <csignal>
#include <cstdio>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cni/agent/agent_cli.h"
#include "cni/agent/kube_pod_source.h"
#include "cni/agent/plugin_removal.h"
#include "cni/install/cni_installer.h"
#include "cni/agent/node_agent.h"
#include "cni/api/api_server.h"
#include "common/admin/http_server.h"
#include "common/base/log.h"
#include "common/telemetry/protobuf_log.h"

namespace {

// On shutdown: remove the plugin only when the agent's DaemonSet is gone or being deleted (plugin_removal.h).
boost::asio::awaitable<void> finish_plugin(boost::asio::any_io_executor ex, const ambient::cni::AgentRunConfig& config,
                                           ambient::cni::install::CniInstaller& installer) {
  using namespace ambient;
  using namespace ambient::cni;
  // A write to a connection or pipe that is gone is an error to handle (EPIPE), never a reason to exit.
  std::signal(SIGPIPE, SIG_IGN);
  const std::string what = fmt::format("DaemonSet {}/{}", config.daemonset_namespace, config.daemonset_name);
  PluginRemoval removal{false, "not on Kubernetes (POD_SOURCE=api): the plugin stays"};
  if (config.kube.enabled) {
    kube::ApiClientLimits quick;  // inside the pod's grace period
    quick.connect_timeout = std::chrono::seconds(3);
    quick.request_timeout = std::chrono::seconds(5);
    kube::ApiClient client(ex, config.kube.api, quick);
    auto daemonset = co_await client.get(
        fmt::format("/apis/apps/v1/namespaces/{}/daemonsets/{}", config.daemonset_namespace, config.daemonset_name));
    removal = decide_plugin_removal(daemonset, what);
  }
  if (!removal.remove) {
    spdlog::info("cni-agent: {}", removal.reason);
    co_return;
  }
  if (auto r = installer.uninstall(); !r) spdlog::warn("cni-agent: {}; removing the CNI plugin: {}", removal.reason, r.error());
  else spdlog::info("cni-agent: {}: the CNI plugin was removed", removal.reason);
}

}  // namespace

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
  // The plugin installer (INSTALL_CNI): binary and conflist entry on the node, kept there.
  std::unique_ptr<install::CniInstaller> installer;
  if (config->install.install_cni) {
    installer = std::make_unique<install::CniInstaller>(io.get_executor(), config->install);
    if (auto r = installer->start(); !r) {
      spdlog::error("cni-agent: the CNI plugin installer failed to start: {}", r.error());
      return 1;
    }
  }
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
    readiness.route("GET", "/readyz", [&agent, kube_source, &installer](const admin::Request&) {
      if (!agent.serving()) return admin::Response::text(503, "not ready: ZDS is not served\n");
      if (kube_source != nullptr && !kube_source->synced())
        return admin::Response::text(503, "not ready: pod and namespace caches not synced\n");
      if (installer && !installer->stats().installed)
        return admin::Response::text(503, "not ready: the CNI plugin is not installed: " +
                                              (installer->stats().waiting ? std::string("no primary CNI config yet") : installer->stats().last_error) + "\n");
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
    if (!installer) {
      io.stop();
      return;
    }
    installer->stop();
    boost::asio::co_spawn(io, finish_plugin(io.get_executor(), *config, *installer), [&io](std::exception_ptr) { io.stop(); });
  });
  io.run();
  return 0;
}
