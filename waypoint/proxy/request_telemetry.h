#pragma once
// Per-request telemetry of the waypoint: Istio's standard HTTP metrics with reporter="waypoint" and one
// access-log line per request (reference waypoint-perf.md A.3):
//   istio_requests_total                 counter
//   istio_request_duration_milliseconds  histogram (Istio's default buckets)
//   istio_request_bytes, istio_response_bytes  histograms (bytes of the bodies)
// Labels (Istio's set, in its order): reporter, source_{workload,canonical_service,canonical_revision,
// workload_namespace,principal,app,version,cluster}, destination_{workload,workload_namespace,principal,app,
// version,service,canonical_service,canonical_revision,service_name,service_namespace,cluster}, request_protocol,
// response_code, grpc_response_status, response_flags, connection_security_policy. Unknown values render
// "unknown"; response_flags "-" when none (Envoy's short names otherwise: UF, UC, UT, URX, NR, UH, DC, RL...).
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "common/state/snapshot.h"
#include "common/telemetry/metrics.h"

namespace ambient::waypoint {

class RequestMetrics {
 public:
  explicit RequestMetrics(telemetry::Registry& registry);  // control thread, before workers record
  const telemetry::Family& requests() const { return *requests_; }
  const telemetry::Family& duration() const { return *duration_; }
  const telemetry::Family& request_bytes() const { return *request_bytes_; }
  const telemetry::Family& response_bytes() const { return *response_bytes_; }

 private:
  const telemetry::Family* requests_;
  const telemetry::Family* duration_;
  const telemetry::Family* request_bytes_;
  const telemetry::Family* response_bytes_;
};

// Everything one request records.
struct RequestRecord {
  std::string src_addr, src_principal;            // principal: "spiffe://td/ns/NS/sa/SA" of the HBONE peer
  const state::Workload* source = nullptr;       // by peer IP, when known
  const state::Service* service = nullptr;       // the service the request went to (after routing)
  const state::Workload* destination = nullptr;  // the endpoint
  std::string upstream;                          // "ip:port" of the endpoint, "" if none
  std::string authority;                         // the tunnel's CONNECT :authority
  std::string method, path, host, protocol = "http", request_id, user_agent;
  std::string route;                             // "ns/name" or "" (default route)
  int status = 0;
  std::string grpc_status;                       // "" unknown
  std::string flags = "-";
  std::string reason;                            // why, for non-2xx outcomes we produced
  std::uint64_t request_bytes = 0, response_bytes = 0;
  std::uint32_t attempts = 0;
  std::chrono::steady_clock::time_point started{};
};

// One worker's recorder: the metric handles of each label set are looked up once and cached by a compact key
// (source principal and workload, service, destination workload, protocol, status, grpc status, flags), so a
// request costs one hash lookup instead of rendering 25 labels four times. At most kMaxCached label sets are
// cached (the series themselves live forever, as Prometheus series do); past that, handles are looked up each
// time.
class RequestRecorder {
 public:
  static constexpr std::size_t kMaxCached = 10'000;
  RequestRecorder(const RequestMetrics& metrics, telemetry::MetricsShard& shard) : metrics_(metrics), shard_(shard) {}
  // Records `rec`'s metrics and, when `access_log`, writes its access-log line. The worker's thread only.
  void record(const RequestRecord& rec, bool access_log);
  // A new state may give a workload new labels under the same uid: forget the cached handles.
  void clear() { cache_.clear(); }

 private:
  struct Series {
    telemetry::Counter requests;
    telemetry::Histogram duration, request_bytes, response_bytes;
  };
  Series lookup(const RequestRecord& rec);
  const RequestMetrics& metrics_;
  telemetry::MetricsShard& shard_;
  std::unordered_map<std::string, Series> cache_;
  std::string key_;  // reused buffer
};

}  // namespace ambient::waypoint
