// fuzz_waypoint_config: parse_waypoint_config (waypoint/config/waypoint_config.h) on one file's text: the
// Kubernetes YAML (HTTPRoute, GRPCRoute, AuthorizationPolicy) the waypoint watches and reloads.
//
// Invariants: never throws or aborts; errors are one of the documented kinds with a context naming the source;
// a config that loads builds a RouteTable for its routes (what the waypoint does next); bounded time and memory
// (YAML aliases, nesting and documents are bounded while streaming: common/state/yaml_walker.h). Regression seeds:
// corpus/fuzz_waypoint_config/regression_* (a top-level ',' that yaml-cpp 0.7 loops on; alias "billion laughs").
#include <cstdint>

#include "test/fuzz/fuzz_support.h"
#include "waypoint/config/waypoint_config.h"
#include "waypoint/routing/route_table.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ambient;
  auto r = waypoint::parse_waypoint_config(fuzz::as_text(data, size), "fuzz.yaml");
  if (!r) {
    fuzz::check_error(r.error(), {ErrorKind::InvalidArgument, ErrorKind::Parse, ErrorKind::Unsupported, ErrorKind::ResourceExhausted});
    FUZZ_CHECK(r.error().context.starts_with("fuzz.yaml"), "error without its source: {}", r.error().context);
    return 0;
  }
  for (const auto& route : r->routes) {
    auto t = waypoint::RouteTable::build({route});
    FUZZ_CHECK(t.has_value(), "a loaded route does not build: {}", t ? std::string() : t.error().context);
  }
  return 0;
}
