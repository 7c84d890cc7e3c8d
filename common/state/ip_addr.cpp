#include "common/state/ip_addr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace ambient::state {

IpAddr IpAddr::v4(const std::array<std::uint8_t, 4>& b) noexcept {
  IpAddr ip;
  std::copy(b.begin(), b.end(), ip.b_.begin());
  return ip;
}

IpAddr IpAddr::v6(const std::array<std::uint8_t, 16>& b) noexcept {
  IpAddr ip;
  ip.v6_ = true;
  ip.b_ = b;
  return ip;
}

std::optional<IpAddr> IpAddr::from_bytes(std::string_view bytes) noexcept {
  if (bytes.size() != 4 && bytes.size() != 16) return std::nullopt;
  IpAddr ip;
  ip.v6_ = bytes.size() == 16;
  std::memcpy(ip.b_.data(), bytes.data(), bytes.size());
  return ip;
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) noexcept {
  // inet_pton needs a NUL-terminated string; the longest textual IPv6 form is 45 chars.
  char buf[64];
  if (text.empty() || text.size() >= sizeof(buf)) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddr ip;
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, ip.b_.data()) != 1) return std::nullopt;
    return ip;
  }
  if (inet_pton(AF_INET6, buf, ip.b_.data()) != 1) return std::nullopt;
  ip.v6_ = true;
  return ip;
}

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(v6_ ? AF_INET6 : AF_INET, b_.data(), buf, sizeof(buf)) == nullptr) return {};
  return buf;
}

IpAddr IpAddr::canonical() const noexcept {
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!v6_ || std::memcmp(b_.data(), kMapped, sizeof(kMapped)) != 0) return *this;
  return v4({b_[12], b_[13], b_[14], b_[15]});
}

bool IpAddr::in_prefix(const IpAddr& net, unsigned prefix_len) const noexcept {
  if (v6_ != net.v6_) return false;
  const unsigned bits = static_cast<unsigned>(size()) * 8;
  prefix_len = std::min(prefix_len, bits);
  const unsigned whole = prefix_len / 8;
  if (std::memcmp(b_.data(), net.b_.data(), whole) != 0) return false;
  const unsigned rest = prefix_len % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (b_[whole] & mask) == (net.b_[whole] & mask);
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) noexcept {
  const auto slash = text.find('/');
  auto ip = IpAddr::parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  const unsigned bits = static_cast<unsigned>(ip->size()) * 8;
  if (slash == std::string_view::npos) return IpPrefix{*ip, static_cast<std::uint8_t>(bits)};
  const std::string_view len_text = text.substr(slash + 1);
  unsigned len = 0;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (len_text.empty() || ec != std::errc{} || end != len_text.data() + len_text.size() || len > bits) {
    return std::nullopt;
  }
  return IpPrefix{*ip, static_cast<std::uint8_t>(len)};
}

std::string IpPrefix::to_string() const { return addr.to_string() + "/" + std::to_string(len); }

}  // namespace ambient::state

std::size_t std::hash<ambient::state::IpAddr>::operator()(const ambient::state::IpAddr& ip) const noexcept {
  // FNV-1a over family + bytes: cheap, and IPs in one subnet differ in the last bytes.
  std::uint64_t h = 1469598103934665603ull ^ (ip.is_v6() ? 6u : 4u);
  for (std::uint8_t b : ip.bytes()) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return static_cast<std::size_t>(h);
}
