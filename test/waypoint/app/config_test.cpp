// load_app_config: the waypoint's state source (local file or istiod's xDS: exactly one), its certificate source
// (built-in CA or istiod's CA: at most one set), and the control-plane settings it shares with ztunnel.
#include "waypoint/app/config.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

using namespace ambient;

namespace {

Result<waypoint::AppConfig> load(std::vector<const char*> args) {
  args.insert(args.begin(), "waypoint");
  args.insert(args.begin() + 1, "--workload-info=demo/waypoint/waypoint-sa");
  return waypoint::load_app_config(static_cast<int>(args.size()), args.data());
}

}  // namespace

TEST_SUITE("waypoint/app/config") {
  TEST_CASE("state source: LOCAL_XDS_PATH or XDS_ADDRESS, exactly one") {
    struct Row {
      const char* name;
      std::vector<const char*> args;
      std::vector<const char*> error_parts;  // empty = accepted
    };
    const std::vector<Row> rows = {
        {"local file alone", {"--local-config=/tmp/mesh.yaml"}, {}},
        {"xDS alone", {"--xds-address=https://istiod.istio-system.svc:15012"}, {}},
        {"xDS disabled by an empty value, local file", {"--xds-address=", "--local-config=/tmp/mesh.yaml"}, {}},
        {"both", {"--local-config=/tmp/mesh.yaml", "--xds-address=https://istiod:15012"},
         {"LOCAL_XDS_PATH (/tmp/mesh.yaml)", "XDS_ADDRESS (https://istiod:15012)", "are exclusive"}},
        {"neither", {}, {"no state source", "LOCAL_XDS_PATH", "XDS_ADDRESS"}},
        {"neither (both empty)", {"--local-config=", "--xds-address="}, {"no state source"}},
        {"both, CA from istiod and the built-in CA", {"--xds-address=https://istiod:15012", "--ca-address=https://istiod:15012", "--cacerts=/tmp/cacerts"},
         {"CA_ADDRESS (https://istiod:15012)", "CA_CERTS_DIR (/tmp/cacerts)", "are exclusive"}},
        {"xDS and istiod's CA", {"--xds-address=https://istiod:15012", "--ca-address=https://istiod:15012"}, {}},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto c = load(row.args);
      if (row.error_parts.empty()) {
        CHECK_MESSAGE(c.has_value(), (c ? "" : c.error().context));
      } else {
        REQUIRE_FALSE(c.has_value());
        CHECK(c.error().kind == ErrorKind::InvalidArgument);
        for (const char* part : row.error_parts) CHECK_MESSAGE(c.error().context.find(part) != std::string::npos, c.error().context);
      }
    }
  }

  TEST_CASE("state source from the environment: XDS_ADDRESS beside --local-config is refused") {
    ::setenv("XDS_ADDRESS", "https://istiod.istio-system.svc:15012", 1);
    auto both = load({"--local-config=/tmp/mesh.yaml"});
    auto alone = load({});
    ::unsetenv("XDS_ADDRESS");
    REQUIRE_FALSE(both.has_value());
    CHECK(both.error().context.find("are exclusive") != std::string::npos);
    REQUIRE(alone.has_value());
    CHECK(alone->control_plane.xds_address == "https://istiod.istio-system.svc:15012");
    CHECK(alone->local_config_path.empty());
  }

  TEST_CASE("xDS and CA settings: flags, XDS_HEADER_*/CA_HEADER_*/ISTIO_META_*, node defaults from the workload") {
    ::setenv("XDS_HEADER_X_TENANT", "blue", 1);
    ::setenv("CA_HEADER_X_CA_TENANT", "green", 1);
    ::setenv("ISTIO_META_ISTIO_VERSION", "1.99.0", 1);
    auto c = load({"--xds-address=https://127.0.0.1:15012", "--xds-root-ca=/tmp/root.pem", "--alt-xds-hostname=istiod.istio-system.svc",
                   "--auth-token=/tmp/token", "--instance-ip=10.0.0.7", "--cluster-id=east", "--node-name=node-a",
                   "--ca-address=https://127.0.0.1:15013", "--ca-root-ca=/tmp/ca-root.pem", "--alt-ca-hostname=istiod-ca.istio-system.svc"});
    ::unsetenv("XDS_HEADER_X_TENANT");
    ::unsetenv("CA_HEADER_X_CA_TENANT");
    ::unsetenv("ISTIO_META_ISTIO_VERSION");
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().context));
    const auto& cp = c->control_plane;
    CHECK(cp.xds_address == "https://127.0.0.1:15012");
    CHECK(cp.xds_root_ca == "/tmp/root.pem");
    CHECK(cp.alt_xds_hostname == "istiod.istio-system.svc");
    CHECK(cp.auth_token_path == "/tmp/token");
    CHECK(cp.instance_ip == "10.0.0.7");
    CHECK(cp.cluster_id == "east");
    CHECK(cp.node_name == "node-a");
    CHECK(cp.ca_address == "https://127.0.0.1:15013");
    CHECK(cp.ca_root_ca == "/tmp/ca-root.pem");
    CHECK(cp.alt_ca_hostname == "istiod-ca.istio-system.svc");
    // No POD_NAME / POD_NAMESPACE: the node names the waypoint's workload.
    CHECK(cp.pod_name == "waypoint");
    CHECK(cp.pod_namespace == "demo");
    const std::pair<std::string, std::string> xds_header{"x_tenant", "blue"}, ca_header{"x_ca_tenant", "green"},
        meta{"ISTIO_VERSION", "1.99.0"};
    CHECK(std::find(cp.xds_headers.begin(), cp.xds_headers.end(), xds_header) != cp.xds_headers.end());
    CHECK(std::find(cp.ca_headers.begin(), cp.ca_headers.end(), ca_header) != cp.ca_headers.end());
    CHECK(std::find(cp.xds_headers.begin(), cp.xds_headers.end(), ca_header) == cp.xds_headers.end());
    CHECK(std::find(cp.proxy_metadata.begin(), cp.proxy_metadata.end(), meta) != cp.proxy_metadata.end());

    auto named = load({"--xds-address=https://127.0.0.1:15012", "--pod-name=waypoint-7d9f", "--pod-namespace=apps"});
    REQUIRE(named.has_value());
    CHECK(named->control_plane.pod_name == "waypoint-7d9f");
    CHECK(named->control_plane.pod_namespace == "apps");

    auto defaults = load({"--local-config=/tmp/mesh.yaml"});
    REQUIRE(defaults.has_value());
    CHECK(defaults->control_plane.xds_address.empty());
    CHECK(defaults->control_plane.ca_address.empty());  // the built-in CA
    CHECK(defaults->control_plane.xds_root_ca == "/var/run/secrets/istio/root-cert.pem");
    CHECK(defaults->control_plane.cluster_id == "Kubernetes");
  }

  TEST_CASE("resource bounds: WAYPOINT_MAX_CONNECTIONS, WAYPOINT_IDLE_TIMEOUT, WAYPOINT_HANDSHAKE_TIMEOUT") {
    auto c = load({"--local-config=/tmp/mesh.yaml"});
    REQUIRE(c);
    CHECK(c->max_connections == 0);  // the App derives it from the open-file limit
    CHECK(c->idle_timeout == std::chrono::hours(1));
    CHECK(c->handshake_timeout == std::chrono::seconds(10));
    c = load({"--local-config=/tmp/mesh.yaml", "--max-connections=300", "--idle-timeout=90s", "--handshake-timeout=2s"});
    REQUIRE(c);
    CHECK(c->max_connections == 300);
    CHECK(c->idle_timeout == std::chrono::seconds(90));
    CHECK(c->handshake_timeout == std::chrono::seconds(2));
    for (const auto& [bad, flag] : {std::pair{"--max-connections=-5", "--max-connections"},
                                    std::pair{"--max-connections=many", "--max-connections"},
                                    std::pair{"--handshake-timeout=0s", "--handshake-timeout"},
                                    std::pair{"--handshake-timeout=soon", "handshake-timeout"}}) {
      const std::string arg = bad, name = flag;  // no structured bindings in CAPTURE (a lambda, clang 14)
      CAPTURE(arg);
      auto r = load({"--local-config=/tmp/mesh.yaml", arg.c_str()});
      REQUIRE_FALSE(r.has_value());
      CHECK_MESSAGE(r.error().context.find(name) != std::string::npos, r.error().context);
    }
  }
}
