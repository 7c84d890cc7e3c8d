#include "waypoint/proxy/request_telemetry.h"

#include <array>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/state/resource.h"

namespace ambient::waypoint {

namespace {

std::string_view or_unknown(std::string_view s) { return s.empty() ? std::string_view("unknown") : s; }

std::string label_of(const state::Workload* w, std::string_view key) {
  if (w == nullptr) return {};
  if (key == "workload") return w->workload_name().empty() ? w->name() : w->workload_name();
  if (key == "namespace") return w->namespace_();
  if (key == "canonical_service") return w->canonical_name();
  if (key == "canonical_revision") return w->canonical_revision();
  if (key == "principal") return state::workload_identity(*w);
  if (key == "cluster") return std::string(state::workload_cluster_id(*w));
  return {};
}

}  // namespace

RequestMetrics::RequestMetrics(telemetry::Registry& registry) {
  requests_ = &registry.counter("istio_requests_total", "Requests processed by the waypoint");
  duration_ = &registry.histogram("istio_request_duration_milliseconds", "Request duration in milliseconds",
                                  {0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
                                   1800000, 3600000});
  const std::vector<double> bytes = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
  request_bytes_ = &registry.histogram("istio_request_bytes", "Request body sizes in bytes", bytes);
  response_bytes_ = &registry.histogram("istio_response_bytes", "Response body sizes in bytes", bytes);
}

RequestRecorder::Series RequestRecorder::lookup(const RequestRecord& r) {
  key_.clear();
  const auto add = [&](std::string_view v) {
    key_.append(v);
    key_.push_back('\x1f');
  };
  add(r.src_principal);
  add(r.source ? r.source->uid() : std::string_view());
  add(r.service ? r.service->hostname() : std::string_view());
  add(r.service ? r.service->namespace_() : std::string_view());
  add(r.destination ? r.destination->uid() : std::string_view());
  add(r.protocol);
  add(std::to_string(r.status));
  add(r.grpc_status);
  add(r.flags);
  if (auto it = cache_.find(key_); it != cache_.end()) return it->second;

  const std::string src_workload = label_of(r.source, "workload"), src_ns = label_of(r.source, "namespace"),
                    src_cs = label_of(r.source, "canonical_service"), src_cr = label_of(r.source, "canonical_revision"),
                    src_cluster = label_of(r.source, "cluster");
  const std::string dst_workload = label_of(r.destination, "workload"), dst_ns = label_of(r.destination, "namespace"),
                    dst_principal = label_of(r.destination, "principal"), dst_cs = label_of(r.destination, "canonical_service"),
                    dst_cr = label_of(r.destination, "canonical_revision"), dst_cluster = label_of(r.destination, "cluster");
  const std::string svc_host = r.service ? r.service->hostname() : std::string();
  const std::string svc_name = r.service ? (r.service->name().empty() ? r.service->hostname() : r.service->name()) : std::string();
  const std::string svc_ns = r.service ? r.service->namespace_() : std::string();
  const std::string code = std::to_string(r.status);
  const std::array<telemetry::Label, 25> labels{{
      {"reporter", "waypoint"},
      {"source_workload", or_unknown(src_workload)},
      {"source_canonical_service", or_unknown(src_cs)},
      {"source_canonical_revision", or_unknown(src_cr)},
      {"source_workload_namespace", or_unknown(src_ns)},
      {"source_principal", or_unknown(r.src_principal)},
      {"source_app", or_unknown(src_cs)},
      {"source_version", or_unknown(src_cr)},
      {"source_cluster", or_unknown(src_cluster)},
      {"destination_workload", or_unknown(dst_workload)},
      {"destination_workload_namespace", or_unknown(dst_ns)},
      {"destination_principal", or_unknown(dst_principal)},
      {"destination_app", or_unknown(dst_cs)},
      {"destination_version", or_unknown(dst_cr)},
      {"destination_service", or_unknown(svc_host)},
      {"destination_canonical_service", or_unknown(dst_cs)},
      {"destination_canonical_revision", or_unknown(dst_cr)},
      {"destination_service_name", or_unknown(svc_name)},
      {"destination_service_namespace", or_unknown(svc_ns)},
      {"destination_cluster", or_unknown(dst_cluster)},
      {"request_protocol", r.protocol},
      {"response_code", code},
      {"grpc_response_status", r.grpc_status},
      {"response_flags", r.flags},
      {"connection_security_policy", "mutual_tls"},
  }};
  Series s{shard_.counter(metrics_.requests(), labels), shard_.histogram(metrics_.duration(), labels),
           shard_.histogram(metrics_.request_bytes(), labels), shard_.histogram(metrics_.response_bytes(), labels)};
  if (cache_.size() < kMaxCached) cache_.emplace(key_, s);
  return s;
}

void RequestRecorder::record(const RequestRecord& r, bool access_log) {
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r.started).count();
  const Series s = lookup(r);
  s.requests.inc();
  s.duration.observe(ms);
  s.request_bytes.observe(static_cast<double>(r.request_bytes));
  s.response_bytes.observe(static_cast<double>(r.response_bytes));
  if (!access_log) return;
  const std::string_view svc_host = r.service ? std::string_view(r.service->hostname()) : std::string_view();
  spdlog::info("request: src.addr={} src.identity=\"{}\" authority={} method={} path=\"{}\" host=\"{}\" route=\"{}\" "
               "dst.service={} upstream={} status={} flags={} attempts={} bytes_in={} bytes_out={} duration={:.2f}ms "
               "request_id={}{}",
               r.src_addr, r.src_principal, r.authority, r.method, r.path, r.host,
               r.route, or_unknown(svc_host), r.upstream.empty() ? "-" : r.upstream, r.status, r.flags, r.attempts,
               r.request_bytes, r.response_bytes, ms, r.request_id, r.reason.empty() ? "" : " reason=\"" + r.reason + "\"");
}

}  // namespace ambient::waypoint
