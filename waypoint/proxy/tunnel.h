#pragma once
// WaypointProxy::Tunnel: what one inbound CONNECT stream carries, fixed when the tunnel is accepted: the L7 state
// it is served with (a new state applies to the next tunnel), the peer, and the destination its authority named.
#include <memory>
#include <string>

#include "common/h2/stream.h"
#include "common/hbone/tunnel.h"
#include "common/rbac/connection.h"
#include "common/state/ip_asio.h"
#include "waypoint/proxy/l7_state.h"
#include "waypoint/proxy/waypoint_proxy.h"

namespace ambient::waypoint {

struct WaypointProxy::Tunnel {
  std::shared_ptr<const L7State> state;
  std::shared_ptr<const hbone::PeerInfo> peer;
  std::shared_ptr<h2::Stream> stream;
  std::string authority;
  Destination destination;
  state::IpAddr source_ip;
  const state::Workload* source = nullptr;  // the peer's workload, when its IP is known

  // The request attributes authorization sees before any HTTP: identity, addresses, port.
  L7Request authz_request() const {
    L7Request r;
    const auto& id = peer->identity;
    r.source = rbac::Identity::from_parts(id.trust_domain, id.ns, id.sa);
    if (auto ip = rbac::IpAddress::from_bytes(source_ip.to_bytes())) r.source_ip = *ip;
    const auto colon = authority.rfind(':');
    std::string host = authority.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    if (auto ip = rbac::IpAddress::parse(host)) r.destination_ip = *ip;
    r.destination_port = destination.port;
    return r;
  }
};

}  // namespace ambient::waypoint
