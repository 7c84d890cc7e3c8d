#pragma once
// SPIFFE identities as Istio uses them: exactly spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace ambient::tls {

struct SpiffeId {
  std::string trust_domain;
  std::string ns;
  std::string sa;

  std::string to_string() const;  // "spiffe://td/ns/X/sa/Y"
  bool operator==(const SpiffeId&) const = default;
};

// Refuses anything but the exact five-part shape (scheme, td, "ns", ns, "sa", sa), empty parts,
// extra segments, query or fragment. The error says which part is wrong.
Result<SpiffeId> parse_spiffe(std::string_view uri);

}  // namespace ambient::tls
