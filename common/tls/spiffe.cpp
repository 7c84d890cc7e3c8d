#include "common/tls/spiffe.h"

#include <array>

#include <fmt/format.h>

namespace ambient::tls {
namespace {

constexpr std::string_view kScheme = "spiffe://";

// SPIFFE-ID spec section 2: trust domain and path segments use letters, digits, '.', '-', '_'.
// Upper case is accepted in the trust domain as well (the spec asks for lower case, but Istio lets
// operators configure it and ztunnel compares it byte for byte), so we never refuse a peer ztunnel accepts
// for case alone. Everything else ('%', '?', '#', ':', '@', spaces) is refused.
bool allowed_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

Result<void> check_part(std::string_view uri, std::string_view what, std::string_view part) {
  if (part.empty()) return errorf(ErrorKind::InvalidArgument, "spiffe id '{}': empty {}", uri, what);
  if (part == "." || part == "..")
    return errorf(ErrorKind::InvalidArgument, "spiffe id '{}': {} may not be '{}'", uri, what, part);
  for (char c : part) {
    if (!allowed_char(c)) {
      return errorf(ErrorKind::InvalidArgument,
                    "spiffe id '{}': {} '{}' has character '{}' (allowed: letters, digits, '.', '-', '_')",
                    uri, what, part, c);
    }
  }
  return ok();
}

}  // namespace

std::string SpiffeId::to_string() const {
  return fmt::format("spiffe://{}/ns/{}/sa/{}", trust_domain, ns, sa);
}

Result<SpiffeId> parse_spiffe(std::string_view uri) {
  if (uri.substr(0, kScheme.size()) != kScheme)
    return errorf(ErrorKind::InvalidArgument, "spiffe id '{}': scheme must be spiffe://", uri);
  if (uri.find_first_of("?#") != std::string_view::npos)
    return errorf(ErrorKind::InvalidArgument, "spiffe id '{}': query or fragment not allowed", uri);

  // Split the rest on '/': exactly td, "ns", ns, "sa", sa.
  std::array<std::string_view, 5> parts;
  std::string_view rest = uri.substr(kScheme.size());
  std::size_t n = 0;
  for (;;) {
    const std::size_t slash = rest.find('/');
    if (n == parts.size())
      return errorf(ErrorKind::InvalidArgument,
                    "spiffe id '{}': expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, "
                    "got extra path segments",
                    uri);
    parts[n++] = rest.substr(0, slash);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (n != parts.size())
    return errorf(ErrorKind::InvalidArgument,
                  "spiffe id '{}': expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, got {} "
                  "part(s)",
                  uri, n);
  if (parts[1] != "ns")
    return errorf(ErrorKind::InvalidArgument, "spiffe id '{}': second segment must be 'ns', got '{}'", uri,
                  parts[1]);
  if (parts[3] != "sa")
    return errorf(ErrorKind::InvalidArgument, "spiffe id '{}': fourth segment must be 'sa', got '{}'", uri,
                  parts[3]);
  AMBIENT_TRY(check_part(uri, "trust domain", parts[0]));
  AMBIENT_TRY(check_part(uri, "namespace", parts[2]));
  AMBIENT_TRY(check_part(uri, "service account", parts[4]));
  return SpiffeId{std::string(parts[0]), std::string(parts[2]), std::string(parts[4])};
}

}  // namespace ambient::tls
