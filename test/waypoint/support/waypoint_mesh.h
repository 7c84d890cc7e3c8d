#pragma once
// A loopback mesh around one waypoint, every hop real (in-process Apps, real sockets, real mTLS):
//   app (SOCKS5 to 127.0.0.2:15080) -> ztunnel 127.0.0.2 -> HBONE -> waypoint 127.0.0.4 -> HBONE ->
//   ztunnel 127.0.0.5 (echo-v1) | 127.0.0.6 (echo-v2) -> HttpBackend v1 | v2 on :8080, and a TCP echo app on
//   127.0.0.5 behind the `tcp-echo` service. Services with the waypoint: echo (127.10.0.20:80), dead
//   (127.10.0.23:80, its endpoint's port has no listener), tcp-echo (127.10.0.24:9000), grpc-echo
//   (127.10.0.25:50051, for a grpc-test-server on 127.0.0.5 that a gRPC test starts). Routes and policies come
//   from a YAML file the waypoint watches (routes_yaml()).
// With MeshOptions::istiod, the waypoint's workloads and services come from that fake-istiod over xDS and its
// certificate from fake-istiod's CA; the ztunnels keep the local file.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "test/support/fake_istiod.h"
#include "test/waypoint/support/http_backend.h"
#include "test/ztunnel/support/mesh_clients.h"
#include "test/ztunnel/support/ztunnel_pair.h"
#include "waypoint/app/app.h"

namespace ambient::test {

using namespace std::chrono_literals;

inline std::string mesh_yaml(std::uint16_t tcp_echo_port, std::uint16_t grpc_port, bool sandwich) {
  return fmt::format(R"(
workloads:
- uid: Kubernetes//Pod/demo/client
  name: client
  namespace: demo
  serviceAccount: client
  workloadIps: ["127.0.0.2"]
  protocol: HBONE
  canonicalName: client
- uid: Kubernetes//Pod/demo/waypoint
  name: waypoint
  namespace: demo
  serviceAccount: waypoint
  workloadIps: ["127.0.0.4"]
  protocol: HBONE
{2}- uid: Kubernetes//Pod/demo/echo-v1
  name: echo-v1
  namespace: demo
  serviceAccount: echo
  workloadIps: ["127.0.0.5"]
  protocol: HBONE
  canonicalName: echo
  canonicalRevision: v1
  services: {{"demo/echo.demo.svc.cluster.local": {{80: 8080}}, "demo/echo-v1.demo.svc.cluster.local": {{80: 8080}},
             "demo/dead.demo.svc.cluster.local": {{80: 8099}}, "demo/tcp-echo.demo.svc.cluster.local": {{9000: {0}}},
             "demo/grpc-echo.demo.svc.cluster.local": {{50051: {1}}}}}
- uid: Kubernetes//Pod/demo/echo-v2
  name: echo-v2
  namespace: demo
  serviceAccount: echo
  workloadIps: ["127.0.0.6"]
  protocol: HBONE
  canonicalName: echo
  canonicalRevision: v2
  services: {{"demo/echo.demo.svc.cluster.local": {{80: 8080}}, "demo/echo-v2.demo.svc.cluster.local": {{80: 8080}}}}
services:
- name: echo
  namespace: demo
  hostname: echo.demo.svc.cluster.local
  vips: ["/127.10.0.20"]
  ports: {{80: 8080}}
  waypoint: {{destination: "/127.0.0.4", hboneMtlsPort: 15008}}
- name: echo-v1
  namespace: demo
  hostname: echo-v1.demo.svc.cluster.local
  vips: ["/127.10.0.21"]
  ports: {{80: 8080}}
- name: echo-v2
  namespace: demo
  hostname: echo-v2.demo.svc.cluster.local
  vips: ["/127.10.0.22"]
  ports: {{80: 8080}}
- name: dead
  namespace: demo
  hostname: dead.demo.svc.cluster.local
  vips: ["/127.10.0.23"]
  ports: {{80: 8099}}
  waypoint: {{destination: "/127.0.0.4", hboneMtlsPort: 15008}}
- name: tcp-echo
  namespace: demo
  hostname: tcp-echo.demo.svc.cluster.local
  vips: ["/127.10.0.24"]
  ports: {{9000: {0}}}
  waypoint: {{destination: "/127.0.0.4", hboneMtlsPort: 15008}}
- name: grpc-echo
  namespace: demo
  hostname: grpc-echo.demo.svc.cluster.local
  vips: ["/127.10.0.25"]
  ports: {{50051: {1}}}
  waypoint: {{destination: "/127.0.0.4", hboneMtlsPort: 15008}}
)",
                     tcp_echo_port, grpc_port, sandwich ? "  applicationTunnel: {protocol: PROXY, port: 15088}\n" : "");
}

inline std::string routes_yaml(int v1_weight, int v2_weight, std::string_view extra = "") {
  return fmt::format(R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo
  namespace: demo
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
    port: 80
  rules:
  - matches:
    - headers:
      - name: x-version
        value: v2
    backendRefs:
    - name: echo-v2
      port: 80
  - matches:
    - path:
        type: PathPrefix
        value: /flaky
    backendRefs:
    - name: echo-v1
      port: 80
    retry:
      attempts: 3
      codes: [503]
      backoff: 5ms
  - matches:
    - path:
        type: PathPrefix
        value: /mirror
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: echo-v2
          port: 80
    backendRefs:
    - name: echo-v1
      port: 80
  - matches:
    - path:
        type: PathPrefix
        value: /delay
    backendRefs:
    - name: echo-v1
      port: 80
    timeouts:
      request: 300ms
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add:
        - name: x-routed-by
          value: waypoint
    backendRefs:
    - name: echo-v1
      port: 80
      weight: {}
    - name: echo-v2
      port: 80
      weight: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: demo
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: echo
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin*"]
{})",
                     v1_weight, v2_weight, extra);
}

// An HTTP-only DENY on tcp-echo: opaque TCP has no path, so the rule holds there (stricter, never looser).
inline constexpr const char* kDenyTcpEchoByPath = R"(---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-tcp-path
  namespace: demo
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: tcp-echo
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/private"]
)";

inline void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << text;
  std::filesystem::rename(tmp, path);  // atomic: the watcher never sees half a file
}

struct RunningWaypoint {
  std::unique_ptr<waypoint::App> app;
  std::thread control;
  explicit RunningWaypoint(waypoint::AppConfig config) : app(std::make_unique<waypoint::App>(std::move(config))) {
    auto r = app->start();
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
    control = std::thread([a = app.get()] { a->run(); });
  }
  ~RunningWaypoint() {
    app->shutdown();
    if (control.joinable()) control.join();
  }
};

struct MeshOptions {
  std::chrono::milliseconds header_read_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::uint64_t max_connections = 0;  // WAYPOINT_MAX_CONNECTIONS (0: the default)
  std::chrono::milliseconds handshake_timeout{10'000};  // WAYPOINT_HANDSHAKE_TIMEOUT
  std::string extra_config;  // more YAML documents for the routes file
  std::uint16_t grpc_port = 1;  // where grpc-echo's app listens on 127.0.0.5 (a grpc-test-server, if the test runs one)
  // Istio's sandwich binding: a ztunnel serves the waypoint's workload (127.0.0.4:15008) and hands each tunnel
  // to the waypoint over PROXY protocol v2 on 127.0.0.1:15088 (applicationTunnel PROXY); the waypoint has no
  // HBONE listener of its own.
  bool sandwich = false;
  // The waypoint's state source is this fake-istiod (XDS_ADDRESS), started by the mesh with istiod_flags (plus
  // --token) and serving the mesh file as mesh.yaml; its certificate comes from fake-istiod's CA (CA_ADDRESS,
  // AUTH_TOKEN). Every ztunnel's built-in CA is fake-istiod's CA (its key as cacerts), so all hops share one root.
  // start() returns before the first push: the test waits for readiness.
  istiod::IstiodEnv* istiod = nullptr;
  std::vector<std::string> istiod_flags;
};

inline constexpr const char* kMeshIstiodToken = "mesh-token";

// fake-istiod's CA as istiod-style cacerts files (ca-cert.pem, ca-key.pem, root-cert.pem) for a built-in CA.
inline void write_istiod_cacerts(const istiod::IstiodEnv& env, const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  fs::copy_file(env.file("ca.pem"), dir + "/ca-cert.pem", fs::copy_options::overwrite_existing);
  fs::copy_file(env.file("ca.pem"), dir + "/root-cert.pem", fs::copy_options::overwrite_existing);
  fs::copy_file(env.file("ca.key"), dir + "/ca-key.pem", fs::copy_options::overwrite_existing);
}

struct Mesh {
  std::string dir = make_temp_dir();
  std::string mesh = dir + "/mesh.yaml";
  std::string routes = dir + "/routes.yaml";
  std::string cacerts = dir + "/cacerts";
  std::unique_ptr<HttpBackend> v1, v2;
  std::unique_ptr<EchoApp> tcp_echo;
  std::unique_ptr<RunningZtunnel> client, z1, z2, zwp;
  std::unique_ptr<RunningWaypoint> wp;

  explicit Mesh(MeshOptions o = {}) {
    tcp_echo = std::make_unique<EchoApp>("127.0.0.5");
    const std::string yaml = mesh_yaml(tcp_echo->port(), o.grpc_port, o.sandwich);
    write_file(mesh, yaml);
    if (o.istiod != nullptr) {
      write_istiod_cacerts(*o.istiod, cacerts);
      write_file(dir + "/token", std::string(kMeshIstiodToken) + "\n");
      o.istiod->write_config("mesh.yaml", yaml);
      o.istiod_flags.insert(o.istiod_flags.begin(), {"--token", kMeshIstiodToken});
      REQUIRE_MESSAGE(o.istiod->start(o.istiod_flags), o.istiod->error());
    } else {
      write_cacerts(cacerts);
    }
    write_file(routes, routes_yaml(90, 10, o.extra_config));
    v1 = std::make_unique<HttpBackend>("v1", "127.0.0.5", 8080);
    v2 = std::make_unique<HttpBackend>("v2", "127.0.0.6", 8080);
    client = std::make_unique<RunningZtunnel>(pair_config(mesh, cacerts, "127.0.0.2", "demo/client/client", 1));
    z1 = std::make_unique<RunningZtunnel>(pair_config(mesh, cacerts, "127.0.0.5", "demo/echo-v1/echo", 1));
    z2 = std::make_unique<RunningZtunnel>(pair_config(mesh, cacerts, "127.0.0.6", "demo/echo-v2/echo", 1));
    if (o.sandwich) zwp = std::make_unique<RunningZtunnel>(pair_config(mesh, cacerts, "127.0.0.4", "demo/waypoint/waypoint", 1));
    waypoint::AppConfig c;
    c.local_config_path = mesh;
    c.route_paths = {routes};
    c.reload_interval = 50ms;
    c.ns = "demo";
    c.name = "waypoint";
    c.service_account = "waypoint";
    c.gateway_name = "waypoint";
    c.cacerts_dir = cacerts;
    c.bind_address = boost::asio::ip::make_address("127.0.0.4");
    c.admin = {boost::asio::ip::make_address("127.0.0.4"), 0};
    c.metrics = {boost::asio::ip::make_address("127.0.0.4"), 0};
    c.readiness = {boost::asio::ip::make_address("127.0.0.4"), 0};
    c.worker_threads = 2;
    c.h2.ping_interval = 0ms;
    c.termination_deadline = 1000ms;
    c.header_read_timeout = o.header_read_timeout;
    c.idle_timeout = o.idle_timeout;
    c.max_connections = o.max_connections;
    c.handshake_timeout = o.handshake_timeout;
    if (o.sandwich) {
      c.hbone_enabled = false;
      c.proxy_protocol_port = 15088;
    }
    if (o.istiod != nullptr) {
      c.local_config_path.clear();
      c.cacerts_dir.clear();
      auto& cp = c.control_plane;
      cp.xds_address = cp.ca_address = fmt::format("https://127.0.0.1:{}", o.istiod->port());
      cp.xds_root_ca = cp.ca_root_ca = o.istiod->file("ca.pem");
      cp.auth_token_path = dir + "/token";
      cp.instance_ip = "127.0.0.4";
      cp.pod_name = "waypoint-0";
      cp.pod_namespace = "demo";
    }
    wp = std::make_unique<RunningWaypoint>(std::move(c));
  }
  ~Mesh() {
    wp.reset();
    zwp.reset();
    client.reset();
    z1.reset();
    z2.reset();
    v1.reset();
    v2.reset();
    tcp_echo.reset();
    std::filesystem::remove_all(dir);
  }
  SocksHttpClient connect(const std::string& vip = "127.10.0.20", std::uint16_t port = 80) {
    return SocksHttpClient("127.0.0.2", 15080, vip, port);
  }
};


}  // namespace ambient::test
