#pragma once
// WaypointProxy::Tunnel: one inbound tunnel, fixed when it is accepted: an HBONE CONNECT stream (peer identity from
// the mTLS certificate, destination from :authority) or a PROXY protocol v2 connection from the local ztunnel
// (Istio's sandwich: identity from TLV 0xD0, destination from the header). `io` is its byte pipe either way.
// The L7 state it was accepted with; HTTP requests are decided on the newest state (see http1_exchange.cpp).
#include <memory>
#include <string>

#include "common/h2/stream.h"
#include "common/h2/transport.h"
#include "common/hbone/tunnel.h"
#include "common/rbac/connection.h"
#include "common/state/ip_asio.h"
#include "waypoint/proxy/l7_state.h"
#include "waypoint/proxy/waypoint_proxy.h"

namespace ambient::waypoint {

struct WaypointProxy::Tunnel {
  std::shared_ptr<const L7State> state;
  std::shared_ptr<const hbone::PeerInfo> peer;
  std::shared_ptr<h2::Stream> stream;  // HBONE: the CONNECT stream (null for PROXY protocol tunnels)
  std::shared_ptr<h2::Transport> io;   // the tunnel's bytes: the CONNECT stream, or the TCP connection
  std::string authority;
  Destination destination;
  state::IpAddr source_ip;
  const state::Workload* source = nullptr;  // the peer's workload, when its IP is known

  // Ends the tunnel gracefully: an HBONE stream lets its END_STREAM go out (h2::Stream::finish); a TCP
  // connection closes when `io` goes away.
  boost::asio::awaitable<void> end() {
    if (stream) co_await stream->finish();
  }

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
