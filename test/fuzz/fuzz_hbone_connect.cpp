// fuzz_hbone_connect: what ztunnel's 15008 does with an HBONE CONNECT's request headers
// (Proxy::serve_inbound): build_inbound_request (ztunnel/proxy/inbound_request.h) on :method and
// :authority against a fixed snapshot, parse_authority, and the header parsers of
// common/hbone/connect_headers.h (baggage, forwarded, traceparent) on the other fields.
//
// Input: byte 0 picks the connection's destination IP (kDestinations, modulo); the rest is NUL-separated
// fields: method, authority, then header name, value, name, value, ... (a trailing name without a value is
// dropped). The snapshot is built once from kMesh (local config YAML) in LLVMFuzzerInitialize.
//
// Invariants:
//  - status is 200, 400 or 503; a refusal has a reason, a 200 none; not CONNECT or a bad authority is 400;
//  - a 200 names the local workload at the destination IP and an upstream on that IP, on a port that is not
//    one of ztunnel's own, the application tunnel's port when it has one; a hostname authority names its service;
//  - parse_authority: port 1..65535; "ip:port" / "[v6]:port" / "host:port" re-formatted parses the same;
//  - parse_baggage: build_baggage of the result parses back to it (an empty workload name makes the type moot);
//    the header-list form equals the one-value form over the values joined with ',';
//  - parse_forwarded: errors are Parse with a context; a for= node that parse_forwarded_node reads round-trips
//    through build_forwarded with the host; parse_forwarded_node is stable over format_endpoint;
//  - parse_traceparent: errors are Parse; a parsed header prints back byte for byte.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/hbone/connect_headers.h"
#include "common/net/endpoint.h"
#include "common/state/local_config.h"
#include "common/state/snapshot_builder.h"
#include "test/fuzz/fuzz_protobuf.h"
#include "test/fuzz/fuzz_support.h"
#include "ztunnel/proxy/inbound_request.h"

namespace {

using namespace ambient;
using namespace ambient::ztunnel;
namespace asio = boost::asio;

// Every branch of build_inbound_request: a pod behind a service (endpoint and Service.ports target ports), a
// waypoint by IP and by hostname, application tunnels with and without a port, dual stack.
constexpr std::string_view kMesh = R"(
workloads:
- uid: c//Pod/ns/server
  name: server
  namespace: ns
  serviceAccount: server
  workloadIps: ["10.0.2.1", "fd00::2:1"]
  protocol: HBONE
  services: {"ns/server.ns.svc.cluster.local": {80: 8080, 15008: 15008}}
- uid: c//Pod/ns/waypoint
  name: waypoint
  namespace: ns
  serviceAccount: waypoint
  workloadIps: ["10.0.9.9"]
  protocol: HBONE
  services: {"ns/waypoint.ns.svc.cluster.local": {15008: 15008}}
- uid: c//Pod/ns/guarded
  name: guarded
  namespace: ns
  workloadIps: ["10.0.4.1"]
  protocol: HBONE
  waypoint: {destination: "/10.0.9.9", hboneMtlsPort: 15008}
- uid: c//Pod/ns/guarded-by-name
  name: guarded-by-name
  namespace: ns
  workloadIps: ["10.0.4.2"]
  protocol: HBONE
  waypoint: {destination: "ns/waypoint.ns.svc.cluster.local", hboneMtlsPort: 15008}
- uid: c//Pod/ns/tunnelled
  name: tunnelled
  namespace: ns
  workloadIps: ["10.0.7.1"]
  protocol: HBONE
  applicationTunnel: {protocol: PROXY, port: 15088}
- uid: c//Pod/ns/tunnel-no-port
  name: tunnel-no-port
  namespace: ns
  workloadIps: ["10.0.7.2"]
  protocol: HBONE
  applicationTunnel: {protocol: NONE}
  services: {"ns/server.ns.svc.cluster.local": {}}
services:
- name: server
  namespace: ns
  hostname: server.ns.svc.cluster.local
  vips: ["/10.96.0.10", "/fd00::96:10"]
  ports: {80: 8080, 81: 8181, 15008: 15008}
  waypoint: {destination: "/10.0.9.9", hboneMtlsPort: 15008}
- name: waypoint
  namespace: ns
  hostname: waypoint.ns.svc.cluster.local
  vips: ["/10.96.0.99"]
  ports: {15008: 15008}
)";

// Byte 0 picks one: every workload IP, a v4-mapped form, a VIP (no workload there) and an unknown IP.
constexpr std::array<std::string_view, 11> kDestinations = {
    "10.0.2.1", "fd00::2:1", "10.0.9.9", "10.0.4.1", "10.0.4.2", "10.0.7.1",
    "10.0.7.2", "::ffff:10.0.2.1", "10.96.0.10", "10.0.3.3", "::1",
};
constexpr std::array<std::uint16_t, 4> kOwnPorts = {15001, 15006, 15008, 15080};

std::shared_ptr<const state::Snapshot> g_snapshot;

std::string format_authority(const Authority& a) {
  if (!a.ip) return a.host + ":" + std::to_string(a.port);
  if (a.ip->is_v6()) return "[" + a.ip->to_string() + "]:" + std::to_string(a.port);
  return a.ip->to_string() + ":" + std::to_string(a.port);
}

void check_authority(std::string_view text) {
  auto a = parse_authority(text);
  if (!a) return;
  FUZZ_CHECK(a->port != 0, "port 0 accepted in {:?}", text);
  FUZZ_CHECK(a->ip.has_value() != !a->host.empty(), "authority {:?}: both or neither of ip and host", text);
  const std::string again = format_authority(*a);
  auto b = parse_authority(again);
  FUZZ_CHECK(b && b->ip == a->ip && b->host == a->host && b->port == a->port, "authority {:?} re-formatted as {:?} differs",
             text, again);
}

void check_inbound(std::string_view method, std::string_view authority, const state::IpAddr& dst) {
  const InboundContext ctx{"", kOwnPorts};
  const InboundRequest r = build_inbound_request(*g_snapshot, method, authority, dst, ctx);
  FUZZ_CHECK(r.status == 200 || r.status == 400 || r.status == 503, "status {}", r.status);
  FUZZ_CHECK((r.status == 200) == r.reason.empty(), "status {} with reason {:?}", r.status, r.reason);
  const auto auth = parse_authority(authority);
  if (method != "CONNECT" || !auth) FUZZ_CHECK(r.status == 400, "{} {:?} answered {}", method, authority, r.status);
  if (r.status != 200) return;

  const state::Workload* local = g_snapshot->workload_by_ip("", dst);
  FUZZ_CHECK(r.workload != nullptr && r.workload == local, "200 without the local workload at {}", dst.to_string());
  FUZZ_CHECK(r.upstream.ip == dst, "upstream {} is not the destination {}", r.upstream.to_string(), dst.to_string());
  FUZZ_CHECK(r.upstream.port != 0, "upstream port 0");
  FUZZ_CHECK(std::find(kOwnPorts.begin(), kOwnPorts.end(), r.upstream.port) == kOwnPorts.end(),
             "upstream {} is one of ztunnel's own ports", r.upstream.to_string());
  if (local->has_application_tunnel() && local->application_tunnel().port() != 0)
    FUZZ_CHECK(r.upstream.port == local->application_tunnel().port(), "application tunnel port not used");
  if (!auth->ip) FUZZ_CHECK(r.service != nullptr && r.service->hostname() == auth->host, "hostname authority without its service");
}

// An empty workload name is an absent key: its type does not survive the encoder and does not matter.
hbone::Baggage normalized(hbone::Baggage b) {
  if (b.workload_name.empty()) b.workload_type = hbone::WorkloadType::Deployment;
  return b;
}

void check_baggage(const h2::Headers& headers) {
  std::string joined;
  bool any = false;
  for (const auto& h : headers) {
    if (h.name != hbone::kBaggageHeader) continue;
    if (any) joined.push_back(',');
    joined += h.value;
    any = true;
    const hbone::Baggage one = hbone::parse_baggage(h.value);
    const std::string wire = hbone::build_baggage(one);
    FUZZ_CHECK(wire.size() <= h.value.size(), "build_baggage grew {} bytes to {}", h.value.size(), wire.size());
    FUZZ_CHECK(normalized(hbone::parse_baggage(wire)) == normalized(one), "baggage round trip changed it: {:?}", wire);
  }
  if (!any) return;
  const hbone::Baggage all = hbone::parse_baggage(headers);
  FUZZ_CHECK(all == hbone::parse_baggage(joined), "baggage over {} fields differs from the joined value", headers.size());
}

// format_endpoint prints a v4-mapped IPv6 address as IPv4.
asio::ip::tcp::endpoint canonical(const asio::ip::tcp::endpoint& ep) {
  const auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return {asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()), ep.port()};
  return ep;
}

void check_forwarded(std::string_view value) {
  auto f = hbone::parse_forwarded(value);
  if (!f) {
    fuzz::check_error(f.error(), {ErrorKind::Parse});
    return;
  }
  auto ep = hbone::parse_forwarded_node(f->for_node);
  if (!ep) return;
  const std::string text = net::format_endpoint(*ep);
  auto again = hbone::parse_forwarded_node(text);
  FUZZ_CHECK(again && *again == canonical(*ep), "forwarded node {:?} printed as {:?} reads back differently",
             f->for_node, text);
  const std::string wire = hbone::build_forwarded(*ep, f->host);
  auto back = hbone::parse_forwarded(wire);
  FUZZ_CHECK(back.has_value(), "build_forwarded output {:?} does not parse: {}", wire, back ? "" : back.error().context);
  FUZZ_CHECK(back->for_node == text && back->host == f->host, "forwarded round trip: {:?} became {:?}", value, wire);
}

void check_traceparent(std::string_view value) {
  auto t = hbone::parse_traceparent(value);
  if (!t) {
    fuzz::check_error(t.error(), {ErrorKind::Parse});
    return;
  }
  FUZZ_CHECK(t->header() == value, "traceparent {:?} prints as {:?}", value, t->header());
}

std::string fields(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) {
    if (!out.empty()) out.push_back('\0');
    out.append(p);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silence_protobuf_logs();
  auto config = state::parse_local_config(kMesh, "mesh.yaml");
  if (!config) {
    std::fprintf(stderr, "fuzz_hbone_connect: %s\n", config.error().context.c_str());
    std::abort();
  }
  state::SnapshotBuilder builder;
  if (!state::apply_local_config(*config, builder)) std::abort();
  g_snapshot = builder.build();

  hbone::Baggage bag{"Kubernetes", "ns", hbone::WorkloadType::Deployment, "client", "client", "v1", "us-east1", "us-east1-b"};
  hbone::Baggage pod{"", "ns", hbone::WorkloadType::Pod, "odd name,=%", "", "", "", ""};
  const std::string forwarded = hbone::build_forwarded(asio::ip::tcp::endpoint(asio::ip::make_address("10.0.1.5"), 34567),
                                                       "server.ns.svc.cluster.local");
  const std::string forwarded6 = hbone::build_forwarded(asio::ip::tcp::endpoint(asio::ip::make_address("fd00::1:5"), 80), "a b");
  hbone::TraceParent trace;
  trace.trace_id = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
  trace.span_id = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
  fuzz::write_seeds_if_asked({
      {"connect_ip", std::string(1, '\0') + fields({"CONNECT", "10.0.2.1:8080", "baggage", hbone::build_baggage(bag),
                                                    "forwarded", forwarded, "traceparent", trace.header()})},
      {"connect_v6", std::string(1, '\1') + fields({"CONNECT", "[fd00::2:1]:8080", "forwarded", forwarded6})},
      {"connect_host", std::string(1, '\0') + fields({"CONNECT", "server.ns.svc.cluster.local:81", "baggage",
                                                      hbone::build_baggage(pod), "baggage", "service.name=x;p=1, bad key=v"})},
      {"waypoint", std::string(1, '\2') + fields({"CONNECT", "10.0.4.1:80", "x-forwarded-network", "net1"})},
      {"waypoint_by_name", std::string(1, '\2') + fields({"CONNECT", "10.0.4.2:80"})},
      {"tunnel", std::string(1, '\5') + fields({"CONNECT", "10.96.0.10:80"})},
      {"own_port", std::string(1, '\0') + fields({"CONNECT", "10.0.2.1:15008"})},
      {"get", std::string(1, '\0') + fields({"GET", "10.0.2.1:8080"})},
      {"forwarded_list", std::string(1, '\3') + fields({"CONNECT", "10.0.4.1:9", "forwarded",
                                                        "For=\"[fd00::1]:80\";proto=https;HOST=\"a\\\"b\", for=unknown"})},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto dst = *state::IpAddr::parse(kDestinations[data[0] % kDestinations.size()]);

  std::vector<std::string_view> parts;
  std::string_view rest = fuzz::as_text(data + 1, size - 1);
  for (;;) {
    const auto nul = rest.find('\0');
    parts.push_back(rest.substr(0, nul));
    if (nul == std::string_view::npos) break;
    rest.remove_prefix(nul + 1);
  }
  const std::string_view method = parts[0];
  const std::string_view authority = parts.size() > 1 ? parts[1] : std::string_view{};
  h2::Headers headers;
  for (std::size_t i = 2; i + 1 < parts.size(); i += 2) headers.push_back({std::string(parts[i]), std::string(parts[i + 1])});

  check_authority(authority);
  check_inbound(method, authority, dst);
  check_baggage(headers);
  for (const auto& h : headers) {
    if (h.name == hbone::kForwardedHeader) check_forwarded(h.value);
    if (h.name == hbone::kTraceparentHeader) check_traceparent(h.value);
  }
  return 0;
}
