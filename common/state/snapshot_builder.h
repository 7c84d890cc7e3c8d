#pragma once
// SnapshotBuilder: the mutable side of the state, owned by the control thread (not thread-safe).
// Config sources (local YAML, xDS) upsert and remove resources; build() freezes the current content
// into an immutable Snapshot for the workers. Snapshots already built never change (see snapshot.h).
//
// Keys: workloads by uid, services by "namespace/hostname", policies by "namespace/name".
// An upsert validates first (resource.h) and leaves the builder unchanged when it fails, so a bad
// xDS resource can be NACKed while the good ones of the same push still apply.

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "common/state/snapshot.h"

namespace ambient::state {

class SnapshotBuilder {
 public:
  // Workload (keyed by uid) or Service (keyed by "namespace/hostname"); an Address with neither is
  // refused. Workloads are stored with Istio's defaults applied (resource.h).
  Result<void> upsert(const istio::workload::Address& address);
  Result<void> upsert(const Workload& workload);
  Result<void> upsert(const Service& service);
  // Keyed by "namespace/name".
  Result<void> upsert(const Authorization& policy);

  // xDS removal of an Address resource: a workload uid, else a service "namespace/hostname".
  // Returns false when nothing had that name.
  bool remove_address(std::string_view name);
  bool remove_policy(std::string_view name);
  // Drops everything (a reloaded local config replaces the whole state).
  void clear();

  // Freezes the current content. Copies the maps of pointers (not the resources) and rebuilds the
  // indexes, O(n) per build; xDS-scale state may later need persistent (structurally shared) maps.
  // Logs each warning that the previous build did not have, once.
  std::shared_ptr<const Snapshot> build();

  std::size_t workload_count() const noexcept { return workloads_.size(); }
  std::size_t service_count() const noexcept { return services_.size(); }
  std::size_t policy_count() const noexcept { return policies_.size(); }

 private:
  ResourceMap<Workload> workloads_;
  ResourceMap<Service> services_;
  ResourceMap<Authorization> policies_;
  std::uint64_t version_ = 0;
  std::set<std::string, std::less<>> logged_warnings_;
};

}  // namespace ambient::state
