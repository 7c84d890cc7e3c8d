#include "common/xds/delta_applier.h"

#include <fmt/format.h>

#include "common/state/resource.h"

namespace ambient::xds {

namespace {

constexpr int kInvalidArgument = 3;  // google.rpc.Code

std::string address_key(const istio::workload::Address& a) {
  if (a.has_workload()) return a.workload().uid();
  if (a.has_service()) return state::service_key(a.service());
  return {};
}

// Checks and upserts one resource; returns the reason it was rejected, empty when applied.
std::string apply_one(std::string_view type_url, const envoy::service::discovery::v3::Resource& r,
                      state::SnapshotBuilder& builder) {
  if (!r.has_resource()) return "no resource payload";
  if (r.resource().type_url() != type_url)
    return fmt::format("payload type {} in a {} response", r.resource().type_url(), type_url);
  if (type_url == kAddressType) {
    istio::workload::Address a;
    if (!a.ParseFromString(r.resource().value())) return "istio.workload.Address does not parse";
    const std::string key = address_key(a);
    if (key.empty()) return "Address has neither a workload nor a service";
    if (key != r.name()) return fmt::format("resource name does not match its key {:?}", key);
    auto up = builder.upsert(a);
    return up ? std::string{} : up.error().context;
  }
  istio::security::Authorization p;
  if (!p.ParseFromString(r.resource().value())) return "istio.security.Authorization does not parse";
  const std::string key = state::policy_key(p);
  if (key != r.name()) return fmt::format("resource name does not match its key {:?}", key);
  auto up = builder.upsert(p);
  return up ? std::string{} : up.error().context;
}

std::string nack_message(const std::vector<std::string>& rejected) {
  std::string out;
  std::size_t shown = 0;
  for (const auto& r : rejected) {
    if (out.size() + r.size() + 2 > kMaxNackMessage) break;
    if (!out.empty()) out += "; ";
    out += r;
    ++shown;
  }
  if (shown < rejected.size()) out += fmt::format("; ... ({} more)", rejected.size() - shown);
  return out;
}

}  // namespace

DeltaOutcome apply_delta(const DeltaDiscoveryResponse& response, state::SnapshotBuilder& builder, Versions& versions) {
  DeltaOutcome out;
  out.reply.set_type_url(response.type_url());
  out.reply.set_response_nonce(response.nonce());
  const std::string_view type_url = response.type_url();
  if (type_url != kAddressType && type_url != kAuthorizationType) {
    out.rejected.push_back(fmt::format("type_url {:?}: not a type this client subscribes to", type_url));
  } else {
    for (const auto& r : response.resources()) {
      std::string why = apply_one(type_url, r, builder);
      if (!why.empty()) {
        out.rejected.push_back(fmt::format("{}: {}", r.name().empty() ? "(unnamed)" : r.name(), why));
        continue;
      }
      versions[r.name()] = r.version();
      ++out.applied;
    }
    for (const auto& name : response.removed_resources()) {
      const bool gone = type_url == kAddressType ? builder.remove_address(name) : builder.remove_policy(name);
      if (auto it = versions.find(name); it != versions.end()) versions.erase(it);
      if (gone) ++out.removed;
    }
  }
  if (out.nack()) {
    out.reply.mutable_error_detail()->set_code(kInvalidArgument);
    out.reply.mutable_error_detail()->set_message(nack_message(out.rejected));
  }
  return out;
}

}  // namespace ambient::xds
