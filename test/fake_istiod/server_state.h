#pragma once
// What fake-istiod's services share: the faults in force, the counters /status reports, and the bearer
// token check. Everything here is safe to use from any thread (grpc++ callback threads, the sync CA
// handler threads, the admin thread, the config poller).
//
// Faults (each settable by a start-up flag and by the admin API, POST /fault?name=value):
//   drop-streams          admin only: ends every open ADS stream now with UNAVAILABLE
//   push-delay-ms=N       waits N ms (0..60000) before each ADS push
//   invalid-resource=0|1  adds the Address resource "invalid/bad-workload" (a Workload with a 3-byte
//                         address, which a client must NACK) to what is pushed; clearing it removes it
//   refuse-csr=0|1        CreateCertificate answers UNAVAILABLE
//   cert-ttl-s=N          issued certificates are valid for at most N seconds (0: no cap)
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "common/base/result.h"

namespace fake_istiod {

struct Faults {
  std::atomic<std::int64_t> push_delay_ms{0};
  std::atomic<bool> invalid_resource{false};
  std::atomic<bool> refuse_csr{false};
  std::atomic<std::int64_t> cert_ttl_s{0};  // 0: no cap
};

// Which fault a set_fault call changed, so the caller can act on it (push, drop).
enum class FaultName : std::uint8_t {
  DropStreams,      // no state: an action
  PushDelayMs,
  InvalidResource,  // changes what ADS pushes
  RefuseCsr,
  CertTtlS,
};

// Parses `name=value` and stores it in `faults`. InvalidArgument names the fault and the accepted values.
// `value` may be empty for drop-streams.
ambient::Result<FaultName> set_fault(Faults& faults, std::string_view name, std::string_view value);

struct Stats {
  std::atomic<std::uint64_t> streams_connected{0};  // ADS streams open now
  std::atomic<std::uint64_t> streams_total{0};      // ADS streams accepted since start
  std::atomic<std::uint64_t> pushes_sent{0};        // DeltaDiscoveryResponses queued for sending
  std::atomic<std::uint64_t> acks{0};
  std::atomic<std::uint64_t> nacks{0};
  std::atomic<std::uint64_t> csrs_signed{0};
  std::atomic<std::uint64_t> csrs_refused{0};       // every CreateCertificate that did not sign
  std::atomic<std::uint64_t> unauthenticated{0};    // calls refused for a missing or wrong token
  std::atomic<std::uint64_t> config_generation{0};  // good config loads so far
  std::atomic<std::uint64_t> config_errors{0};      // config loads refused (previous state kept)

  void set_last_nack(std::string message);
  std::string last_nack() const;
  // The node of the last stream's first request: "id" and its string metadata as "K=V,K=V" (sorted).
  void set_last_node(std::string node);
  std::string last_node() const;
  void set_last_config_error(std::string message);
  std::string last_config_error() const;
  // Push-to-answer latency: from queuing a DeltaDiscoveryResponse to receiving its ACK/NACK (the client
  // ACKs once it applied the push). Bounded: the last kMaxLatencies samples.
  static constexpr std::size_t kMaxLatencies = 100'000;
  void record_answer_latency(std::uint64_t micros);
  std::vector<std::uint64_t> answer_latencies() const;  // microseconds, oldest first

 private:
  mutable std::mutex mu_;
  std::vector<std::uint64_t> latencies_;
  std::string last_nack_;
  std::string last_node_;
  std::string last_config_error_;
};

// The admin GET /status body: {"streams_connected": .., ..., "faults": {...}}.
std::string status_json(const Stats& stats, const Faults& faults);

// nullopt when the call may proceed: no token configured, or "authorization: Bearer <token>" present.
// Otherwise UNAUTHENTICATED saying whether the token is missing or wrong.
std::optional<grpc::Status> check_token(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                                        const std::optional<std::string>& token);

// The value of metadata `key` ("" when absent).
std::string metadata_value(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata, std::string_view key);

}  // namespace fake_istiod
