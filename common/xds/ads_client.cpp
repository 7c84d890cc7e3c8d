#include "common/xds/ads_client.h"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/grpc/channel.h"
#include "common/grpc/client.h"
#include "common/grpc/target.h"

namespace ambient::xds {

namespace asio = boost::asio;
using namespace std::chrono_literals;

Result<AdsOptions> parse_xds_address(std::string_view address) {
  auto target = grpc::parse_target(address, "XDS_ADDRESS");
  if (!target) return std::move(target).error();
  AdsOptions o;
  o.host = std::move(target->host);
  o.port = target->port;
  return o;
}

AdsClient::AdsClient(asio::any_io_executor ex, AdsOptions options, state::SnapshotBuilder& builder, OnChange on_change,
                     OnTypeReady on_type_ready)
    : ex_(ex),
      options_(std::move(options)),
      builder_(builder),
      on_change_(std::move(on_change)),
      on_type_ready_(std::move(on_type_ready)),
      backoff_timer_(ex) {
  for (const auto& t : options_.type_urls) versions_[t];
}

AdsClient::~AdsClient() {
  *alive_ = false;
  stop();
}

void AdsClient::start() {
  asio::co_spawn(ex_, run(), asio::detached);
}

void AdsClient::stop() {
  stopped_ = true;
  backoff_timer_.cancel();
  if (session_) session_->terminate(0);
}

Result<h2::Headers> AdsClient::call_metadata() const {
  return grpc::control_plane_metadata(options_.token_path, options_.cluster_id, options_.headers);
}

asio::awaitable<void> AdsClient::run() {
  auto alive = alive_;
  auto backoff = options_.backoff_initial;
  while (!stopped_) {
    bool delivered = false;
    Result<void> r = co_await stream_once(delivered);
    if (!*alive) co_return;
    if (session_) {
      session_->shutdown();
      session_.reset();
    }
    stats_.connected = false;
    if (stopped_) break;
    if (delivered) backoff = options_.backoff_initial;
    stats_.last_error = r ? std::string("stream ended by the server") : r.error().context;
    spdlog::warn("xds: stream to {}:{} ended: {}; reconnecting in {} ms", options_.host, options_.port,
                 stats_.last_error, backoff.count());
    backoff_timer_.expires_after(backoff);
    co_await backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!*alive) co_return;
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

asio::awaitable<Result<void>> AdsClient::stream_once(bool& delivered) {
  auto alive = alive_;
  if (!options_.tls) co_return make_error(ErrorKind::InvalidArgument, "xds: no TLS roots configured (XDS_ROOT_CA)");
  auto md = call_metadata();
  if (!md) co_return std::move(md).error();

  asio::ip::tcp::resolver resolver(ex_);
  auto [ec, results] = co_await resolver.async_resolve(options_.host, std::to_string(options_.port),
                                                       asio::as_tuple(asio::use_awaitable));
  if (!*alive) co_return make_error(ErrorKind::Cancelled, "xds client stopped");
  if (ec || results.empty())
    co_return errorf(ErrorKind::Io, "resolve {}: {}", options_.host, ec ? ec.message() : "no addresses");
  const auto endpoint = results.begin()->endpoint();

  grpc::DialOptions dial;
  dial.connect_timeout = options_.connect_timeout;
  dial.settings.ping_interval = 30s;
  dial.settings.ping_timeout = 10s;
  const std::string server_name = options_.server_name.empty() ? options_.host : options_.server_name;
  auto session = co_await grpc::dial(endpoint, options_.tls.get(), server_name, dial);
  if (!*alive) co_return make_error(ErrorKind::Cancelled, "xds client stopped");
  if (!session) co_return std::move(session).error();
  session_ = *session;
  if (stopped_) co_return make_error(ErrorKind::Cancelled, "xds client stopped");

  grpc::CallOptions call_options;
  call_options.authority = fmt::format("{}:{}", server_name, options_.port);
  call_options.metadata = std::move(*md);
  call_options.max_recv_message_size = options_.max_message;
  auto call = co_await grpc::start_call(session_, std::string(kDeltaAdsPath), std::move(call_options));
  if (!*alive) co_return make_error(ErrorKind::Cancelled, "xds client stopped");
  if (!call) co_return std::move(call).error();
  ++stats_.connects;
  stats_.connected = true;
  spdlog::info("xds: stream open to {}:{} ({})", options_.host, options_.port, session_->peer());

  bool first = true;
  for (const auto& type : options_.type_urls) {
    DeltaDiscoveryRequest req;
    if (first) *req.mutable_node() = options_.node;
    first = false;
    req.set_type_url(type);
    for (const auto& [name, version] : versions_[type]) (*req.mutable_initial_resource_versions())[name] = version;
    auto w = co_await grpc::send_message(*call, req);
    if (!*alive) co_return make_error(ErrorKind::Cancelled, "xds client stopped");
    if (!w) co_return std::move(w).error();
  }

  for (;;) {
    auto m = co_await grpc::recv_message<DeltaDiscoveryResponse>(*call);
    if (!*alive) co_return make_error(ErrorKind::Cancelled, "xds client stopped");
    if (!m) co_return std::move(m).error();
    if (!*m) co_return ok();
    const DeltaDiscoveryResponse& resp = **m;
    const auto apply_start = std::chrono::steady_clock::now();
    delivered = true;
    ++stats_.responses;
    Versions scratch;  // a type we did not subscribe to is NACKed and recorded nowhere
    auto it = versions_.find(resp.type_url());
    DeltaOutcome out = apply_delta(resp, builder_, it != versions_.end() ? it->second : scratch);
    stats_.applied += out.applied;
    stats_.removed += out.removed;
    if (out.nack()) {
      ++stats_.nacks;
      stats_.last_nack = out.reply.error_detail().message();
      spdlog::warn("xds: NACK {} nonce {}: {}", resp.type_url(), resp.nonce(), stats_.last_nack);
    } else {
      ++stats_.acks;
    }
    spdlog::debug("xds: {} nonce {}: {} applied, {} removed, {} rejected", resp.type_url(), resp.nonce(), out.applied,
                  out.removed, out.rejected.size());
    // Applied (and published) before the ACK leaves: an ACKed version is one the workers have.
    if (out.changed() && on_change_) on_change_();
    stats_.apply_us_last = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - apply_start).count());
    stats_.apply_us_max = std::max(stats_.apply_us_max, stats_.apply_us_last);
    auto w = co_await grpc::send_message(*call, out.reply);
    if (!*alive) co_return make_error(ErrorKind::Cancelled, "xds client stopped");
    if (!w) co_return std::move(w).error();
    if (it != versions_.end() && !type_ready_[resp.type_url()]) {
      type_ready_[resp.type_url()] = true;
      if (on_type_ready_) on_type_ready_(resp.type_url());
    }
  }
}

}  // namespace ambient::xds
