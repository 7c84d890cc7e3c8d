// load_config: the state-source rules (local file and xDS are exclusive) and the xDS settings.
#include "ztunnel/app/config.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <utility>
#include <string>
#include <vector>

using namespace ambient;

namespace {

Result<ztunnel::Config> load(std::vector<const char*> args) {
  args.insert(args.begin(), "ztunnel");
  return ztunnel::load_config(static_cast<int>(args.size()), args.data());
}

}  // namespace

TEST_CASE("config: state source rules") {
  struct Row {
    std::vector<const char*> args;
    const char* error_part;  // nullptr = accepted
  };
  const Row rows[] = {
      {{"--workload-info=ns/a/sa", "--local-config=/tmp/x.yaml"}, nullptr},
      {{"--workload-info=ns/a/sa", "--xds-address=https://istiod.istio-system.svc:15012"}, nullptr},
      {{"--workload-info=ns/a/sa", "--xds-address=https://istiod:15012", "--local-config=/tmp/x.yaml"}, "are exclusive"},
      {{"--workload-info=ns/a/sa", "--xds-address=", "--local-config=/tmp/x.yaml"}, nullptr},  // "" disables xDS
  };
  for (const auto& row : rows) {
    CAPTURE(row.args.size());
    auto c = load(row.args);
    if (row.error_part == nullptr) {
      CHECK_MESSAGE(c.has_value(), (c ? "" : c.error().context));
    } else {
      REQUIRE_FALSE(c.has_value());
      CHECK_MESSAGE(c.error().context.find(row.error_part) != std::string::npos, c.error().context);
    }
  }
}

TEST_CASE("config: xDS settings from flags and XDS_HEADER_* variables") {
  ::setenv("XDS_HEADER_X_TENANT", "blue", 1);
  ::setenv("ISTIO_META_ISTIO_VERSION", "1.99.0", 1);
  auto c = load({"--workload-info=ns/a/sa", "--xds-address=https://127.0.0.1:15012", "--auth-token=/tmp/token",
                 "--xds-root-ca=/tmp/root.pem", "--alt-xds-hostname=istiod.istio-system.svc", "--instance-ip=10.0.0.9",
                 "--pod-name=ztunnel-abc", "--pod-namespace=istio-system"});
  ::unsetenv("XDS_HEADER_X_TENANT");
  ::unsetenv("ISTIO_META_ISTIO_VERSION");
  REQUIRE(c.has_value());
  CHECK(c->control_plane.xds_address == "https://127.0.0.1:15012");
  CHECK(c->control_plane.auth_token_path == "/tmp/token");
  CHECK(c->control_plane.xds_root_ca == "/tmp/root.pem");
  CHECK(c->control_plane.alt_xds_hostname == "istiod.istio-system.svc");
  CHECK(c->control_plane.instance_ip == "10.0.0.9");
  CHECK(c->control_plane.pod_name == "ztunnel-abc");
  CHECK(c->control_plane.pod_namespace == "istio-system");
  bool found = false;
  for (const auto& [k, v] : c->control_plane.xds_headers) found |= k == "x_tenant" && v == "blue";
  CHECK(found);
  bool meta = false;
  for (const auto& [k, v] : c->control_plane.proxy_metadata) meta |= k == "ISTIO_VERSION" && v == "1.99.0";
  CHECK(meta);
}

TEST_CASE("config: CA settings from flags and CA_HEADER_* variables") {
  ::setenv("CA_HEADER_X_TENANT", "green", 1);
  auto c = load({"--workload-info=ns/a/sa", "--local-config=/tmp/x.yaml", "--ca-address=https://istiod.istio-system.svc:15012",
                 "--ca-root-ca=/tmp/ca-root.pem", "--alt-ca-hostname=istiod-ca.istio-system.svc"});
  ::unsetenv("CA_HEADER_X_TENANT");
  REQUIRE(c.has_value());
  CHECK(c->control_plane.ca_address == "https://istiod.istio-system.svc:15012");
  CHECK(c->control_plane.ca_root_ca == "/tmp/ca-root.pem");
  CHECK(c->control_plane.alt_ca_hostname == "istiod-ca.istio-system.svc");
  bool found = false;
  for (const auto& [k, v] : c->control_plane.ca_headers) found |= k == "x_tenant" && v == "green";
  CHECK(found);
  for (const auto& [k, v] : c->control_plane.xds_headers) CHECK(k != "x_tenant");

  auto defaults = load({"--workload-info=ns/a/sa", "--local-config=/tmp/x.yaml"});
  REQUIRE(defaults.has_value());
  CHECK(defaults->control_plane.ca_address.empty());  // the built-in CA
  CHECK(defaults->control_plane.ca_root_ca == "/var/run/secrets/istio/root-cert.pem");

  auto both = load({"--workload-info=ns/a/sa", "--local-config=/tmp/x.yaml", "--ca-address=https://istiod:15012", "--cacerts=/tmp/cacerts"});
  REQUIRE_FALSE(both.has_value());
  CHECK(both.error().context.find("CA_ADDRESS") != std::string::npos);
}

namespace {

// Sets variables for one scope and restores what was there before.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name);
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      ::setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, old] : saved_) old ? ::setenv(name.c_str(), old->c_str(), 1) : ::unsetenv(name.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace

TEST_CASE("config: in a Kubernetes pod, the environment Istio's ztunnel chart passes is enough") {
  // What istio/manifests/charts/ztunnel sets (reference cni-charts.md section 6), and nothing else.
  ScopedEnv env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                 {"CA_ADDRESS", "istiod.istio-system.svc:15012"},
                 {"XDS_ADDRESS", "istiod.istio-system.svc:15012"},
                 {"RUST_LOG", "debug,access=info"},
                 {"ISTIO_META_CLUSTER_ID", "east"},
                 {"INPOD_ENABLED", "true"},
                 {"TERMINATION_GRACE_PERIOD_SECONDS", "30"},
                 {"POD_NAME", "ztunnel-x7"},
                 {"POD_NAMESPACE", "istio-system"},
                 {"NODE_NAME", "node-1"},
                 {"INSTANCE_IP", "10.244.1.3"},
                 {"SERVICE_ACCOUNT", "ztunnel"},
                 {"ZTUNNEL_CPU_LIMIT", "3"}};
  auto c = load({"proxy", "ztunnel"});
  REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().context));
  CHECK(c->mode == ztunnel::ProxyMode::Shared);
  CHECK(c->packet_mark == 1337);
  CHECK(c->control_plane.xds_address == "istiod.istio-system.svc:15012");
  CHECK(c->control_plane.ca_address == "istiod.istio-system.svc:15012");
  CHECK(c->control_plane.auth_token_path == "/var/run/secrets/tokens/istio-token");
  CHECK(c->control_plane.xds_root_ca == "/var/run/secrets/istio/root-cert.pem");
  CHECK(c->control_plane.cluster_id == "east");
  CHECK(c->control_plane.node_name == "node-1");
  CHECK(c->control_plane.pod_name == "ztunnel-x7");
  CHECK(c->control_plane.instance_ip == "10.244.1.3");
  CHECK(c->inpod_uds == "/var/run/ztunnel/ztunnel.sock");
  CHECK(c->termination_deadline == std::chrono::seconds(25));
  CHECK(c->log_level == "debug");
  CHECK(c->worker_threads == 3);
}

TEST_CASE("config: in a Kubernetes pod, istiod is the default state and CA source unless one is set") {
  ScopedEnv env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}};
  auto c = load({});
  REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().context));
  CHECK(c->mode == ztunnel::ProxyMode::Shared);
  CHECK(c->control_plane.xds_address == "https://istiod.istio-system.svc:15012");
  CHECK(c->control_plane.ca_address == "https://istiod.istio-system.svc:15012");
  CHECK(c->termination_deadline == std::chrono::seconds(5));  // no grace period given: the flag's default

  // A local config file and cacerts keep the embedded sources; explicit settings always win.
  auto local = load({"--local-config=/tmp/x.yaml", "--cacerts=/tmp/cacerts", "--proxy-mode=dedicated", "--workload-info=ns/a/sa"});
  REQUIRE_MESSAGE(local.has_value(), (local ? "" : local.error().context));
  CHECK(local->control_plane.xds_address.empty());
  CHECK(local->control_plane.ca_address.empty());
  CHECK(local->mode == ztunnel::ProxyMode::Dedicated);

  ScopedEnv off{{"XDS_ADDRESS", ""}, {"TERMINATION_GRACE_PERIOD_SECONDS", "8"}, {"RUST_LOG", "access=debug"}};
  auto no_xds = load({"--local-config=/tmp/x.yaml"});
  REQUIRE_MESSAGE(no_xds.has_value(), (no_xds ? "" : no_xds.error().context));
  CHECK(no_xds->control_plane.xds_address.empty());
  CHECK(no_xds->termination_deadline == std::chrono::seconds(5));  // 8 s is not over 10 s: the default stays
  CHECK(no_xds->log_level == "info");                              // no bare level in RUST_LOG

  ScopedEnv bad{{"TERMINATION_GRACE_PERIOD_SECONDS", "soon"}};
  auto refused = load({});
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().context.find("TERMINATION_GRACE_PERIOD_SECONDS 'soon'") != std::string::npos);
}

TEST_CASE("config: outside Kubernetes nothing is assumed") {
  REQUIRE(std::getenv("KUBERNETES_SERVICE_HOST") == nullptr);
  auto c = load({});
  REQUIRE_FALSE(c.has_value());  // dedicated mode without PROXY_WORKLOAD_INFO
  CHECK(c.error().context.find("PROXY_WORKLOAD_INFO") != std::string::npos);
  auto args = load({"proxy", "waypoint"});
  REQUIRE_FALSE(args.has_value());
  CHECK(args.error().context.find("unexpected argument 'proxy'") != std::string::npos);
}

TEST_CASE("config: resource bounds (MAX_CONNECTIONS, HBONE_HANDSHAKE_TIMEOUT, HBONE_IDLE_TIMEOUT)") {
  auto c = load({"--workload-info=ns/a/sa", "--local-config=/tmp/x.yaml"});
  REQUIRE(c);
  CHECK(c->max_connections == 0);  // the App derives it from the open-file limit
  CHECK(c->hbone_handshake_timeout == std::chrono::seconds(10));
  CHECK(c->h2.idle_timeout == std::chrono::minutes(10));
  c = load({"--workload-info=ns/a/sa", "--local-config=/tmp/x.yaml", "--max-connections=5000", "--hbone-handshake-timeout=2s",
            "--hbone-idle-timeout=0s"});
  REQUIRE(c);
  CHECK(c->max_connections == 5000);
  CHECK(c->hbone_handshake_timeout == std::chrono::seconds(2));
  CHECK(c->h2.idle_timeout.count() == 0);
  struct Row {
    const char* flag;
    const char* error_part;
  };
  const Row rows[] = {
      {"--max-connections=-1", "--max-connections"},
      {"--max-connections=lots", "--max-connections"},
      {"--hbone-handshake-timeout=0s", "HBONE_HANDSHAKE_TIMEOUT must be positive"},
      {"--hbone-handshake-timeout=10", "number without a unit"},
      {"--hbone-idle-timeout=soon", "--hbone-idle-timeout"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.flag);
    auto bad = load({"--workload-info=ns/a/sa", "--local-config=/tmp/x.yaml", row.flag});
    REQUIRE_FALSE(bad.has_value());
    CHECK_MESSAGE(bad.error().context.find(row.error_part) != std::string::npos, bad.error().context);
  }
}
