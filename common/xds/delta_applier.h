#pragma once
// Applying one Delta ADS response to the state (pure: no I/O, table-tested).
//
// Per response of a type ztunnel subscribes to (reference ztunnel.md 4.2, 4.3):
//   - each Resource is checked (payload type matches the response's type_url, the bytes parse, the
//     resource name is the key the state uses for it: workload uid, service "namespace/hostname",
//     policy "namespace/name") and upserted, which validates it (common/state/resource.h);
//   - a resource that fails is rejected alone: the builder keeps its previous version (or nothing), the
//     other resources of the same push still apply, and the reply is a NACK whose error_detail names
//     every rejected resource ("name: reason; name: reason");
//   - removed_resources drop the named workload/service or policy (unknown names are ignored);
//   - the reply echoes the nonce: an ACK without error_detail, or the NACK above.
// `versions` is the client's record of name -> version of what it holds, sent as
// initial_resource_versions when the stream reconnects: rejected resources are not recorded.
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/state/snapshot_builder.h"
#include "proto/discovery.pb.h"

namespace ambient::xds {

inline constexpr std::string_view kAddressType = "type.googleapis.com/istio.workload.Address";
inline constexpr std::string_view kAuthorizationType = "type.googleapis.com/istio.security.Authorization";

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;

// name -> version, per type URL.
using Versions = std::map<std::string, std::string, std::less<>>;

struct DeltaOutcome {
  DeltaDiscoveryRequest reply;        // ACK or NACK for the response
  std::size_t applied = 0;            // resources upserted
  std::size_t removed = 0;            // names that removed something
  std::vector<std::string> rejected;  // "name: reason", in response order
  bool changed() const noexcept { return applied > 0 || removed > 0; }
  bool nack() const noexcept { return !rejected.empty(); }
};

// Largest NACK message; past it the list is cut with "... (N more)".
inline constexpr std::size_t kMaxNackMessage = 4096;

DeltaOutcome apply_delta(const DeltaDiscoveryResponse& response, state::SnapshotBuilder& builder, Versions& versions);

}  // namespace ambient::xds
