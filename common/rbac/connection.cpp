#include "common/rbac/connection.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace ambient::rbac {

namespace {
constexpr std::string_view kSpiffeScheme = "spiffe://";
constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
}  // namespace

IpAddress IpAddress::v4(const std::array<std::uint8_t, 4>& bytes) noexcept {
  IpAddress ip;
  std::copy(bytes.begin(), bytes.end(), ip.bytes_.begin());
  ip.size_ = 4;
  return ip;
}

IpAddress IpAddress::v6(const std::array<std::uint8_t, 16>& bytes) noexcept {
  IpAddress ip;
  ip.bytes_ = bytes;
  ip.size_ = 16;
  return ip;
}

std::optional<IpAddress> IpAddress::from_bytes(std::string_view raw) noexcept {
  if (raw.size() != 4 && raw.size() != 16) return std::nullopt;
  IpAddress ip;
  std::memcpy(ip.bytes_.data(), raw.data(), raw.size());
  ip.size_ = static_cast<std::uint8_t>(raw.size());
  return ip;
}

Result<IpAddress> IpAddress::parse(std::string_view text) {
  const std::string s(text);  // inet_pton needs a NUL-terminated string
  std::array<std::uint8_t, 16> buf{};
  if (inet_pton(AF_INET, s.c_str(), buf.data()) == 1) {
    return v4({buf[0], buf[1], buf[2], buf[3]});
  }
  if (inet_pton(AF_INET6, s.c_str(), buf.data()) == 1) return v6(buf);
  return errorf(ErrorKind::Parse, "not an IP address: '{}'", text);
}

bool IpAddress::is_v4_mapped() const noexcept {
  return size_ == 16 && std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), bytes_.begin());
}

IpAddress IpAddress::canonical() const noexcept {
  if (!is_v4_mapped()) return *this;
  return v4({bytes_[12], bytes_[13], bytes_[14], bytes_[15]});
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

Result<Identity> Identity::parse(std::string_view uri) {
  if (!uri.starts_with(kSpiffeScheme)) {
    return errorf(ErrorKind::Parse, "SPIFFE id must start with spiffe://: '{}'", uri);
  }
  const std::string_view rest = uri.substr(kSpiffeScheme.size());
  std::array<std::string_view, 5> segments;
  std::size_t count = 0;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = rest.find('/', start);
    const std::string_view segment = rest.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (count == segments.size()) {
      return errorf(ErrorKind::Parse, "SPIFFE id needs spiffe://<td>/ns/<ns>/sa/<sa>: '{}'", uri);
    }
    segments[count++] = segment;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (count != segments.size() || segments[1] != "ns" || segments[3] != "sa") {
    return errorf(ErrorKind::Parse, "SPIFFE id needs spiffe://<td>/ns/<ns>/sa/<sa>: '{}'", uri);
  }
  return from_parts(segments[0], segments[2], segments[4]);
}

Identity Identity::from_parts(std::string_view trust_domain, std::string_view namespace_name,
                              std::string_view service_account) {
  std::string principal;
  principal.reserve(trust_domain.size() + namespace_name.size() + service_account.size() + 8);
  principal.append(trust_domain).append("/ns/").append(namespace_name).append("/sa/").append(service_account);
  return Identity(std::move(principal), trust_domain.size(), namespace_name.size());
}

std::string_view Identity::trust_domain() const noexcept {
  return std::string_view(principal_).substr(0, td_len_);
}

std::string_view Identity::namespace_() const noexcept {
  return std::string_view(principal_).substr(td_len_ + 4, ns_len_);  // skip "/ns/"
}

std::string_view Identity::service_account() const noexcept {
  return std::string_view(principal_).substr(td_len_ + 4 + ns_len_ + 4);  // skip "/sa/"
}

std::string Identity::to_string() const {
  std::string out;
  out.reserve(kSpiffeScheme.size() + principal_.size());
  out.append(kSpiffeScheme).append(principal_);
  return out;
}

}  // namespace ambient::rbac
