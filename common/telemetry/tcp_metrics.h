#pragma once
// Istio's standard TCP metrics, with ztunnel's names and label set (reference/ztunnel.md 8.3):
//   istio_tcp_connections_opened_total, istio_tcp_connections_closed_total,
//   istio_tcp_received_bytes_total, istio_tcp_sent_bytes_total   counters, CommonTrafficLabels
//   istio_tcp_sockets_open                                        gauge, label reporter
//
// IstioTcpMetrics registers the families once (control thread). Each worker owns a TcpMetricsRecorder
// on its own MetricsShard:
//   auto h = rec.on_open(labels);      // interns the label set once per connection (hash lookup)
//   rec.on_bytes(h, sent, received);   // per copy: two single-writer adds, no lookup, no strings
//   rec.on_close(h, flags);            // flags != None: closed counted with response_flags set (rare)
// Bytes are in Istio's metric sense, which is flipped for reporter=source (istio/istio#32399): the
// caller passes what the metric should count; access logs un-flip (see access_log.h).
//
// Limits: the recorder caches one entry per distinct TcpLabels for the worker's life (as the series
// themselves live forever), so memory grows with label cardinality, not with connections.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/telemetry/metrics.h"

namespace ambient::telemetry {

enum class Reporter : std::uint8_t {
  Source,       // ztunnel on the client's node (outbound)
  Destination,  // ztunnel on the server's node (inbound)
};

// Response flags, as ztunnel and Envoy spell them. None renders "-".
enum class ResponseFlags : std::uint8_t {
  None,                // "-"
  Deny,                // "DENY": authorization policy denied
  Connect,             // "CONNECT": upstream connection failed
  TlsFailure,          // "TLS_FAILURE"
  H2HandshakeFailure,  // "H2_HANDSHAKE_FAILURE"
  NetworkPolicy,       // "NETWORK_POLICY"
  IdentityError,       // "IDENTITY_ERROR"
  CertRevoked,         // "CERT_REVOKED"
};

enum class SecurityPolicy : std::uint8_t {
  Unknown,    // "unknown": plaintext or not known
  MutualTls,  // "mutual_tls"
};

std::string_view to_string(Reporter r) noexcept;
std::string_view to_string(ResponseFlags f) noexcept;
std::string_view to_string(SecurityPolicy p) noexcept;

// CommonTrafficLabels. Empty strings render "unknown"; request_protocol is always "tcp". The four
// locality labels are rendered only when has_locality (ztunnel adds them once a workload is known).
struct TcpLabels {
  Reporter reporter = Reporter::Source;

  std::string source_workload;
  std::string source_canonical_service;
  std::string source_canonical_revision;
  std::string source_workload_namespace;
  std::string source_principal;  // spiffe://<td>/ns/<ns>/sa/<sa>, only from the verified peer cert
  std::string source_app;
  std::string source_version;
  std::string source_cluster;

  std::string destination_service;            // hostname
  std::string destination_service_namespace;
  std::string destination_service_name;

  std::string destination_workload;
  std::string destination_canonical_service;
  std::string destination_canonical_revision;
  std::string destination_workload_namespace;
  std::string destination_principal;
  std::string destination_app;
  std::string destination_version;
  std::string destination_cluster;

  ResponseFlags response_flags = ResponseFlags::None;
  SecurityPolicy connection_security_policy = SecurityPolicy::Unknown;

  bool has_locality = false;
  std::string source_region;
  std::string source_zone;
  std::string destination_region;
  std::string destination_zone;

  bool operator==(const TcpLabels&) const = default;
};

struct TcpLabelsHash {
  std::size_t operator()(const TcpLabels& l) const noexcept;
};

// The exposition label text of `labels`, in ztunnel's order (reporter first, locality last).
std::string render_labels(const TcpLabels& labels);

class IstioTcpMetrics {
 public:
  // Registers the families in `registry` (idempotent). Control thread, before workers record.
  explicit IstioTcpMetrics(Registry& registry);

  const Family& opened() const noexcept { return *opened_; }
  const Family& closed() const noexcept { return *closed_; }
  const Family& received_bytes() const noexcept { return *received_; }
  const Family& sent_bytes() const noexcept { return *sent_; }
  const Family& sockets_open() const noexcept { return *sockets_open_; }

 private:
  const Family* opened_;
  const Family* closed_;
  const Family* received_;
  const Family* sent_;
  const Family* sockets_open_;
};

namespace detail {
struct TcpSeries;  // the cached handles of one label set in one shard
}

// Opaque per-connection handle: valid while its recorder lives; use on the recorder's thread only.
class TcpMetricsHandle {
 public:
  TcpMetricsHandle() = default;  // a null handle; on_bytes/on_close on it are no-ops
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  friend class TcpMetricsRecorder;
  explicit TcpMetricsHandle(const detail::TcpSeries* s) noexcept : s_(s) {}
  const detail::TcpSeries* s_ = nullptr;
};

class TcpMetricsRecorder {
 public:
  // `metrics` and `shard` must outlive the recorder; `shard` belongs to the calling thread.
  TcpMetricsRecorder(const IstioTcpMetrics& metrics, MetricsShard& shard);
  ~TcpMetricsRecorder();
  TcpMetricsRecorder(const TcpMetricsRecorder&) = delete;
  TcpMetricsRecorder& operator=(const TcpMetricsRecorder&) = delete;

  // Counts one opened connection (and one open socket) and returns its handle. labels.response_flags
  // is normally None at open.
  TcpMetricsHandle on_open(const TcpLabels& labels);
  // Adds bytes to istio_tcp_sent_bytes_total / istio_tcp_received_bytes_total.
  void on_bytes(TcpMetricsHandle h, std::uint64_t sent, std::uint64_t received) noexcept;
  // Counts the close, under the open's labels with response_flags = `flags` when given.
  void on_close(TcpMetricsHandle h, ResponseFlags flags = ResponseFlags::None);

  std::size_t cached_label_sets() const noexcept { return cache_.size(); }

 private:
  const detail::TcpSeries& lookup(const TcpLabels& labels);

  const IstioTcpMetrics& metrics_;
  MetricsShard& shard_;
  std::unordered_map<TcpLabels, std::unique_ptr<detail::TcpSeries>, TcpLabelsHash> cache_;
  std::unordered_map<TcpLabels, Counter, TcpLabelsHash> flagged_closed_;  // closes with response flags
  Gauge sockets_open_[2];  // by Reporter
};

}  // namespace ambient::telemetry
