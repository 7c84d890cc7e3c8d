#pragma once
// PodSpec and PodRecord: what the node agent knows about a pod it is asked to enroll, and what it keeps
// about a pod it enrolled. Plain values; validation is a pure function (table-tested).
//
// Limits (validate_pod_spec), so a record has a bounded size (about 1.5 KiB as JSON at most, so the
// store's 4096 pods stay under a few MiB):
//  - uid: 1..128 characters of [A-Za-z0-9._-] (Kubernetes UIDs are 36-character UUIDs; the CLI may
//    use other stable ids).
//  - name: a DNS-1123 subdomain (<= 253: lower-case alphanumerics, '-' and '.', alphanumeric at both
//    ends); namespace: a DNS-1123 label (<= 63, no '.').
//  - service_account: empty (not known, e.g. a CNI ADD without it) or a DNS-1123 subdomain.
//  - netns: an absolute path, <= 4096 bytes, no NUL.
//  - ips: 0..16 IPv4 or IPv6 addresses, no prefix length, no duplicates. Empty is allowed: the pod may
//    have no address yet; whether the agent needs one is the agent's decision.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/net/netns.h"

namespace ambient::cni {

inline constexpr std::size_t kMaxUidLength = 128;
inline constexpr std::size_t kMaxNameLength = 253;       // DNS-1123 subdomain
inline constexpr std::size_t kMaxNamespaceLength = 63;   // DNS-1123 label
inline constexpr std::size_t kMaxNetnsPathLength = 4096;  // PATH_MAX
inline constexpr std::size_t kMaxPodIps = 16;

// Per-pod overrides of the agent's global settings (Istio reads them from pod annotations).
struct PodOptions {
  // ambient.istio.io/dns-capture: true/false overrides the agent's DNS capture setting; nullopt = use it.
  std::optional<bool> dns_capture;

  friend bool operator==(const PodOptions&, const PodOptions&) = default;
};

// A pod as a source describes it: enough to enter its netns and to name it to ztunnel over ZDS.
struct PodSpec {
  std::string uid;              // Kubernetes metadata.uid; the key of every record
  std::string name;             // metadata.name
  std::string namespace_;       // metadata.namespace
  std::string service_account;  // spec.serviceAccountName; empty = not known
  std::string netns;            // path of the pod's netns, e.g. /var/run/netns/cni-1234 (host view)
  std::vector<std::string> ips;  // pod IPs, canonical text ("10.0.0.5", "fd00::5")
  PodOptions options;

  friend bool operator==(const PodSpec&, const PodSpec&) = default;
};

// Where an enrollment came from.
enum class PodSourceKind : std::uint8_t {
  Enroll,  // the agent's API (POST /enroll): an operator or the CLI
  Cni,     // the CNI plugin's ADD (POST /cmdadd) while the pod sandbox is created
  Kubernetes,  // the Kubernetes pod watch (a running pod enrolled by its labels)
};

// How far an enrolled pod got (Istio's ambient.istio.io/redirection annotation values).
enum class PodStatus : std::uint8_t {
  Pending,  // in-pod rules installed, no ztunnel acked the pod yet: its traffic is held
  Enabled,  // rules installed and a ztunnel acked the pod: fully enrolled
};

std::string_view to_string(PodSourceKind kind) noexcept;
std::string_view to_string(PodStatus status) noexcept;
// "enroll"/"cni"/"kubernetes", "pending"/"enabled"; InvalidArgument for anything else.
Result<PodSourceKind> parse_pod_source_kind(std::string_view text);
Result<PodStatus> parse_pod_status(std::string_view text);

// Milliseconds since the Unix epoch (what the store writes; readable with `date -d @$((ms/1000))`).
using UnixMillis = std::int64_t;
UnixMillis unix_millis_now();

// What the agent keeps about a pod it enrolled (persisted by PodStore).
struct PodRecord {
  PodSpec spec;
  net::NetnsId netns_id;   // identity of spec.netns when enrolled: a reused path is a different pod
  PodStatus status = PodStatus::Pending;
  PodSourceKind source = PodSourceKind::Enroll;
  UnixMillis created_at = 0;  // first enrollment of this uid
  UnixMillis updated_at = 0;  // last change of this record

  friend bool operator==(const PodRecord&, const PodRecord&) = default;
};

// How errors name the fields: the JSON keys of the body or file the spec came from.
struct PodSpecFieldNames {
  std::string_view uid = "uid";
  std::string_view name = "name";
  std::string_view namespace_ = "namespace";
  std::string_view service_account = "serviceAccount";
  std::string_view netns = "netns";
  std::string_view ips = "ips";
};

// Checks `spec` against the limits above. InvalidArgument naming the field first at fault, e.g.
// "namespace: 'Kube_System' is not a DNS-1123 label (lower-case alphanumerics and '-', ...)".
Result<void> validate_pod_spec(const PodSpec& spec, const PodSpecFieldNames& names = {});

// The same checks one field at a time (shared by the API's request parsing and the store's loading).
bool is_valid_uid(std::string_view uid) noexcept;
bool is_dns1123_label(std::string_view s) noexcept;
bool is_dns1123_subdomain(std::string_view s) noexcept;
// The canonical text of an IP address ("fd00:0::5" -> "fd00::5"); InvalidArgument when `text` is not
// an IPv4 or IPv6 address (a prefix length is refused too).
Result<std::string> canonical_ip(std::string_view text);

}  // namespace ambient::cni
