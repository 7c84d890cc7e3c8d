#include "common/telemetry/tcp_metrics.h"

#include <functional>

namespace ambient::telemetry {

namespace detail {
struct TcpSeries {
  const TcpLabels* labels = nullptr;  // the cache key (stable: unordered_map nodes don't move)
  Counter opened;
  Counter closed;
  Counter sent;
  Counter received;
};
}  // namespace detail

std::string_view to_string(Reporter r) noexcept {
  return r == Reporter::Source ? "source" : "destination";
}

std::string_view to_string(ResponseFlags f) noexcept {
  switch (f) {
    case ResponseFlags::None: return "-";
    case ResponseFlags::Deny: return "DENY";
    case ResponseFlags::Connect: return "CONNECT";
    case ResponseFlags::TlsFailure: return "TLS_FAILURE";
    case ResponseFlags::H2HandshakeFailure: return "H2_HANDSHAKE_FAILURE";
    case ResponseFlags::NetworkPolicy: return "NETWORK_POLICY";
    case ResponseFlags::IdentityError: return "IDENTITY_ERROR";
    case ResponseFlags::CertRevoked: return "CERT_REVOKED";
  }
  return "-";
}

std::string_view to_string(SecurityPolicy p) noexcept {
  return p == SecurityPolicy::MutualTls ? "mutual_tls" : "unknown";
}

std::size_t TcpLabelsHash::operator()(const TcpLabels& l) const noexcept {
  std::size_t h = static_cast<std::size_t>(l.reporter) | (static_cast<std::size_t>(l.response_flags) << 2) |
                  (static_cast<std::size_t>(l.connection_security_policy) << 6) |
                  (static_cast<std::size_t>(l.has_locality) << 8);
  auto mix = [&h](const std::string& s) {
    h ^= std::hash<std::string>{}(s) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  };
  for (const std::string* s : {&l.source_workload, &l.source_canonical_service, &l.source_canonical_revision,
                               &l.source_workload_namespace, &l.source_principal, &l.source_app,
                               &l.source_version, &l.source_cluster, &l.destination_service,
                               &l.destination_service_namespace, &l.destination_service_name,
                               &l.destination_workload, &l.destination_canonical_service,
                               &l.destination_canonical_revision, &l.destination_workload_namespace,
                               &l.destination_principal, &l.destination_app, &l.destination_version,
                               &l.destination_cluster, &l.source_region, &l.source_zone,
                               &l.destination_region, &l.destination_zone}) {
    mix(*s);
  }
  return h;
}

std::string render_labels(const TcpLabels& l) {
  std::string out;
  out.reserve(768);
  auto add = [&out](std::string_view name, const std::string& v) {
    append_label(out, name, v.empty() ? std::string_view("unknown") : std::string_view(v));
  };
  append_label(out, "reporter", to_string(l.reporter));
  add("source_workload", l.source_workload);
  add("source_canonical_service", l.source_canonical_service);
  add("source_canonical_revision", l.source_canonical_revision);
  add("source_workload_namespace", l.source_workload_namespace);
  add("source_principal", l.source_principal);
  add("source_app", l.source_app);
  add("source_version", l.source_version);
  add("source_cluster", l.source_cluster);
  add("destination_service", l.destination_service);
  add("destination_service_namespace", l.destination_service_namespace);
  add("destination_service_name", l.destination_service_name);
  add("destination_workload", l.destination_workload);
  add("destination_canonical_service", l.destination_canonical_service);
  add("destination_canonical_revision", l.destination_canonical_revision);
  add("destination_workload_namespace", l.destination_workload_namespace);
  add("destination_principal", l.destination_principal);
  add("destination_app", l.destination_app);
  add("destination_version", l.destination_version);
  add("destination_cluster", l.destination_cluster);
  append_label(out, "request_protocol", "tcp");
  append_label(out, "response_flags", to_string(l.response_flags));
  append_label(out, "connection_security_policy", to_string(l.connection_security_policy));
  if (l.has_locality) {
    add("source_region", l.source_region);
    add("source_zone", l.source_zone);
    add("destination_region", l.destination_region);
    add("destination_zone", l.destination_zone);
  }
  return out;
}

IstioTcpMetrics::IstioTcpMetrics(Registry& registry)
    // Help texts as ztunnel registers them (src/proxy/metrics.rs).
    : opened_(&registry.counter("istio_tcp_connections_opened_total", "The total number of TCP connections opened")),
      closed_(&registry.counter("istio_tcp_connections_closed_total", "The total number of TCP connections closed")),
      received_(&registry.counter("istio_tcp_received_bytes_total",
                                  "The size of total bytes received during request in case of a TCP connection")),
      sent_(&registry.counter("istio_tcp_sent_bytes_total",
                              "The size of total bytes sent during response in case of a TCP connection")),
      sockets_open_(&registry.gauge("istio_tcp_sockets_open", "The number of TCP sockets currently open")) {}

TcpMetricsRecorder::TcpMetricsRecorder(const IstioTcpMetrics& metrics, MetricsShard& shard)
    : metrics_(metrics), shard_(shard) {
  for (Reporter r : {Reporter::Source, Reporter::Destination}) {
    const Label l{"reporter", to_string(r)};
    sockets_open_[static_cast<int>(r)] = shard_.gauge(metrics_.sockets_open(), std::span<const Label>(&l, 1));
  }
}

TcpMetricsRecorder::~TcpMetricsRecorder() = default;

const detail::TcpSeries& TcpMetricsRecorder::lookup(const TcpLabels& labels) {
  if (auto it = cache_.find(labels); it != cache_.end()) return *it->second;
  // First connection with this label set on this worker: render once, intern four series.
  const std::string text = render_labels(labels);
  auto s = std::make_unique<detail::TcpSeries>();
  s->opened = shard_.counter_rendered(metrics_.opened(), text);
  s->closed = shard_.counter_rendered(metrics_.closed(), text);
  s->sent = shard_.counter_rendered(metrics_.sent_bytes(), text);
  s->received = shard_.counter_rendered(metrics_.received_bytes(), text);
  auto [it, inserted] = cache_.emplace(labels, std::move(s));
  it->second->labels = &it->first;
  return *it->second;
}

TcpMetricsHandle TcpMetricsRecorder::on_open(const TcpLabels& labels) {
  const detail::TcpSeries& s = lookup(labels);
  s.opened.inc();
  sockets_open_[static_cast<int>(labels.reporter)].add(1);
  return TcpMetricsHandle(&s);
}

void TcpMetricsRecorder::on_bytes(TcpMetricsHandle h, std::uint64_t sent, std::uint64_t received) noexcept {
  if (!h) return;
  if (sent != 0) h.s_->sent.inc(sent);
  if (received != 0) h.s_->received.inc(received);
}

void TcpMetricsRecorder::on_close(TcpMetricsHandle h, ResponseFlags flags) {
  if (!h) return;
  const TcpLabels& open_labels = *h.s_->labels;
  sockets_open_[static_cast<int>(open_labels.reporter)].sub(1);
  if (flags == ResponseFlags::None || flags == open_labels.response_flags) {
    h.s_->closed.inc();
    return;
  }
  // Failure path only: one copy and one lookup. Only the closed series exists with these flags (the
  // open was counted, and the bytes go on being counted, under the labels of the open).
  TcpLabels flagged = open_labels;
  flagged.response_flags = flags;
  auto it = flagged_closed_.find(flagged);
  if (it == flagged_closed_.end()) {
    Counter c = shard_.counter_rendered(metrics_.closed(), render_labels(flagged));
    it = flagged_closed_.emplace(std::move(flagged), c).first;
  }
  it->second.inc();
}

}  // namespace ambient::telemetry
