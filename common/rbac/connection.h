#pragma once
// The attributes of one inbound connection that L4 authorization looks at (ztunnel.md section 7):
// the peer's mTLS identity (none for plaintext), source IP, destination (pod) IP and the final target
// port. There is no service or hostname attribute.
//
// rbac depends on proto + base only, so the IP and SPIFFE types here are deliberately tiny value types;
// callers convert from Asio / TLS types at the boundary.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace ambient::rbac {

// An IPv4 or IPv6 address held by value (4 or 16 significant bytes). Default: 0.0.0.0.
class IpAddress {
 public:
  IpAddress() = default;
  static IpAddress v4(const std::array<std::uint8_t, 4>& bytes) noexcept;
  static IpAddress v6(const std::array<std::uint8_t, 16>& bytes) noexcept;
  // Raw network-order bytes as carried in protobuf `bytes` fields: exactly 4 or 16, else nullopt.
  static std::optional<IpAddress> from_bytes(std::string_view raw) noexcept;
  // Textual form: "10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1".
  static Result<IpAddress> parse(std::string_view text);

  bool is_v4() const noexcept { return size_ == 4; }
  // 4 bytes for IPv4, 16 for IPv6, network order.
  std::span<const std::uint8_t> bytes() const noexcept { return {bytes_.data(), size_}; }
  // True for ::ffff:a.b.c.d (what a dual-stack socket reports for an IPv4 peer).
  bool is_v4_mapped() const noexcept;
  // ::ffff:a.b.c.d -> a.b.c.d; any other address unchanged. ztunnel canonicalizes every accepted
  // socket address this way (socket::to_canonical) before building its RBAC connection.
  IpAddress canonical() const noexcept;
  std::string to_string() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  std::array<std::uint8_t, 16> bytes_{};  // bytes past size_ are zero
  std::uint8_t size_ = 4;
};

// A SPIFFE identity of Istio's shape: spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
// Stored as the principal string "<td>/ns/<ns>/sa/<sa>" (what `principals` matches compare against) plus
// the offsets of its parts, so matching never builds a string.
class Identity {
 public:
  // Same rules as ztunnel's Identity::from_str: "spiffe://" prefix, then exactly five '/'-separated
  // segments with "ns" and "sa" at positions 1 and 3. Segments may be empty.
  static Result<Identity> parse(std::string_view spiffe_uri);
  static Identity from_parts(std::string_view trust_domain, std::string_view namespace_name,
                             std::string_view service_account);

  std::string_view trust_domain() const noexcept;
  std::string_view namespace_() const noexcept;
  std::string_view service_account() const noexcept;
  // "<td>/ns/<ns>/sa/<sa>": the SPIFFE id without "spiffe://".
  std::string_view principal() const noexcept { return principal_; }
  // "spiffe://<td>/ns/<ns>/sa/<sa>".
  std::string to_string() const;

  friend bool operator==(const Identity&, const Identity&) = default;

 private:
  Identity(std::string principal, std::size_t td_len, std::size_t ns_len)
      : principal_(std::move(principal)), td_len_(td_len), ns_len_(ns_len) {}

  std::string principal_;
  std::size_t td_len_ = 0;  // principal_[0, td_len_) is the trust domain
  std::size_t ns_len_ = 0;  // namespace starts after "<td>/ns/"
};

// One inbound connection as seen at the destination: HBONE (15008) or inbound plaintext (15006).
struct Connection {
  std::optional<Identity> source;  // verified mTLS peer identity; nullopt for plaintext
  IpAddress source_ip;             // original client IP (or the waypoint's); v4-mapped is fine
  IpAddress destination_ip;        // the destination pod IP
  std::uint16_t destination_port = 0;  // final target port, after service -> target port mapping
};

}  // namespace ambient::rbac
