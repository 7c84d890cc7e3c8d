#pragma once
// PROXY protocol version 2 (haproxy's proxy-protocol.txt, section 2.2): the binary header that carries a
// connection's original source and destination, plus TLVs, in front of the payload. Istio's sandwich binding
// uses it between a ztunnel and the waypoint behind it (reference ztunnel.md 3.7): command PROXY over TCP,
// TLV 0xD0 = the source SPIFFE identity, 0xD1 = the target service hostname.
//
// Layout: 12-byte signature \r\n\r\n\0\r\nQUIT\n, ver_cmd (0x21 PROXY, 0x20 LOCAL), family (0x11 TCP over
// IPv4, 0x21 TCP over IPv6, 0x00 UNSPEC for LOCAL), 2-byte length of what follows, then src addr, dst addr,
// src port, dst port (network order), then TLVs {type:1, length:2, value}.
// Limits: a header longer than kMaxProxyHeader bytes is refused (Istio's TLVs are well under it); TLV lengths
// must fit the header exactly; UDP and UNIX families are refused (this is a TCP hop).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"

namespace ambient::net {

inline constexpr std::size_t kMaxProxyHeader = 4096;
inline constexpr std::uint8_t kTlvPeerIdentity = 0xD0;   // Istio: source SPIFFE identity
inline constexpr std::uint8_t kTlvServiceHost = 0xD1;    // Istio: target service hostname

struct ProxyHeader {
  bool local = false;  // LOCAL command (health checks): no addresses
  boost::asio::ip::tcp::endpoint source, destination;
  std::vector<std::pair<std::uint8_t, std::string>> tlvs;
  std::optional<std::string_view> tlv(std::uint8_t type) const {
    for (const auto& [t, v] : tlvs)
      if (t == type) return std::string_view(v);
    return std::nullopt;
  }
};

// The PROXY v2 header for a TCP connection from `source` to `destination` (both the same family; an
// IPv4-mapped IPv6 address is written as IPv4 when the other one is IPv4).
std::string encode_proxy_v2(const boost::asio::ip::tcp::endpoint& source, const boost::asio::ip::tcp::endpoint& destination,
                            const std::vector<std::pair<std::uint8_t, std::string>>& tlvs = {});

struct ParsedProxyHeader {
  ProxyHeader header;
  std::size_t consumed = 0;  // header bytes; the payload starts after them
};
// Parses a header at the start of `in`. nullopt: the bytes so far are a valid prefix, more are needed.
// Errors (ErrorKind::Parse) name what is wrong: not the v2 signature, a version or command or family we do not
// take, a length over kMaxProxyHeader, addresses or TLVs that do not fit.
Result<std::optional<ParsedProxyHeader>> parse_proxy_v2(std::span<const std::uint8_t> in);

}  // namespace ambient::net
