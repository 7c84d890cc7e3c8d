#include "common/state/snapshot_builder.h"

#include <spdlog/spdlog.h>

namespace ambient::state {

Result<void> SnapshotBuilder::upsert(const istio::workload::Address& address) {
  switch (address.type_case()) {
    case istio::workload::Address::kWorkload: return upsert(address.workload());
    case istio::workload::Address::kService: return upsert(address.service());
    case istio::workload::Address::TYPE_NOT_SET: break;
  }
  return make_error(ErrorKind::InvalidArgument, "address: neither workload nor service is set");
}

Result<void> SnapshotBuilder::upsert(const Workload& workload) {
  AMBIENT_TRY(validate(workload));
  auto w = std::make_shared<Workload>(workload);
  apply_defaults(*w);
  std::string key = w->uid();
  workloads_.insert_or_assign(std::move(key), std::move(w));
  return ok();
}

Result<void> SnapshotBuilder::upsert(const Service& service) {
  AMBIENT_TRY(validate(service));
  services_.insert_or_assign(service_key(service), std::make_shared<const Service>(service));
  return ok();
}

Result<void> SnapshotBuilder::upsert(const Authorization& policy) {
  AMBIENT_TRY(validate(policy));
  policies_.insert_or_assign(policy_key(policy), std::make_shared<const Authorization>(policy));
  return ok();
}

bool SnapshotBuilder::remove_address(std::string_view name) {
  if (auto it = workloads_.find(name); it != workloads_.end()) {
    workloads_.erase(it);
    return true;
  }
  if (auto it = services_.find(name); it != services_.end()) {
    services_.erase(it);
    return true;
  }
  return false;
}

bool SnapshotBuilder::remove_policy(std::string_view name) {
  auto it = policies_.find(name);
  if (it == policies_.end()) return false;
  policies_.erase(it);
  return true;
}

void SnapshotBuilder::clear() {
  workloads_.clear();
  services_.clear();
  policies_.clear();
}

std::shared_ptr<const Snapshot> SnapshotBuilder::build() {
  auto snap = std::make_shared<const Snapshot>(Snapshot::Token{}, ++version_, workloads_, services_, policies_);
  std::set<std::string, std::less<>> current(snap->warnings().begin(), snap->warnings().end());
  for (const std::string& w : current) {
    if (!logged_warnings_.contains(w)) spdlog::warn("state: {}", w);
  }
  logged_warnings_ = std::move(current);
  return snap;
}

}  // namespace ambient::state
