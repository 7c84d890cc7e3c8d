#include "common/net/proxy_protocol.h"

#include <algorithm>
#include <cstring>

namespace ambient::net {

namespace {

constexpr std::uint8_t kSignature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

boost::asio::ip::address unmapped(const boost::asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  return a;
}

void put16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

std::uint16_t get16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

}  // namespace

std::string encode_proxy_v2(const boost::asio::ip::tcp::endpoint& source, const boost::asio::ip::tcp::endpoint& destination,
                            const std::vector<std::pair<std::uint8_t, std::string>>& tlvs) {
  auto src = unmapped(source.address()), dst = unmapped(destination.address());
  if (src.is_v4() != dst.is_v4()) {  // mixed families: write both as IPv6
    if (src.is_v4()) src = boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, src.to_v4());
    if (dst.is_v4()) dst = boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, dst.to_v4());
  }
  std::string addrs;
  if (src.is_v4()) {
    const auto s = src.to_v4().to_bytes(), d = dst.to_v4().to_bytes();
    addrs.append(reinterpret_cast<const char*>(s.data()), s.size());
    addrs.append(reinterpret_cast<const char*>(d.data()), d.size());
  } else {
    const auto s = src.to_v6().to_bytes(), d = dst.to_v6().to_bytes();
    addrs.append(reinterpret_cast<const char*>(s.data()), s.size());
    addrs.append(reinterpret_cast<const char*>(d.data()), d.size());
  }
  put16(addrs, source.port());
  put16(addrs, destination.port());
  for (const auto& [type, value] : tlvs) {
    addrs.push_back(static_cast<char>(type));
    put16(addrs, static_cast<std::uint16_t>(value.size()));
    addrs += value;
  }
  std::string out(reinterpret_cast<const char*>(kSignature), sizeof kSignature);
  out.push_back(static_cast<char>(0x21));                    // version 2, PROXY
  out.push_back(static_cast<char>(src.is_v4() ? 0x11 : 0x21));  // TCP over IPv4 / IPv6
  put16(out, static_cast<std::uint16_t>(addrs.size()));
  return out + addrs;
}

Result<std::optional<ParsedProxyHeader>> parse_proxy_v2(std::span<const std::uint8_t> in) {
  const std::size_t sig = std::min(in.size(), sizeof kSignature);
  if (std::memcmp(in.data(), kSignature, sig) != 0) return errorf(ErrorKind::Parse, "PROXY v2: no signature at the start of the connection");
  if (in.size() < 16) return std::optional<ParsedProxyHeader>();
  const std::uint8_t ver_cmd = in[12], family = in[13];
  const std::size_t len = get16(&in[14]);
  if ((ver_cmd >> 4) != 2) return errorf(ErrorKind::Parse, "PROXY v2: version {} (want 2)", ver_cmd >> 4);
  const std::uint8_t cmd = ver_cmd & 0x0f;
  if (cmd > 1) return errorf(ErrorKind::Parse, "PROXY v2: unknown command {}", cmd);
  if (16 + len > kMaxProxyHeader) return errorf(ErrorKind::Parse, "PROXY v2: header of {} bytes is over the {} byte limit", 16 + len, kMaxProxyHeader);
  if (in.size() < 16 + len) return std::optional<ParsedProxyHeader>();
  ParsedProxyHeader out;
  out.consumed = 16 + len;
  const std::uint8_t* p = in.data() + 16;
  std::size_t addr_len = 0;
  if (cmd == 0) {
    out.header.local = true;
  } else if (family == 0x11) {
    addr_len = 12;
  } else if (family == 0x21) {
    addr_len = 36;
  } else {
    return errorf(ErrorKind::Parse, "PROXY v2: address family/protocol 0x{:02x} is not TCP over IPv4 or IPv6", family);
  }
  if (cmd == 1) {
    if (len < addr_len) return errorf(ErrorKind::Parse, "PROXY v2: {} bytes cannot hold the addresses ({})", len, addr_len);
    if (family == 0x11) {
      boost::asio::ip::address_v4::bytes_type s{}, d{};
      std::memcpy(s.data(), p, 4);
      std::memcpy(d.data(), p + 4, 4);
      out.header.source = {boost::asio::ip::address_v4(s), get16(p + 8)};
      out.header.destination = {boost::asio::ip::address_v4(d), get16(p + 10)};
    } else {
      boost::asio::ip::address_v6::bytes_type s{}, d{};
      std::memcpy(s.data(), p, 16);
      std::memcpy(d.data(), p + 16, 16);
      out.header.source = {unmapped(boost::asio::ip::address_v6(s)), get16(p + 32)};
      out.header.destination = {unmapped(boost::asio::ip::address_v6(d)), get16(p + 34)};
    }
  } else if (family == 0x11) {
    addr_len = std::min<std::size_t>(len, 12);  // LOCAL may still carry addresses; they are ignored
  } else if (family == 0x21) {
    addr_len = std::min<std::size_t>(len, 36);
  }
  std::size_t off = addr_len;
  while (off < len) {
    if (len - off < 3) return errorf(ErrorKind::Parse, "PROXY v2: a TLV header is cut at byte {}", off);
    const std::uint8_t type = p[off];
    const std::size_t vlen = get16(p + off + 1);
    if (len - off - 3 < vlen) return errorf(ErrorKind::Parse, "PROXY v2: TLV 0x{:02x} of {} bytes does not fit", type, vlen);
    out.header.tlvs.emplace_back(type, std::string(reinterpret_cast<const char*>(p + off + 3), vlen));
    off += 3 + vlen;
  }
  return std::optional<ParsedProxyHeader>(std::move(out));
}

}  // namespace ambient::net
