// Lookup invariants of a built state::Snapshot, shared by the targets that build one (fuzz_local_config,
// fuzz_xds_resources). Every resource in a snapshot passed validation, so:
//  - every workload IP (not host network) parses and finds a workload holding it;
//  - policies_for() lists each policy once, none null;
//  - every service is found by its key, every VIP parses and finds a service;
//  - endpoints are non-null and sorted by workload uid.
#pragma once

#include <algorithm>
#include <set>
#include <string>

#include "common/state/ip_addr.h"
#include "common/state/snapshot.h"
#include "test/fuzz/fuzz_support.h"

namespace ambient::fuzz {

inline bool holds_ip(const google::protobuf::RepeatedPtrField<std::string>& addrs, const state::IpAddr& ip) {
  return std::any_of(addrs.begin(), addrs.end(), [&](const std::string& b) {
    auto a = state::IpAddr::from_bytes(b);
    return a && a->canonical() == ip.canonical();
  });
}

inline void check_snapshot_lookups(const state::Snapshot& s) {
  for (const auto& [uid, w] : s.workloads()) {
    if (w->network_mode() != istio::workload::HOST_NETWORK) {
      for (const auto& bytes : w->addresses()) {
        auto ip = state::IpAddr::from_bytes(bytes);
        FUZZ_CHECK(ip.has_value(), "workload {}: address of {} bytes", uid, bytes.size());
        const auto* found = s.workload_by_ip(w->network(), *ip);
        FUZZ_CHECK(found != nullptr && holds_ip(found->addresses(), *ip),
                   "workload {}: its IP {} finds no workload holding it", uid, ip->to_string());
      }
    }
    std::set<const state::Authorization*> seen;
    for (const auto* p : s.policies_for(*w)) {
      FUZZ_CHECK(p != nullptr && seen.insert(p).second, "policies_for({}) has a null or repeated policy", uid);
    }
  }
  for (const auto& [key, svc] : s.services()) {
    FUZZ_CHECK(s.service_by_key(key) == svc.get(), "service_by_key({}) does not find it", key);
    for (const auto& a : svc->addresses()) {
      auto ip = state::IpAddr::from_bytes(a.address());
      FUZZ_CHECK(ip.has_value(), "service {}: VIP of {} bytes", key, a.address().size());
      FUZZ_CHECK(s.service_by_vip(a.network(), *ip) != nullptr, "service {}: VIP {} finds no service", key,
                 ip->to_string());
    }
    const auto eps = s.endpoints(*svc);
    for (std::size_t i = 0; i < eps.size(); ++i) {
      FUZZ_CHECK(eps[i].workload != nullptr, "service {}: null endpoint", key);
      if (i > 0) {
        FUZZ_CHECK(eps[i - 1].workload->uid() <= eps[i].workload->uid(), "service {}: endpoints not sorted", key);
      }
    }
  }
}

}  // namespace ambient::fuzz
