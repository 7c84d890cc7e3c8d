#pragma once
// The outbound decision (reference ztunnel.md 3.8): where one captured connection goes. Pure: no I/O, no
// clock; randomness comes from the caller so tests are deterministic. The I/O code only executes the
// returned OutboundRequest.
//
// Order:
//  1. Self-call: a loopback destination on one of ztunnel's own ports is refused.
//  2. Service VIP (on the local network): if the service has a waypoint (and the source is not that
//     waypoint) -> HBONE to the waypoint with the original authority. LB mode PASSTHROUGH -> TCP to the
//     original destination. Else pick an endpoint: healthy (unless HealthPolicy ALLOW_ALL), with an
//     address on the local network and a port mapping for the service port, randomly, weighted by
//     capacity. None -> NoHealthyUpstream.
//  3. Else a workload by IP; unknown destinations -> plain TCP passthrough to the original destination.
//  4. Workload waypoint (not service-addressed, source not that waypoint) -> HBONE to it, original authority.
//  5. Endpoint tunnel_protocol HBONE -> HBONE to <workload IP>:15008, authority <workload IP>:<target port>,
//     expected SANs = workload identity + the service's subject_alt_names; NONE -> TCP to <IP>:<target port>.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "common/state/ip_addr.h"
#include "common/state/snapshot.h"

namespace ambient::ztunnel {

enum class Protocol : std::uint8_t {
  Tcp,    // plain TCP to `next_hop`
  Hbone,  // mTLS + HTTP/2 CONNECT to `next_hop` (a ztunnel or waypoint 15008) with `authority`
};

struct SocketAddr {
  state::IpAddr ip;
  std::uint16_t port = 0;
  std::string to_string() const;  // "1.2.3.4:80", "[fd00::1]:80"
  bool operator==(const SocketAddr&) const = default;
};

struct OutboundRequest {
  Protocol protocol = Protocol::Tcp;
  SocketAddr next_hop;                    // where the TCP connection goes (HBONE: peer's 15008)
  std::string authority;                  // HBONE CONNECT :authority ("ip:port"); empty for TCP
  std::vector<std::string> upstream_sans; // HBONE: the peer must hold one of these identities
  // For telemetry and logs (may be null):
  const state::Workload* destination_workload = nullptr;  // final workload (null via waypoint or passthrough)
  const state::Service* destination_service = nullptr;    // service the VIP belonged to
  const state::Workload* waypoint = nullptr;              // the waypoint workload, when via a waypoint
  bool passthrough = false;               // unknown destination: TCP to the original address
};

struct OutboundContext {
  std::string_view network;                   // local network ("" by default)
  std::span<const std::uint16_t> own_ports;   // 15001, 15006, 15008 (+15080): refused on loopback
  std::uint16_t hbone_port = 15008;           // HBONE port of peer ztunnels
  std::function<std::uint64_t()> random;      // uniform 64-bit values (endpoint choice)
};

// `source` is the workload the connection comes from; `dst` the original destination.
Result<OutboundRequest> build_outbound_request(const state::Snapshot& snapshot, const state::Workload& source,
                                               const SocketAddr& dst, const OutboundContext& ctx);

}  // namespace ambient::ztunnel
