#pragma once
// Spellings of the protobuf enums in the local config file and in /config_dump: ztunnel's serde
// names (TCP/HBONE, Healthy, Global, Allow, ...), shared by local_config.cpp and config_dump.cpp so
// that a dump parses back.

#include <cstddef>
#include <string_view>

#include "proto/authorization.pb.h"
#include "proto/workload.pb.h"

namespace ambient::state::names {

template <typename E>
struct EnumName {
  std::string_view name;
  E value;
};

namespace wl = istio::workload;
namespace sec = istio::security;

inline constexpr EnumName<wl::TunnelProtocol> kProtocols[] = {{"HBONE", wl::HBONE}, {"TCP", wl::NONE}};
inline constexpr EnumName<wl::NetworkMode> kNetworkModes[] = {{"Standard", wl::STANDARD},
                                                              {"HostNetwork", wl::HOST_NETWORK}};
inline constexpr EnumName<wl::WorkloadStatus> kStatuses[] = {{"Healthy", wl::HEALTHY},
                                                             {"Unhealthy", wl::UNHEALTHY}};
// ztunnel renders WorkloadType lower-cased.
inline constexpr EnumName<wl::WorkloadType> kWorkloadTypes[] = {
    {"deployment", wl::DEPLOYMENT}, {"cronjob", wl::CRONJOB}, {"pod", wl::POD}, {"job", wl::JOB}};
inline constexpr EnumName<wl::ApplicationTunnel::Protocol> kTunnelProtocols[] = {
    {"NONE", wl::ApplicationTunnel::NONE}, {"PROXY", wl::ApplicationTunnel::PROXY}};
inline constexpr EnumName<wl::LoadBalancing::Scope> kScopes[] = {
    {"Region", wl::LoadBalancing::REGION},   {"Zone", wl::LoadBalancing::ZONE},
    {"Subzone", wl::LoadBalancing::SUBZONE}, {"Node", wl::LoadBalancing::NODE},
    {"Cluster", wl::LoadBalancing::CLUSTER}, {"Network", wl::LoadBalancing::NETWORK}};
inline constexpr EnumName<wl::LoadBalancing::Mode> kModes[] = {
    {"Standard", wl::LoadBalancing::UNSPECIFIED_MODE}, {"Strict", wl::LoadBalancing::STRICT},
    {"Failover", wl::LoadBalancing::FAILOVER}, {"Passthrough", wl::LoadBalancing::PASSTHROUGH}};
inline constexpr EnumName<wl::LoadBalancing::HealthPolicy> kHealthPolicies[] = {
    {"OnlyHealthy", wl::LoadBalancing::ONLY_HEALTHY}, {"AllowAll", wl::LoadBalancing::ALLOW_ALL}};
// AUTOMATIC has no spelling: ztunnel leaves ipFamilies out.
inline constexpr EnumName<wl::IPFamilies> kIpFamilies[] = {
    {"Dual", wl::DUAL}, {"IPv4", wl::IPV4_ONLY}, {"IPv6", wl::IPV6_ONLY}};
inline constexpr EnumName<wl::Service::Visibility> kVisibilities[] = {{"Public", wl::Service::PUBLIC},
                                                                      {"Namespace", wl::Service::NAMESPACE}};
inline constexpr EnumName<sec::Scope> kPolicyScopes[] = {
    {"Global", sec::GLOBAL}, {"Namespace", sec::NAMESPACE}, {"WorkloadSelector", sec::WORKLOAD_SELECTOR}};
inline constexpr EnumName<sec::Action> kActions[] = {{"Allow", sec::ALLOW}, {"Deny", sec::DENY}};

// The spelling of `value`, or "" when it has none (an out-of-range value, or AUTOMATIC).
template <typename E, std::size_t N>
constexpr std::string_view name_of(const EnumName<E> (&table)[N], int value) {
  for (const auto& e : table) {
    if (static_cast<int>(e.value) == value) return e.name;
  }
  return {};
}

}  // namespace ambient::state::names
