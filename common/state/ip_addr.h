#pragma once
// IpAddr: an IPv4 or IPv6 address as network-order bytes, the unit of every state index
// (workload by (network, IP), service by (network, VIP)). Value type, 17 bytes, no allocation.
// Conversions: to and from the 4/16-byte `bytes` fields of workload.proto and authorization.proto,
// to and from text (inet_pton/inet_ntop forms), and to and from Asio in common/state/ip_asio.h
// (kept out of this header so the state layer does not depend on Asio).
//
// IPv4-mapped IPv6 (::ffff:a.b.c.d) is a distinct value here; canonical() folds it to IPv4. The
// snapshot indexes and lookups canonicalize, so a dual-stack socket's peer address finds the IPv4
// workload.

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ambient::state {

class IpAddr {
 public:
  IpAddr() = default;  // 0.0.0.0

  static IpAddr v4(const std::array<std::uint8_t, 4>& b) noexcept;
  static IpAddr v6(const std::array<std::uint8_t, 16>& b) noexcept;
  // From a protobuf `bytes` field: 4 bytes = IPv4, 16 = IPv6, any other length = nullopt.
  static std::optional<IpAddr> from_bytes(std::string_view bytes) noexcept;
  // "10.0.0.1", "fd00::1". No brackets, no zone ids, no surrounding spaces.
  static std::optional<IpAddr> parse(std::string_view text) noexcept;

  bool is_v4() const noexcept { return !v6_; }
  bool is_v6() const noexcept { return v6_; }
  std::size_t size() const noexcept { return v6_ ? 16 : 4; }
  std::span<const std::uint8_t> bytes() const noexcept { return {b_.data(), size()}; }
  // The bytes as a protobuf `bytes` value (4 or 16 chars).
  std::string to_bytes() const { return std::string(reinterpret_cast<const char*>(b_.data()), size()); }
  std::string to_string() const;  // RFC 5952 for IPv6
  // IPv4-mapped IPv6 -> IPv4; anything else unchanged.
  IpAddr canonical() const noexcept;
  // True if the first `prefix_len` bits equal those of `net` (same family; prefix_len clamped).
  bool in_prefix(const IpAddr& net, unsigned prefix_len) const noexcept;

  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  friend auto operator<=>(const IpAddr&, const IpAddr&) = default;

 private:
  bool v6_ = false;
  std::array<std::uint8_t, 16> b_{};  // IPv4 uses the first 4; the rest stay zero
};

// A CIDR range as authorization.proto's Address {bytes address; uint32 length}.
struct IpPrefix {
  IpAddr addr;
  std::uint8_t len = 0;  // <= 32 for IPv4, <= 128 for IPv6

  // "10.0.0.0/8", "fd00::/64", or a plain address (full-length prefix). Host bits may be set (kept).
  static std::optional<IpPrefix> parse(std::string_view text) noexcept;
  bool contains(const IpAddr& ip) const noexcept { return ip.in_prefix(addr, len); }
  std::string to_string() const;  // "10.0.0.0/8"
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

}  // namespace ambient::state

template <>
struct std::hash<ambient::state::IpAddr> {
  std::size_t operator()(const ambient::state::IpAddr& ip) const noexcept;
};
