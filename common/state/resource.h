#pragma once
// The three xDS resource kinds as the state layer sees them: keys, Istio's defaults, and validation.
//
// Keys (reference ztunnel.md 4.2): Workload = uid; Service = "namespace/hostname";
// Authorization = "namespace/name" (the name Workload.authorization_policies refers to).
//
// Defaults (as ztunnel applies them when it converts a Workload): empty trust_domain ->
// "cluster.local", empty service_account -> "default", empty cluster_id -> "Kubernetes", absent
// capacity -> 1. The helpers below apply them on read, so they work on raw and normalized protos.
//
// Validation checks what the data plane relies on and what ztunnel refuses, so that a bad resource is
// rejected at the edge (start-up for the local file, NACK for xDS) and never reaches a worker.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/base/result.h"
#include "proto/authorization.pb.h"
#include "proto/workload.pb.h"

namespace ambient::state {

using istio::security::Authorization;
using istio::workload::Service;
using istio::workload::Workload;

inline constexpr std::string_view kDefaultTrustDomain = "cluster.local";
inline constexpr std::string_view kDefaultServiceAccount = "default";
inline constexpr std::string_view kDefaultClusterId = "Kubernetes";
inline constexpr std::uint32_t kDefaultCapacity = 1;

std::string_view workload_trust_domain(const Workload& w) noexcept;
std::string_view workload_service_account(const Workload& w) noexcept;
std::string_view workload_cluster_id(const Workload& w) noexcept;
// The load-balancing weight: `capacity` when present, else 1.
std::uint32_t workload_capacity(const Workload& w) noexcept;
// "spiffe://<trust domain>/ns/<namespace>/sa/<service account>", defaults applied.
std::string workload_identity(const Workload& w);
// Writes the defaults above into the message (what SnapshotBuilder stores and /config_dump shows).
void apply_defaults(Workload& w);

std::string service_key(const Service& s);         // "namespace/hostname"
std::string policy_key(const Authorization& a);    // "namespace/name"
// "namespace/hostname" split at the first '/'; nullopt when there is no '/' or a side is empty.
std::optional<std::pair<std::string_view, std::string_view>> split_namespaced_host(std::string_view key) noexcept;

// One validation failure: `field` is the proto field path ("addresses[1]",
// "services[\"ns/h\"].ports[0].service_port"), `reason` says what is wrong with the value.
struct Invalid {
  std::string field;
  std::string reason;
  ErrorKind kind = ErrorKind::InvalidArgument;  // Unsupported for valid-but-refused values
};

std::optional<Invalid> check(const Workload& w);
std::optional<Invalid> check(const Service& s);
std::optional<Invalid> check(const Authorization& a);

// The same checks as an Error whose context names the resource, then the field:
//   workload "cluster1//v1/Pod/ns/a": addresses[0]: 3 bytes, want 4 (IPv4) or 16 (IPv6)
Result<void> validate(const Workload& w);
Result<void> validate(const Service& s);
Result<void> validate(const Authorization& a);

}  // namespace ambient::state
