#pragma once
// Inbound HBONE CONNECT validation (reference ztunnel.md 3.3). Pure: the I/O code answers with `status`
// and, for 200, connects to `upstream`. Authorization (401) is a separate step (common/rbac).
//
//  1. method other than CONNECT                          -> 400
//  2. :authority not "ip:port", "[v6]:port" or "host:port" -> 400
//  3. no local workload at the connection's destination IP -> 503
//  4. IP authority != destination IP, unless the local workload has an application tunnel or is the
//     waypoint of the authority's service/workload      -> 400 (IP mismatch)
//  5. target port: the authority's port, or for a hostname authority the service's target port for the
//     local workload (endpoint map, then Service.ports); unknown -> 503; one of ztunnel's own ports -> 503
//  6. application_tunnel.port overrides the port.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/state/snapshot.h"
#include "ztunnel/proxy/outbound_request.h"

namespace ambient::ztunnel {

struct Authority {
  std::optional<state::IpAddr> ip;  // set for "ip:port" / "[v6]:port"
  std::string host;                 // set for "host:port"
  std::uint16_t port = 0;
};
// Parses a CONNECT :authority. Port 1..65535 required.
std::optional<Authority> parse_authority(std::string_view text);

struct InboundRequest {
  int status = 200;                   // 200, or the refusal status (400, 503)
  std::string reason;                 // why, for the log (refusals)
  const state::Workload* workload = nullptr;  // the local destination workload
  const state::Service* service = nullptr;    // for a hostname authority
  SocketAddr upstream;                // where the app is (local workload IP : target port)
};

struct InboundContext {
  std::string_view network;
  std::span<const std::uint16_t> own_ports;  // refused as targets (15001, 15006, 15008, 15080)
};

InboundRequest build_inbound_request(const state::Snapshot& snapshot, std::string_view method, std::string_view authority,
                                     const state::IpAddr& connection_destination, const InboundContext& ctx);

}  // namespace ambient::ztunnel
