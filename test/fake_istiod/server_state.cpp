#include "test/fake_istiod/server_state.h"

#include <charconv>

#include <fmt/format.h>

#include "common/base/json.h"

namespace fake_istiod {

using ambient::ErrorKind;
using ambient::errorf;

namespace {

ambient::Result<std::int64_t> parse_int(std::string_view name, std::string_view value, std::int64_t lo,
                                        std::int64_t hi) {
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || ec != std::errc{} || end != value.data() + value.size() || n < lo || n > hi)
    return errorf(ErrorKind::InvalidArgument, "fault {}: \"{}\" is not an integer in [{}, {}]", name, value, lo, hi);
  return n;
}

ambient::Result<bool> parse_bool(std::string_view name, std::string_view value) {
  if (value == "1" || value == "true") return true;
  if (value == "0" || value == "false") return false;
  return errorf(ErrorKind::InvalidArgument, "fault {}: \"{}\" is not 0, 1, true or false", name, value);
}

}  // namespace

ambient::Result<FaultName> set_fault(Faults& faults, std::string_view name, std::string_view value) {
  if (name == "drop-streams") return FaultName::DropStreams;
  if (name == "push-delay-ms") {
    auto n = parse_int(name, value, 0, 60'000);
    if (!n) return n.error();
    faults.push_delay_ms = *n;
    return FaultName::PushDelayMs;
  }
  if (name == "cert-ttl-s") {
    auto n = parse_int(name, value, 0, std::int64_t{10} * 365 * 24 * 3600);
    if (!n) return n.error();
    faults.cert_ttl_s = *n;
    return FaultName::CertTtlS;
  }
  if (name == "invalid-resource" || name == "refuse-csr") {
    auto b = parse_bool(name, value);
    if (!b) return b.error();
    (name == "refuse-csr" ? faults.refuse_csr : faults.invalid_resource) = *b;
    return name == "refuse-csr" ? FaultName::RefuseCsr : FaultName::InvalidResource;
  }
  return errorf(ErrorKind::InvalidArgument,
                "unknown fault \"{}\" (known: drop-streams, push-delay-ms, invalid-resource, refuse-csr, cert-ttl-s)",
                name);
}

void Stats::set_last_nack(std::string message) {
  std::lock_guard lock(mu_);
  last_nack_ = std::move(message);
}

void Stats::set_last_node(std::string node) {
  std::lock_guard lock(mu_);
  last_node_ = std::move(node);
}

std::string Stats::last_node() const {
  std::lock_guard lock(mu_);
  return last_node_;
}

std::string Stats::last_nack() const {
  std::lock_guard lock(mu_);
  return last_nack_;
}

void Stats::set_last_config_error(std::string message) {
  std::lock_guard lock(mu_);
  last_config_error_ = std::move(message);
}

std::string Stats::last_config_error() const {
  std::lock_guard lock(mu_);
  return last_config_error_;
}

void Stats::record_answer_latency(std::uint64_t micros) {
  std::lock_guard lock(mu_);
  if (latencies_.size() >= kMaxLatencies) latencies_.erase(latencies_.begin(), latencies_.begin() + kMaxLatencies / 2);
  latencies_.push_back(micros);
}

std::vector<std::uint64_t> Stats::answer_latencies() const {
  std::lock_guard lock(mu_);
  return latencies_;
}

std::string status_json(const Stats& s, const Faults& f) {
  return fmt::format(
      "{{\"streams_connected\": {}, \"streams_total\": {}, \"pushes_sent\": {}, \"acks\": {}, \"nacks\": {}, "
      "\"last_nack\": {}, \"last_node\": {}, \"csrs_signed\": {}, \"csrs_refused\": {}, \"unauthenticated\": {}, "
      "\"config_generation\": {}, \"config_errors\": {}, \"last_config_error\": {}, "
      "\"faults\": {{\"push-delay-ms\": {}, \"invalid-resource\": {}, \"refuse-csr\": {}, \"cert-ttl-s\": {}}}}}\n",
      s.streams_connected.load(), s.streams_total.load(), s.pushes_sent.load(), s.acks.load(), s.nacks.load(),
      ambient::json::quote(s.last_nack()), ambient::json::quote(s.last_node()), s.csrs_signed.load(), s.csrs_refused.load(), s.unauthenticated.load(),
      s.config_generation.load(), s.config_errors.load(), ambient::json::quote(s.last_config_error()),
      f.push_delay_ms.load(), f.invalid_resource.load(), f.refuse_csr.load(), f.cert_ttl_s.load());
}

std::string metadata_value(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata, std::string_view key) {
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  return it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

std::optional<grpc::Status> check_token(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                                        const std::optional<std::string>& token) {
  if (!token) return std::nullopt;
  const auto it = metadata.find("authorization");
  if (it == metadata.end())
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "authorization token missing: want 'authorization: Bearer <token>'");
  const std::string_view got(it->second.data(), it->second.size());
  if (got != "Bearer " + *token)
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "authorization token wrong: bearer token not accepted");
  return std::nullopt;
}

}  // namespace fake_istiod
