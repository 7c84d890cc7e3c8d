// load_config: the state-source rules (local file and xDS are exclusive) and the xDS settings.
#include "ztunnel/app/config.h"

#include <doctest/doctest.h>

#include <cstdlib>
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
