#pragma once
// WaypointProxy::UpstreamConn: one upstream HTTP/1.1 connection (an HBONE stream or a TCP connection) with its
// response reader. Idle ones wait in the worker's set, keyed by the target's ip:port, for the next request.
#include <memory>
#include <string>

#include "common/h2/transport.h"
#include "waypoint/http1/codec.h"
#include "waypoint/http1/reader.h"
#include "waypoint/proxy/waypoint_proxy.h"

namespace ambient::waypoint {

struct WaypointProxy::UpstreamConn {
  UpstreamConn(std::unique_ptr<h2::Transport> p, std::string k, const http1::Limits& limits)
      : pipe(std::move(p)), reader(*pipe, limits), key(std::move(k)) {}
  std::unique_ptr<h2::Transport> pipe;  // first: the reader refers to it
  http1::Reader<h2::Transport> reader;
  std::string key;  // the target's ip:port (idle set key)
};

}  // namespace ambient::waypoint
