#include <algorithm>

#include "test/fake_istiod/ads_service.h"

#include <chrono>

#include <spdlog/spdlog.h>

#include "proto/workload.pb.h"

namespace fake_istiod {

namespace {

using Reactor = grpc::ServerBidiReactor<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

constexpr std::string_view kBadWorkload = "invalid/bad-workload";

}  // namespace

// One stream's shared part: the reactor's write queue (any thread, under mu) and the subscription state
// (dispatcher thread only). Outlives the reactor: `reactor` is null once grpc++ is done with the call.
//
// Writes: at most one StartWrite in flight (grpc++'s rule); later responses wait in `outbox`. Finish:
// once, never with a write in flight (deferred to OnWriteDone), after which nothing more is written.
// A recursive mutex, because grpc++ may run a reaction inline from the Start* call that triggered it.
struct StreamCore {
  std::uint64_t id = 0;
  std::string peer;

  std::recursive_mutex mu;
  Reactor* reactor = nullptr;
  std::deque<DeltaDiscoveryResponse> outbox;  // front() is being written while `writing`
  bool writing = false;
  bool finishing = false;                      // Finish called or pending: nothing more is queued
  std::optional<grpc::Status> pending_finish;  // Finish waiting for the write in flight

  // Dispatcher thread only: type_url -> (name -> version) the client holds, as far as we sent it.
  std::map<std::string, std::map<std::string, std::string>, std::less<>> subscribed;

  // false when the stream is finishing or gone.
  bool enqueue(DeltaDiscoveryResponse r) {
    std::lock_guard lock(mu);
    if (!reactor || finishing) return false;
    outbox.push_back(std::move(r));
    if (!writing) {
      writing = true;
      reactor->StartWrite(&outbox.front());
    }
    return true;
  }

  void finish(grpc::Status st) {
    std::lock_guard lock(mu);
    if (!reactor || finishing) return;
    finishing = true;
    if (writing) {
      while (outbox.size() > 1) outbox.pop_back();  // keep the one in flight
      pending_finish = std::move(st);
    } else {
      outbox.clear();
      reactor->Finish(std::move(st));
    }
  }

  void write_done(bool ok) {
    std::lock_guard lock(mu);
    outbox.pop_front();
    writing = false;
    if (pending_finish) {
      auto st = std::move(*pending_finish);
      pending_finish.reset();
      reactor->Finish(std::move(st));
      return;
    }
    if (finishing) return;
    if (!ok) {  // the call is broken (client gone): end it
      finishing = true;
      outbox.clear();
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    if (!outbox.empty()) {
      writing = true;
      reactor->StartWrite(&outbox.front());
    }
  }
};

namespace {

class AdsReactor final : public Reactor {
 public:
  AdsReactor(AdsService& service, std::shared_ptr<StreamCore> core) : service_(service), core_(std::move(core)) {
    core_->reactor = this;
    StartRead(&request_);
  }
  // A stream refused before it starts (no core).
  AdsReactor(AdsService& service, grpc::Status refused) : service_(service) { Finish(std::move(refused)); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // client half-closed, cancelled, or the stream is finishing: end our side too
      core_->finish(grpc::Status::OK);
      return;
    }
    service_.on_request(core_, std::move(request_));
    request_.Clear();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override { core_->write_done(ok); }

  void OnDone() override {
    if (core_) {
      {
        std::lock_guard lock(core_->mu);
        core_->reactor = nullptr;
      }
      service_.on_stream_done(core_->id);
    }
    delete this;
  }

 private:
  AdsService& service_;
  std::shared_ptr<StreamCore> core_;
  DeltaDiscoveryRequest request_;
};

// The Address the invalid-resource fault adds: a 3-byte address, which validation must refuse.
Resource bad_workload() {
  istio::workload::Address a;
  auto* w = a.mutable_workload();
  w->set_uid(std::string(kBadWorkload));
  w->set_name("bad-workload");
  w->set_namespace_("invalid");
  w->add_addresses(std::string("\x0a\x00\x01", 3));
  std::string bytes;
  a.SerializeToString(&bytes);
  return Resource{resource_version(bytes), std::move(bytes)};
}

}  // namespace

AdsService::AdsService(std::optional<std::string> token, Faults& faults, Stats& stats,
                       std::shared_ptr<const Resources> initial)
    : token_(std::move(token)), faults_(faults), stats_(stats), resources_(std::move(initial)) {
  dispatcher_ = std::thread([this] { run(); });
}

AdsService::~AdsService() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  dispatcher_.join();
}

grpc::ServerBidiReactor<DeltaDiscoveryRequest, DeltaDiscoveryResponse>* AdsService::DeltaAggregatedResources(
    grpc::CallbackServerContext* ctx) {
  if (auto refused = check_token(ctx->client_metadata(), token_)) {
    ++stats_.unauthenticated;
    spdlog::warn("ADS stream from {} refused: {}", ctx->peer(), refused->error_message());
    return new AdsReactor(*this, std::move(*refused));
  }
  auto core = std::make_shared<StreamCore>();
  core->peer = ctx->peer();
  {
    std::lock_guard lock(mu_);
    core->id = next_stream_id_++;
    streams_.emplace(core->id, core);
  }
  ++stats_.streams_connected;
  ++stats_.streams_total;
  spdlog::info("ADS stream {} from {} (clusterid={})", core->id, core->peer,
               metadata_value(ctx->client_metadata(), "clusterid"));
  return new AdsReactor(*this, std::move(core));
}

void AdsService::on_request(std::shared_ptr<StreamCore> core, DeltaDiscoveryRequest request) {
  post(RequestEvent{std::move(core), std::move(request)});
}

void AdsService::on_stream_done(std::uint64_t id) {
  std::lock_guard lock(mu_);
  if (streams_.erase(id) != 0) {
    --stats_.streams_connected;
    spdlog::info("ADS stream {} ended", id);
  }
}

void AdsService::publish(std::shared_ptr<const Resources> resources) { post(StateEvent{std::move(resources)}); }

void AdsService::faults_changed() { post(StateEvent{nullptr}); }

void AdsService::drop_streams() {
  std::vector<std::shared_ptr<StreamCore>> open;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, core] : streams_) open.push_back(core);
  }
  spdlog::warn("drop-streams: ending {} ADS stream(s) with UNAVAILABLE", open.size());
  for (const auto& core : open)
    core->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream dropped by fault injection (drop-streams)"));
}

void AdsService::post(Event e) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_one();
}

void AdsService::run() {
  for (;;) {
    Event e;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !events_.empty(); });
      if (stopping_) return;
      e = std::move(events_.front());
      events_.pop_front();
    }
    if (auto* r = std::get_if<RequestEvent>(&e)) {
      handle(*r);
    } else {
      auto& s = std::get<StateEvent>(e);
      if (s.resources) resources_ = std::move(s.resources);
      ++state_version_;
      push_all();
    }
  }
}

ResourceMap AdsService::served(std::string_view type_url) const {
  const ResourceMap* base = resources_->of_type(type_url);
  ResourceMap out = base ? *base : ResourceMap{};
  if (type_url == kAddressType && faults_.invalid_resource) out.insert_or_assign(std::string(kBadWorkload), bad_workload());
  return out;
}

void AdsService::handle(RequestEvent& e) {
  const auto& req = e.request;
  const std::string& type = req.type_url();
  if (req.has_node()) {
    std::vector<std::string> fields;
    for (const auto& [k, v] : req.node().metadata().fields()) fields.push_back(k + "=" + v.string_value());
    std::sort(fields.begin(), fields.end());
    std::string md;
    for (const auto& f : fields) md += (md.empty() ? "" : ",") + f;
    stats_.set_last_node(req.node().id() + " " + md);
  }
  if (type != kAddressType && type != kAuthorizationType) {
    spdlog::warn("ADS stream {}: type {} not served; request ignored", e.core->id, type);
    return;
  }
  if (!req.response_nonce().empty()) {
    if (auto it = sent_at_.find(req.response_nonce()); it != sent_at_.end()) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - it->second);
      stats_.record_answer_latency(static_cast<std::uint64_t>(us.count()));
      sent_at_.erase(it);
    }
    if (req.has_error_detail() && (req.error_detail().code() != 0 || !req.error_detail().message().empty())) {
      ++stats_.nacks;
      stats_.set_last_nack(req.error_detail().message());
      spdlog::warn("NACK type={} nonce={}: {}", type, req.response_nonce(), req.error_detail().message());
    } else {
      ++stats_.acks;
      spdlog::debug("ACK type={} nonce={}", type, req.response_nonce());
    }
    return;
  }
  if (e.core->subscribed.contains(type)) {
    spdlog::info("ADS stream {}: repeated request for {} (subscribe {} names, unsubscribe {}) ignored", e.core->id,
                 type, req.resource_names_subscribe_size(), req.resource_names_unsubscribe_size());
    return;
  }
  const std::map<std::string, std::string> client_has(req.initial_resource_versions().begin(),
                                                      req.initial_resource_versions().end());
  spdlog::info("ADS stream {}: subscribe {} (client holds {})", e.core->id, type, client_has.size());
  e.core->subscribed[type];  // known versions filled by send()
  send(*e.core, type, served(type), client_has, true);
}

void AdsService::push_all() {
  std::vector<std::shared_ptr<StreamCore>> open;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, core] : streams_) open.push_back(core);
  }
  for (std::string_view type : {kAddressType, kAuthorizationType}) {
    const ResourceMap now = served(type);
    for (const auto& core : open) {
      auto it = core->subscribed.find(type);
      if (it == core->subscribed.end()) continue;
      const auto client_has = it->second;
      send(*core, type, now, client_has, false);
    }
  }
}

void AdsService::send(StreamCore& core, std::string_view type_url, const ResourceMap& now,
                      const std::map<std::string, std::string>& client_has, bool always) {
  DeltaDiscoveryResponse resp;
  for (const auto& [name, r] : now) {
    auto it = client_has.find(name);
    if (it != client_has.end() && it->second == r.version) continue;
    auto* res = resp.add_resources();
    res->set_name(name);
    res->set_version(r.version);
    res->mutable_resource()->set_type_url(std::string(type_url));
    res->mutable_resource()->set_value(r.bytes);
  }
  for (const auto& [name, version] : client_has)
    if (!now.contains(name)) resp.add_removed_resources(name);
  auto& known = core.subscribed[std::string(type_url)];
  known.clear();
  for (const auto& [name, r] : now) known.emplace(name, r.version);
  if (!always && resp.resources_size() == 0 && resp.removed_resources_size() == 0) return;

  resp.set_type_url(std::string(type_url));
  resp.set_nonce(std::to_string(next_nonce_++));
  resp.set_system_version_info(std::to_string(state_version_));
  if (const auto delay = faults_.push_delay_ms.load(); delay > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  const auto n_res = resp.resources_size();
  const auto n_removed = resp.removed_resources_size();
  const auto nonce = resp.nonce();
  const auto queued = std::chrono::steady_clock::now();
  if (core.enqueue(std::move(resp))) {
    if (sent_at_.size() < 10'000) sent_at_.emplace(nonce, queued);  // bounded: clients that never answer
    ++stats_.pushes_sent;
    spdlog::info("push stream={} type={} nonce={} resources={} removed={}", core.id, type_url, nonce, n_res,
                 n_removed);
  }
}

}  // namespace fake_istiod
