#pragma once
// The request headers of an HBONE CONNECT besides :authority (reference ztunnel.md 3.2, 3.3), as pure
// builders and parsers (no I/O). The parsers take bytes from a peer: they are bounded, linear, and
// never throw.
//
//   baggage:     k8s.cluster.name=C,k8s.namespace.name=NS,k8s.<type>.name=W,service.name=S,
//                service.version=V,cloud.region=R,cloud.availability_zone=Z   (source workload; absent
//                keys omitted; the server's 200 carries the same shape for the destination)
//   forwarded:   for="10.0.0.1:34567";host=reviews.default.svc.cluster.local   (RFC 7239)
//   traceparent: 00-<32 hex trace id>-<16 hex span id>-00                      (W3C Trace Context)
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/h2/headers.h"

namespace ambient::hbone {

inline constexpr std::string_view kBaggageHeader = "baggage";
inline constexpr std::string_view kForwardedHeader = "forwarded";
inline constexpr std::string_view kTraceparentHeader = "traceparent";
inline constexpr std::string_view kForwardedNetworkHeader = "x-forwarded-network";  // inner CONNECT of double HBONE

// ---- baggage (W3C Baggage; keys are OpenTelemetry semantic conventions) ----

// Kubernetes kind owning the workload, as in workload.proto's WorkloadType; names are the lowercase
// <type> of the k8s.<type>.name baggage key.
enum class WorkloadType : std::uint8_t { Deployment, CronJob, Pod, Job };
std::string_view to_string(WorkloadType type) noexcept;  // "deployment", "cronjob", "pod", "job"

// The workload metadata carried in baggage. An empty string is an absent key, both ways (ztunnel reads
// `key=` as absent too).
struct Baggage {
  std::string cluster;           // k8s.cluster.name
  std::string namespace_name;    // k8s.namespace.name
  WorkloadType workload_type = WorkloadType::Deployment;
  std::string workload_name;     // k8s.<workload_type>.name
  std::string service;           // service.name (canonical service)
  std::string revision;          // service.version (canonical revision)
  std::string region;            // cloud.region
  std::string zone;              // cloud.availability_zone

  bool operator==(const Baggage&) const = default;
};

// W3C limits for a whole baggage (all header fields together): members past these are ignored.
inline constexpr std::size_t kMaxBaggageBytes = 8192;
inline constexpr std::size_t kMaxBaggageMembers = 64;

// Keys in the order above; values percent-encoded where W3C requires it (outside baggage-octet, and
// '%'), so Kubernetes names appear verbatim.
std::string build_baggage(const Baggage& b);

// Parses one header value: comma-separated `key=value[;properties]` members with optional whitespace,
// percent-decoded values. Unknown keys and malformed members (bad key, bad characters or escapes,
// control bytes after decoding) are skipped; a repeated key keeps the last value.
Baggage parse_baggage(std::string_view value);
// Same over every `baggage` field of a header block (HTTP/2 may split a list over several fields), with
// the limits applied to all of them together.
Baggage parse_baggage(const h2::Headers& headers);

// ---- forwarded (RFC 7239) ----

// `for="<ip>:<port>"` (`for="[<v6>]:<port>"`; a v4-mapped address is written as IPv4), then
// `;host=<host>` when `host` is not empty (a token verbatim, anything else as a quoted-string).
std::string build_forwarded(const boost::asio::ip::tcp::endpoint& source, std::string_view host = {});

// The pairs we read from the first forwarded-element (the hop closest to the original client), unquoted.
// Empty when the element has no such pair.
struct Forwarded {
  std::string for_node;  // e.g. "10.0.0.1:34567", "[2001:db8::1]:80", "unknown", "_hidden"
  std::string host;

  bool operator==(const Forwarded&) const = default;
};

// Comma-separated elements of `;`-separated `token=value` pairs, value a token or a quoted-string
// (backslash escapes); keys case-insensitive; whitespace tolerated around separators. Only the first
// element is parsed (and must be well-formed: Parse error otherwise, e.g. unterminated quote, missing
// '=', a pair repeated); the rest of the header is not looked at.
Result<Forwarded> parse_forwarded(std::string_view value);

// A forwarded node as an endpoint: "1.2.3.4:80", "[2001:db8::1]:80", or without a port ("1.2.3.4",
// "[2001:db8::1]", port 0). nullopt for "unknown", obfuscated names and anything else.
std::optional<boost::asio::ip::tcp::endpoint> parse_forwarded_node(std::string_view node);

// ---- traceparent (W3C Trace Context, version 00) ----

struct TraceParent {
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> span_id{};  // "parent-id" in the spec
  std::uint8_t flags = 0;                 // ztunnel sends 00 (not sampled)

  // Random non-zero ids (BoringSSL RAND_bytes), flags 00: one per outbound connection.
  static TraceParent random();

  std::string header() const;        // "00-<trace>-<span>-<flags>", lowercase hex
  std::string trace_id_hex() const;  // 32 lowercase hex digits (ztunnel logs this as the connection id)
  std::string span_id_hex() const;   // 16 lowercase hex digits

  bool operator==(const TraceParent&) const = default;
};

// Strict: exactly 55 characters, version 00, lowercase hex, '-' separators, neither id all zeros.
Result<TraceParent> parse_traceparent(std::string_view value);

}  // namespace ambient::hbone
