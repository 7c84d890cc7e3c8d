#include "cni/api/pod.h"

#include <algorithm>
#include <set>

#include <boost/asio/ip/address.hpp>

#include "cni/api/json_fields.h"

namespace ambient::cni {

namespace {

bool is_lower_alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Shown in errors: at most 80 bytes of what was refused, so a huge value does not flood a log line.
std::string shown(std::string_view s) {
  constexpr std::size_t kMax = 80;
  if (s.size() <= kMax) return std::string(s);
  return fmt::format("{}... ({} bytes)", utf8_prefix(s, kMax), s.size());
}

}  // namespace

std::string_view to_string(PodSourceKind kind) noexcept {
  switch (kind) {
    case PodSourceKind::Enroll: return "enroll";
    case PodSourceKind::Cni: return "cni";
    case PodSourceKind::Kubernetes: return "kubernetes";
  }
  return "unknown";
}

std::string_view to_string(PodStatus status) noexcept {
  switch (status) {
    case PodStatus::Pending: return "pending";
    case PodStatus::Enabled: return "enabled";
  }
  return "unknown";
}

Result<PodSourceKind> parse_pod_source_kind(std::string_view text) {
  if (text == "enroll") return PodSourceKind::Enroll;
  if (text == "cni") return PodSourceKind::Cni;
  if (text == "kubernetes") return PodSourceKind::Kubernetes;
  return errorf(ErrorKind::InvalidArgument, "'{}' is not a pod source (enroll, cni, kubernetes)", shown(text));
}

Result<PodStatus> parse_pod_status(std::string_view text) {
  if (text == "pending") return PodStatus::Pending;
  if (text == "enabled") return PodStatus::Enabled;
  return errorf(ErrorKind::InvalidArgument, "'{}' is not a pod status (pending, enabled)", shown(text));
}

UnixMillis unix_millis_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_valid_uid(std::string_view uid) noexcept {
  if (uid.empty() || uid.size() > kMaxUidLength) return false;
  return std::all_of(uid.begin(), uid.end(), [](char c) {
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.';
  });
}

bool is_dns1123_label(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxNamespaceLength) return false;
  if (!is_lower_alnum(s.front()) || !is_lower_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
}

bool is_dns1123_subdomain(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  // Dot-separated DNS-1123 labels (Kubernetes IsDNS1123Subdomain).
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    if (!is_dns1123_label(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

Result<std::string> canonical_ip(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) {
    return errorf(ErrorKind::InvalidArgument, "'{}' is not an IP address (NUL byte)", shown(text));
  }
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return errorf(ErrorKind::InvalidArgument, "'{}' is not an IP address", shown(text));
  return addr.to_string();
}

Result<void> validate_pod_spec(const PodSpec& spec, const PodSpecFieldNames& names) {
  const std::pair<std::string_view, const std::string*> required[] = {
      {names.uid, &spec.uid},
      {names.name, &spec.name},
      {names.namespace_, &spec.namespace_},
      {names.netns, &spec.netns}};
  for (const auto& [field, value] : required) {
    if (value->empty()) return errorf(ErrorKind::InvalidArgument, "{}: missing", field);
  }
  if (!is_valid_uid(spec.uid)) {
    return errorf(ErrorKind::InvalidArgument,
                  "{}: '{}' is not a pod uid (1..{} characters of A-Z a-z 0-9 '.' '_' '-')", names.uid, shown(spec.uid),
                  kMaxUidLength);
  }
  if (!is_dns1123_subdomain(spec.name)) {
    return errorf(ErrorKind::InvalidArgument,
                  "{}: '{}' is not a DNS-1123 subdomain (1..{} lower-case alphanumerics, '-' and '.', "
                  "starting and ending with an alphanumeric)",
                  names.name, shown(spec.name), kMaxNameLength);
  }
  if (!is_dns1123_label(spec.namespace_)) {
    return errorf(ErrorKind::InvalidArgument,
                  "{}: '{}' is not a DNS-1123 label (1..{} lower-case alphanumerics and '-', "
                  "starting and ending with an alphanumeric)",
                  names.namespace_, shown(spec.namespace_), kMaxNamespaceLength);
  }
  if (!spec.service_account.empty() && !is_dns1123_subdomain(spec.service_account)) {
    return errorf(ErrorKind::InvalidArgument,
                  "{}: '{}' is not a DNS-1123 subdomain (lower-case alphanumerics, '-' and '.')",
                  names.service_account, shown(spec.service_account));
  }
  if (spec.netns.empty() || spec.netns.front() != '/') {
    return errorf(ErrorKind::InvalidArgument, "{}: '{}' is not an absolute path", names.netns,
                  shown(spec.netns));
  }
  if (spec.netns.size() > kMaxNetnsPathLength || spec.netns.find('\0') != std::string::npos) {
    return errorf(ErrorKind::InvalidArgument, "{}: path longer than {} bytes or holding a NUL byte",
                  names.netns, kMaxNetnsPathLength);
  }
  if (spec.ips.size() > kMaxPodIps) {
    return errorf(ErrorKind::InvalidArgument, "{}: {} addresses, more than the {} allowed", names.ips,
                  spec.ips.size(), kMaxPodIps);
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < spec.ips.size(); ++i) {
    auto ip = canonical_ip(spec.ips[i]);
    if (!ip) return errorf(ErrorKind::InvalidArgument, "{}[{}]: {}", names.ips, i, ip.error().context);
    if (!seen.insert(*ip).second) {
      return errorf(ErrorKind::InvalidArgument, "{}[{}]: '{}' is listed twice", names.ips, i,
                    shown(spec.ips[i]));
    }
  }
  return ok();
}

}  // namespace ambient::cni
