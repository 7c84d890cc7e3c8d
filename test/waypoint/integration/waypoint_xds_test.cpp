// The waypoint with its workloads and services from fake-istiod (a real grpc++ process) over Delta ADS
// (XDS_ADDRESS) and its certificate from fake-istiod's CA (CA_ADDRESS), in the loopback mesh of waypoint_mesh.h:
//   app -> ztunnel -> HBONE -> waypoint (state: xDS; certificate: Istio CA) -> HBONE -> ztunnel -> backend
// It is ready only after the first push, /config_dump shows the pushed services and the stream, a service pushed at
// runtime is used by the next request (and a removed one no longer), and a route-file reload keeps the pushed state.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>

#include <boost/asio/io_context.hpp>
#include <fmt/format.h>
#include <openssl/x509.h>

#include "common/base/log.h"
#include "common/net/tcp_stream.h"
#include "common/tls/ca.h"
#include "common/tls/pki.h"
#include "common/tls/tls_context.h"
#include "common/tls/tls_stream.h"
#include "test/support/run_coro.h"
#include "test/waypoint/support/waypoint_mesh.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// echo-v3 on 127.0.0.7 (its own ztunnel and app): what fake-istiod pushes at runtime.
constexpr const char* kV3Yaml = R"(
workloads:
- uid: Kubernetes//Pod/demo/echo-v3
  name: echo-v3
  namespace: demo
  serviceAccount: echo
  workloadIps: ["127.0.0.7"]
  protocol: HBONE
  canonicalName: echo
  canonicalRevision: v3
  services: {"demo/echo-v3.demo.svc.cluster.local": {80: 8080}}
services:
- name: echo-v3
  namespace: demo
  hostname: echo-v3.demo.svc.cluster.local
  vips: ["/127.10.0.26"]
  ports: {80: 8080}
)";

// /v3 on the echo service goes to echo-v3: a route whose backend the state does not name until the push.
constexpr const char* kV3Route = R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo-v3
  namespace: demo
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
    port: 80
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /v3
    backendRefs:
    - name: echo-v3
      port: 80
)";

std::string first_line(const std::string& body) { return body.substr(0, body.find('\n')); }
std::string dump(const waypoint::App& app) { return http_get(app.admin_endpoint(), "/config_dump"); }
std::string readiness(const waypoint::App& app) { return http_get(app.readiness_endpoint(), "/healthz/ready"); }

// The integer after "\"key\": " in the xds part of a config dump (-1 when absent).
long xds_value(const std::string& d, const std::string& key) {
  const auto x = d.find("\"xds\": {");
  if (x == std::string::npos) return -1;
  const auto p = d.find("\"" + key + "\": ", x);
  return p == std::string::npos ? -1 : std::atol(d.c_str() + p + key.size() + 4);
}

// The certificate the waypoint presents to a new TLS connection on its HBONE port, seen by a probe client whose
// certificate comes from the mesh's CA (fake-istiod's key, as cacerts) and that expects the waypoint's identity.
Result<bssl::UniquePtr<X509>> presented_certificate(const std::string& cacerts, std::uint16_t port) {
  auto ca = tls::CertificateAuthority::load_cacerts_dir(cacerts);
  if (!ca) return std::move(ca).error();
  auto key = ca->issue(*tls::parse_spiffe("spiffe://cluster.local/ns/demo/sa/probe"), std::chrono::hours(1));
  if (!key) return std::move(key).error();
  auto ctx = tls::make_client_context(*key);
  if (!ctx) return std::move(ctx).error();
  asio::io_context io;
  return run_coro(io, [&]() -> asio::awaitable<Result<bssl::UniquePtr<X509>>> {
    const asio::ip::tcp::endpoint hbone(asio::ip::make_address("127.0.0.4"), port);
    auto tcp = co_await net::connect(hbone, 5s);
    if (!tcp) co_return tcp.error();
    auto ssl = tls::new_client_ssl(ctx->get(), {"spiffe://cluster.local/ns/demo/sa/waypoint"});
    if (!ssl) co_return ssl.error();
    tls::TlsStream stream(std::move(tcp->socket()), std::move(*ssl));
    auto h = co_await stream.handshake(5s);
    if (!h) co_return h.error();
    bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(stream.ssl()));
    if (!peer) co_return make_error(ErrorKind::Certificate, "no peer certificate");
    co_return peer;
  }());
}

}  // namespace

TEST_SUITE("waypoint/integration/xds") {
  TEST_CASE("state from fake-istiod over xDS, certificate from its CA: ready after the push, routes, follows pushes") {
    (void)ambient::log::set_level("warn");
    istiod::IstiodEnv istiod;
    MeshOptions o;
    o.istiod = &istiod;
    o.istiod_flags = {"--push-delay-ms", "1500"};  // the first push comes well after start()
    o.extra_config = kV3Route;
    Mesh m(o);
    // echo-v3's ztunnel and app run from the start (their own local file); the waypoint learns of them by a push.
    const std::string v3_file = m.dir + "/v3.yaml";
    write_file(v3_file, kV3Yaml);
    HttpBackend v3("v3", "127.0.0.7", 8080);
    RunningZtunnel z3(pair_config(v3_file, m.cacerts, "127.0.0.7", "demo/echo-v3/echo", 1));
    const waypoint::App& app = *m.wp->app;

    // Not ready before the first Address response: the "config" task is pending and no service is known.
    const std::string early = readiness(app);
    INFO(early);
    CHECK(early.starts_with("HTTP/1.1 500"));
    CHECK(early.find("config") != std::string::npos);
    CHECK(dump(app).find("echo.demo.svc.cluster.local") == std::string::npos);

    // Ready once pushed; the dump shows the pushed workloads and services and the stream.
    REQUIRE(wait_for([&] { return readiness(app).starts_with("HTTP/1.1 200"); }, 15s));
    REQUIRE(istiod.admin("POST", "/fault?push-delay-ms=0").status == 200);
    std::string d = dump(app);
    INFO(d);
    for (const char* host : {"echo.demo.svc.cluster.local", "echo-v1.demo.svc.cluster.local", "echo-v2.demo.svc.cluster.local",
                             "tcp-echo.demo.svc.cluster.local", "Kubernetes//Pod/demo/echo-v1"})
      CHECK_MESSAGE(d.find(host) != std::string::npos, host);
    CHECK(d.find(fmt::format("\"xds\": {{\"address\": \"https://127.0.0.1:{}\", \"connected\": true", istiod.port())) != std::string::npos);
    CHECK(xds_value(d, "acks") >= 1);
    CHECK(xds_value(d, "nacks") == 0);
    CHECK(d.find("\"localXdsPath\": \"\"") != std::string::npos);
    // The node as istiod's waypoint pods send it: "waypoint~<ip>~<pod>.<ns>~<ns>.svc.cluster.local", string metadata.
    const std::string status = istiod.admin("GET", "/status").body;
    INFO(status);
    CHECK(status.find("\"last_node\": \"waypoint~127.0.0.4~waypoint-0.demo~demo.svc.cluster.local ") != std::string::npos);
    CHECK(status.find("CLUSTER_ID=Kubernetes") != std::string::npos);
    CHECK(status.find("NAMESPACE=demo") != std::string::npos);

    // The waypoint's certificate was issued by fake-istiod's CA (signed by its key) for the waypoint's identity.
    CHECK(istiod.status_value("csrs_signed") >= 1);
    auto peer = presented_certificate(m.cacerts, app.hbone_port());
    REQUIRE_MESSAGE(peer.has_value(), (peer ? "" : peer.error().message()));
    auto ca_cert = tls::certificate_from_pem(istiod::read_text(istiod.file("ca.pem")));
    REQUIRE(ca_cert.has_value());
    bssl::UniquePtr<EVP_PKEY> ca_key(X509_get_pubkey(ca_cert->get()));
    REQUIRE(ca_key);
    CHECK(X509_verify(peer->get(), ca_key.get()) == 1);
    CHECK(X509_NAME_cmp(X509_get_issuer_name(peer->get()), X509_get_subject_name(ca_cert->get())) == 0);

    // Real requests through the waypoint to the pushed endpoints.
    {
      auto c = m.connect();
      REQUIRE(c.ok());
      auto r = c.request("GET", "/hello", {{"x-version", "v2"}});
      CHECK(r.status == 200);
      CHECK(first_line(r.body) == "v2 GET /hello");
      auto r2 = c.request("GET", "/plain", {{"x-version", "v1"}});
      CHECK(r2.status == 200);
      CHECK(r2.body.find("x-routed-by: waypoint") != std::string::npos);
      // echo-v3 is not in the state yet: its route has no backend.
      auto r3 = c.request("GET", "/v3/before");
      CHECK(r3.status == 500);
      CHECK(v3.requests() == 0);
    }

    // A pushed workload and service are used by the next request.
    const long responses = xds_value(dump(app), "responses");
    istiod.write_config("v3.yaml", kV3Yaml);
    REQUIRE(wait_for([&] { return dump(app).find("echo-v3.demo.svc.cluster.local") != std::string::npos; }, 10s));
    CHECK(xds_value(dump(app), "responses") > responses);
    {
      auto c = m.connect();
      REQUIRE(c.ok());
      auto r = c.request("GET", "/v3/after");
      CHECK(r.status == 200);
      CHECK(first_line(r.body) == "v3 GET /v3/after");
      CHECK(v3.requests() == 1);
    }

    // A route-file reload builds on the latest push (not on a local file): echo-v3 stays reachable, the new weights apply.
    write_file(m.routes, routes_yaml(0, 100, kV3Route));
    REQUIRE(wait_for([&] { return dump(app).find("\"reloads\": 1,") != std::string::npos; }, 5s));
    {
      auto c = m.connect();
      REQUIRE(c.ok());
      auto r = c.request("GET", "/v3/reloaded");
      CHECK(r.status == 200);
      CHECK(first_line(r.body) == "v3 GET /v3/reloaded");
      for (int i = 0; i < 10; ++i) CHECK(c.request("GET", "/split").headers["x-backend"] == "v2");
    }
    CHECK(dump(app).find("\"reloadFailures\": 0") != std::string::npos);

    // A service removed by a push is gone for the next request.
    std::filesystem::remove(istiod.config_dir() + "/v3.yaml");
    REQUIRE(wait_for([&] { return dump(app).find("echo-v3.demo.svc.cluster.local") == std::string::npos; }, 10s));
    {
      auto c = m.connect();
      REQUIRE(c.ok());
      CHECK(c.request("GET", "/v3/removed").status == 500);
      CHECK(c.request("GET", "/hello", {{"x-version", "v2"}}).status == 200);
    }
    CHECK(v3.requests() == 2);
    CHECK(readiness(app).starts_with("HTTP/1.1 200"));
  }
}
