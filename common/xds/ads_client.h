#pragma once
// AdsClient: ztunnel's Delta ADS client (reference ztunnel.md 4.1-4.4) on the control thread.
//
// One gRPC stream `DeltaAggregatedResources` over our own HTTP/2 client and BoringSSL (DESIGN.md
// section 2). Per stream: one wildcard request per type (the first carries the node) with
// initial_resource_versions = what this client holds; then every response is applied to the state
// (delta_applier.h) and answered with an ACK or a NACK naming the bad resources. After a change the
// owner is told (on_change) and builds/publishes a new snapshot; each type's first answered response
// releases on_type_ready once (readiness).
//
// Failures: connect, TLS, gRPC status or a stream the server ends are logged with the reason and
// retried with backoff (10 ms doubling to 15 s; back to 10 ms after a stream that delivered a
// response). The state is never cleared on a failure: traffic keeps the last good snapshot, and on
// reconnect initial_resource_versions avoids a full resend; the server's removed_resources cover what
// went away meanwhile.
//
// Threads: everything runs on `ex` (the control io_context); no locks.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/base/result.h"
#include "common/grpc/channel_tls.h"
#include "common/h2/headers.h"
#include "common/h2/session.h"
#include "common/state/snapshot_builder.h"
#include "common/xds/delta_applier.h"
#include "proto/core.pb.h"

namespace ambient::xds {

inline constexpr std::string_view kDeltaAdsPath =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

struct AdsOptions {
  AdsOptions() = default;  // not an aggregate (GCC 12 and aggregate temporaries in co_await)

  std::string host;               // DNS name or IP literal of the server
  std::uint16_t port = 15012;
  std::string server_name;        // verified in its certificate; empty = host
  std::shared_ptr<const grpc::ChannelTls> tls;  // required: istiod is always TLS
  std::string token_path;         // AUTH_TOKEN: re-read on every connect; empty = no bearer token
  std::string cluster_id;         // `clusterid` header; empty = not sent
  h2::Headers headers;            // XDS_HEADER_<name>=value
  envoy::config::core::v3::Node node;
  std::vector<std::string> type_urls{std::string(kAddressType), std::string(kAuthorizationType)};
  std::chrono::milliseconds backoff_initial{10};
  std::chrono::milliseconds backoff_max{15'000};
  std::chrono::milliseconds connect_timeout{5'000};
  std::size_t max_message = 200u << 20;  // as ztunnel's client
};

// Parses XDS_ADDRESS with grpc::parse_target (common/grpc/target.h). Errors name the setting and the value.
Result<AdsOptions> parse_xds_address(std::string_view address);

struct AdsStats {
  std::uint64_t connects = 0;    // streams opened
  std::uint64_t responses = 0;
  std::uint64_t acks = 0;
  std::uint64_t nacks = 0;
  std::uint64_t applied = 0;     // resources upserted over all responses
  std::uint64_t removed = 0;     // resources removed over all responses
  std::uint64_t apply_us_last = 0;  // the last response: parse check, apply, on_change (snapshot build + publish)
  std::uint64_t apply_us_max = 0;
  bool connected = false;
  std::string last_error;        // why the last stream ended
  std::string last_nack;         // error_detail of the last NACK
};

class AdsClient {
 public:
  using OnChange = std::function<void()>;
  using OnTypeReady = std::function<void(std::string_view type_url)>;

  AdsClient(boost::asio::any_io_executor ex, AdsOptions options, state::SnapshotBuilder& builder, OnChange on_change,
            OnTypeReady on_type_ready);
  ~AdsClient();

  void start();  // co_spawns the loop on ex
  void stop();   // ends the stream and the loop (on ex)

  const AdsStats& stats() const noexcept { return stats_; }
  // name -> version per type, as held (what the next stream sends as initial_resource_versions).
  const std::map<std::string, Versions, std::less<>>& versions() const noexcept { return versions_; }

 private:
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<Result<void>> stream_once(bool& delivered);
  Result<h2::Headers> call_metadata() const;

  boost::asio::any_io_executor ex_;
  AdsOptions options_;
  state::SnapshotBuilder& builder_;
  OnChange on_change_;
  OnTypeReady on_type_ready_;
  std::map<std::string, Versions, std::less<>> versions_;
  std::map<std::string, bool, std::less<>> type_ready_;
  AdsStats stats_;
  boost::asio::steady_timer backoff_timer_;
  std::shared_ptr<h2::Session> session_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool stopped_ = false;
};

}  // namespace ambient::xds
