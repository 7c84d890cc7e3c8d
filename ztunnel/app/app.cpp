#include "ztunnel/app/app.h"

#include <fmt/chrono.h>
#include <spdlog/spdlog.h>

#include <future>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/admin/logging_handler.h"
#include "common/base/json.h"
#include "common/state/config_dump.h"
#include "common/state/local_config.h"
#include "common/control_plane/settings.h"
#include "common/xds/ads_client.h"
#include "common/telemetry/access_log.h"
#include "common/telemetry/process_metrics.h"
#include "common/net/netns.h"
#include "common/tls/pki.h"

namespace ambient::ztunnel {

namespace asio = boost::asio;

namespace {

std::string iso8601(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(t));
}

}  // namespace

App::App(Config config) : config_(std::move(config)) {
  if (config_.max_connections == 0) config_.max_connections = net::ConnectionLimit::half_open_file_limit();
  counters_.connections.set_max(config_.max_connections);
}

App::~App() {
  for (auto& w : workers_) {
    w->io.stop();
    if (w->thread.joinable()) w->thread.join();
  }
}

void App::publish(std::shared_ptr<const state::Snapshot> snapshot) {
  snapshot_ = snapshot;
  for (auto& w : workers_)
    on_worker(*w, [w = w.get(), snapshot] {
      w->snapshot = snapshot;
      w->for_each_proxy([&](Proxy& p) { p.set_snapshot(snapshot); });
    });
}

void App::publish(std::shared_ptr<const identity::CertBundle> certs) {
  if (identity_task_ && certs->find(local_identity_) != nullptr) {
    readiness_.mark_ready(*identity_task_);
    identity_task_.reset();
  }
  for (auto& w : workers_)
    on_worker(*w, [w = w.get(), certs] {
      w->certs = certs;
      w->for_each_proxy([&](Proxy& p) { p.set_certs(certs); });
    });
}

Result<void> App::start_xds(admin::Readiness::Token state_task) {
  // Node "ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local" (reference ztunnel.md 4.4); workloads and policies.
  auto opts = control_plane::ads_options(config_.control_plane, "ztunnel",
                                         {std::string(xds::kAddressType), std::string(xds::kAuthorizationType)});
  if (!opts) return std::move(opts).error();
  auto pending = std::make_shared<std::size_t>(opts->type_urls.size());
  ads_ = std::make_unique<xds::AdsClient>(
      control_.get_executor(), std::move(*opts), builder_,
      [this] {
        publish(builder_.build());
        update_identities();
      },
      [this, pending, state_task](std::string_view type_url) {
        spdlog::info("xds: first {} response applied", type_url);
        if (*pending > 0 && --*pending == 0) {
          spdlog::info("state: {} workloads, {} services, {} policies from xDS", builder_.workload_count(),
                       builder_.service_count(), builder_.policy_count());
          readiness_.mark_ready(state_task);
        }
      });
  spdlog::info("state: from xDS at {} (waiting for the first push of every type before ready)", config_.control_plane.xds_address);
  return ok();
}

Result<void> App::start() {
  telemetry::set_access_log_format(config_.log_json ? telemetry::LogFormat::Json : telemetry::LogFormat::Plain);
  telemetry::register_process_metrics(registry_);
  telemetry::register_build_info(registry_, "ztunnel", "0.1.0");
  tcp_metrics_ = std::make_unique<telemetry::IstioTcpMetrics>(registry_);
  auto state_task = readiness_.register_task("state manager");
  auto proxy_task = readiness_.register_task("proxy");
  // Trims the heap after a fall in tunnels in flight (net/heap_trimmer.h).
  trimmer_ = net::HeapTrimmer::start(control_.get_executor(), [this] { return counters_.live.load(); }, {});

  const bool shared = config_.mode == ProxyMode::Shared;
  if (shared) AMBIENT_TRY(check_inpod_capabilities());
  // State: the local config file, or istiod's Delta ADS (exclusive; load_config refuses both).
  std::string identity;
  if (!config_.control_plane.xds_address.empty()) {
    AMBIENT_TRY(start_xds(state_task));
    // The local workload's identity comes from PROXY_WORKLOAD_INFO: with xDS the workload may arrive later.
    if (!shared)
      identity = fmt::format("spiffe://{}/ns/{}/sa/{}", config_.trust_domain, config_.workload.ns,
                             config_.workload.service_account);
  } else {
    if (config_.local_config_path.empty())
      return errorf(ErrorKind::InvalidArgument,
                    "no state source: set LOCAL_XDS_PATH (or --local-config) to a local config file, or XDS_ADDRESS to istiod");
    auto local = state::load_local_config(config_.local_config_path);
    if (!local) return std::move(local).error();
    AMBIENT_TRY(state::apply_local_config(*local, builder_));
    snapshot_ = builder_.build();
    spdlog::info("state: loaded {} workloads, {} services, {} policies from {}", snapshot_->workloads().size(),
                 snapshot_->services().size(), snapshot_->policies().size(), config_.local_config_path);

  }
  if (config_.control_plane.xds_address.empty() && !shared) {
    // The local workload (dedicated mode) must be in the state: its identity is what we serve and present.
    const state::Workload* local_workload = nullptr;
    for (const auto& [uid, w] : snapshot_->workloads())
      if (w->namespace_() == config_.workload.ns && w->name() == config_.workload.name) local_workload = w.get();
    if (local_workload == nullptr)
      return errorf(ErrorKind::NotFound, "PROXY_WORKLOAD_INFO {}/{}/{}: no workload named {} in namespace {} in {}",
                    config_.workload.ns, config_.workload.name, config_.workload.service_account, config_.workload.name,
                    config_.workload.ns, config_.local_config_path);
    identity = state::workload_identity(*local_workload);
    if (state::workload_service_account(*local_workload) != config_.workload.service_account)
      return errorf(ErrorKind::InvalidArgument, "PROXY_WORKLOAD_INFO says service account {}, but {} in {} has {}",
                    config_.workload.service_account, config_.workload.name, config_.local_config_path,
                    state::workload_service_account(*local_workload));
  }

  // Identity: istiod's CA (CA_ADDRESS; in shared mode ztunnel asks for other workloads' identities), or the built-in CA.
  auto source = control_plane::make_certificate_source(control_.get_executor(), config_.control_plane, config_.trust_domain,
                                                       config_.cacerts_dir, shared);
  if (!source) return std::move(source).error();

  // Workers (constructed and bound here; their threads start below). Dedicated mode: one proxy per worker in
  // our own netns. Shared mode: none yet; each enrolled pod gets one per worker (start_pod).
  auto sockets = std::make_shared<const DefaultSocketFactory>(config_.packet_mark);
  for (unsigned i = 0; i < config_.worker_threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->shard = &registry_.add_shard(fmt::format("worker-{}", i));
    w->snapshot = snapshot_;
    w->certs = std::make_shared<identity::CertBundle>();
    if (shared) {
      workers_.push_back(std::move(w));
      continue;
    }
    w->proxy = std::make_shared<Proxy>(w->io, config_, ProxyScope{config_.workload, "", ""}, sockets, *tcp_metrics_,
                                       *w->shard, counters_);
    w->proxy->set_snapshot(snapshot_);
    AMBIENT_TRY(w->proxy->start());
    if (i == 0) {
      // Port 0 (tests) picks a port once: every other worker binds the same ports (SO_REUSEPORT).
      data_plane_ = w->proxy->bound();
      config_.outbound_port = w->proxy->outbound_port();
      config_.inbound_port = w->proxy->inbound_port();
      config_.inbound_plaintext_port = w->proxy->inbound_plaintext_port();
      if (config_.socks5_enabled) config_.socks5_port = w->proxy->socks5_port();
    }
    workers_.push_back(std::move(w));
  }
  // Readiness waits for the local workload's first certificate (immediate with the built-in CA; with
  // istiod's CA it arrives asynchronously and start() does not block on it).
  local_identity_ = identity;
  if (!shared) identity_task_ = readiness_.register_task("workload certificate");
  identity::IdentityOptions identity_options;
  auto& control_shard = registry_.add_shard("control");
  identity_options.fetches = control_shard.counter(
      registry_.counter("ztunnel_certificate_fetches", "Workload certificate fetches started (issue or renewal)"));
  identity_options.fetch_failures = control_shard.counter(
      registry_.counter("ztunnel_certificate_fetch_failures", "Workload certificate fetches that failed"));
  identities_ = std::make_unique<identity::IdentityManager>(control_.get_executor(), std::move(*source), config_.secret_ttl,
                                                  [this](std::shared_ptr<const identity::CertBundle> b) { publish(std::move(b)); },
                                                  std::move(identity_options));
  if (!shared) AMBIENT_TRY(identities_->set_identities({identity}));
  if (ads_) ads_->start();  // readiness: released once every type has been answered (start_xds)
  else readiness_.mark_ready(state_task);

  // Control-plane-side servers.
  auto servers = admin::ControlServers::start(control_.get_executor(), {config_.admin, config_.metrics, config_.readiness},
                                              registry_, readiness_, [this] { return config_dump(); }, [this] { shutdown(); });
  if (!servers) return std::move(servers).error();
  servers_ = std::move(*servers);
  admin_ep_ = servers_->bound().admin;
  metrics_ep_ = servers_->bound().metrics;
  readiness_ep_ = servers_->bound().readiness;

  for (auto& w : workers_) {
    w->thread = std::thread([io = &w->io] {
      auto guard = asio::make_work_guard(*io);
      io->run();
    });
  }
  readiness_.mark_ready(proxy_task);
  if (shared) {
    // Ready once the node agent's snapshot is applied with no pod pending; not ready while that is not so.
    inpod_task_ = readiness_.register_task("workload proxy manager");
    inpod_ = std::make_unique<WorkloadProxyManager>(
        control_.get_executor(), config_.trust_domain, static_cast<PodProxyHost&>(*this), [this](bool ready, const std::string& why_not) {
          // One pending readiness task while not ready, named with the reason (it changes as pods come and go).
          auto next = ready ? std::optional<admin::Readiness::Token>()
                            : std::optional(readiness_.register_task("workload proxy manager: " + why_not));
          if (inpod_task_) readiness_.mark_ready(*inpod_task_);
          inpod_task_ = next;
        });
    ZdsClientOptions zo;
    zo.path = config_.inpod_uds;
    zds_ = std::make_unique<ZdsClient>(control_.get_executor(), std::move(zo), *inpod_);
    zds_->start();
  }
  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (!ec) {
      spdlog::info("received signal {}, starting drain", sig);
      shutdown();
    }
  });
  std::string listeners;
  for (const auto& ep : data_plane_) listeners += fmt::format(" {}:{}", ep.address().to_string(), ep.port());
  if (shared) listeners = fmt::format(" each enrolled pod's netns (ports {}, {}, {}; pods from {})", config_.outbound_port,
                                      config_.inbound_plaintext_port, config_.inbound_port, config_.inpod_uds);
  spdlog::info("ztunnel {} ({}/{}) ready: {} workers, data plane on{}, admin {}:{}, metrics {}:{}, readiness {}:{}",
               shared ? "in-pod" : identity, config_.workload.ns, config_.workload.name, workers_.size(), listeners,
               admin_ep_.address().to_string(), admin_ep_.port(), metrics_ep_.address().to_string(), metrics_ep_.port(),
               readiness_ep_.address().to_string(), readiness_ep_.port());
  return ok();
}

void App::update_identities() {
  // The dedicated workload's identity, every enrolled pod's, and (NODE_NAME) every HBONE workload's on this node,
  // as ztunnel prefetches them; an identity nobody needs any more is forgotten.
  if (!identities_) return;
  std::set<std::string> wanted;
  if (!local_identity_.empty()) wanted.insert(local_identity_);
  if (inpod_) wanted.merge(inpod_->identities());
  if (!config_.control_plane.node_name.empty())
    for (const auto& [uid, w] : snapshot_->workloads())
      if (w->node() == config_.control_plane.node_name && (w->tunnel_protocol() == istio::workload::HBONE || w->native_tunnel()))
        wanted.insert(state::workload_identity(*w));
  if (wanted == prefetched_) return;
  prefetched_ = wanted;
  if (auto r = identities_->set_identities(wanted); !r) spdlog::warn("identity: {}", r.error());
}

Result<void> App::check_inpod_capabilities() {
  // In-pod mode creates sockets inside pod netns (setns: CAP_SYS_ADMIN) and marks them (SO_MARK: CAP_NET_ADMIN).
  // Fail at start-up rather than on the first pod (reference ztunnel.md 1).
  auto own = net::open_netns("/proc/thread-self/ns/net");
  if (!own) return errorf(ErrorKind::Unsupported, "in-pod mode: cannot open our own network namespace: {}", own.error().context);
  auto probe = net::in_netns(own->get(), [] { return 0; });
  if (!probe)
    return errorf(ErrorKind::Unsupported, "in-pod mode needs setns(CLONE_NEWNET) (CAP_SYS_ADMIN): {}", probe.error().context);
  DefaultSocketFactory marked(config_.packet_mark);
  auto s = marked.socket(control_.get_executor(), asio::ip::tcp::v4());
  if (!s)
    return errorf(ErrorKind::Unsupported, "in-pod mode needs SO_MARK {} (CAP_NET_ADMIN, CAP_NET_RAW): {}", config_.packet_mark,
                  s.error().context);
  return ok();
}

asio::awaitable<Result<void>> App::start_pod(PodProxySpec spec) {
  // One proxy per worker, created and bound on that worker's thread (setns is per thread).
  for (auto& w : workers_) {
    auto r = co_await asio::co_spawn(w->io, start_pod_on(w.get(), spec), asio::use_awaitable);
    if (!r) {
      co_await stop_pod(spec.uid);  // nothing of the pod is left running
      co_return r;
    }
  }
  co_return ok();
}

asio::awaitable<Result<void>> App::start_pod_on(Worker* worker, PodProxySpec spec) {
  auto sockets = std::make_shared<const NetnsSocketFactory>(spec.netns, config_.packet_mark);
  ProxyScope scope{WorkloadInfo{spec.info.ns, spec.info.name, spec.info.service_account}, spec.identity, "pod " + spec.uid};
  auto p = std::make_shared<Proxy>(worker->io, config_, std::move(scope), sockets, *tcp_metrics_, *worker->shard, counters_);
  p->set_snapshot(worker->snapshot);
  p->set_certs(worker->certs);
  if (auto r = p->start(); !r) {
    p->terminate();
    co_return r;
  }
  if (auto old = worker->pods.find(spec.uid); old != worker->pods.end()) old->second->terminate();
  worker->pods[spec.uid] = std::move(p);
  co_return ok();
}

asio::awaitable<void> App::stop_pod(std::string uid) {
  for (auto& w : workers_) co_await asio::co_spawn(w->io, stop_pod_on(w.get(), uid), asio::use_awaitable);
}

asio::awaitable<void> App::stop_pod_on(Worker* worker, std::string uid) {
  auto it = worker->pods.find(uid);
  if (it == worker->pods.end()) co_return;
  it->second->terminate();  // it frees itself once its connections' coroutines have ended
  worker->pods.erase(it);
}

std::string App::inpod_dump() const {
  if (!inpod_) return "null";
  std::string pods = "[";
  bool first = true;
  for (const auto& [uid, p] : inpod_->pods()) {
    pods += fmt::format("{}{{\"uid\": {}, \"name\": {}, \"namespace\": {}, \"serviceAccount\": {}, \"identity\": {}, "
                        "\"state\": \"{}\", \"netnsInode\": {}, \"lastError\": {}}}",
                        first ? "" : ", ", json::quote(uid), json::quote(p.spec.info.name), json::quote(p.spec.info.ns),
                        json::quote(p.spec.info.service_account), json::quote(p.spec.identity), p.running ? "Running" : "Pending",
                        p.netns_id.ino, json::quote(p.last_error));
    first = false;
  }
  pods += "]";
  const auto& st = zds_->stats();
  return fmt::format("{{\"uds\": {}, \"connected\": {}, \"snapshotDone\": {}, \"connects\": {}, \"requests\": {}, "
                     "\"acks\": {}, \"nacks\": {}, \"lastError\": {}, \"ready\": {}, \"pods\": {}}}",
                     json::quote(config_.inpod_uds), st.connected, st.snapshot_done, st.connects, st.requests, st.acks,
                     st.nacks, json::quote(st.last_error), inpod_->ready(), pods);
}

std::string App::config_dump() const {
  std::string state = state::config_dump_json(*snapshot_, true);
  std::string certs = "[";
  bool first = true;
  for (const auto& [id, c] : identities_->current()->certs) {
    auto chain = c->key.chain_pem();
    auto roots = c->key.roots_pem();
    certs += fmt::format("{}\n    {{\"identity\": {}, \"state\": \"Available\", \"validFrom\": \"{}\", "
                         "\"expirationTime\": \"{}\", \"serialNumber\": \"{}\", \"certChain\": {}, \"rootCerts\": {}}}",
                         first ? "" : ",", json::quote(id), iso8601(c->not_before), iso8601(c->not_after),
                         tls::serial_hex(c->key.leaf()), json::quote(chain ? *chain : ""), json::quote(roots ? *roots : ""));
    first = false;
  }
  certs += "\n  ]";
  // The state dump is one JSON object: splice the certificates and the effective config in before its end.
  auto end = state.rfind('}');
  std::string extra = fmt::format(
      ",\n  \"certificates\": {},\n  \"config\": {{\"proxyMode\": \"{}\", \"workload\": {}, \"localXdsPath\": {}, "
      "\"trustDomain\": {}, \"workerThreads\": {}, \"poolMaxStreamsPerConnection\": {}, \"network\": {}, \"clusterId\": {}}},\n"
      "  \"xds\": {},\n"
      "  \"inpod\": {},\n"
      "  \"version\": \"{}\"\n",
      certs, config_.mode == ProxyMode::Shared ? "shared" : "dedicated", json::quote(config_.workload.ns + "/" + config_.workload.name + "/" + config_.workload.service_account),
      json::quote(config_.local_config_path), json::quote(config_.trust_domain), config_.worker_threads,
      config_.pool_max_streams_per_connection, json::quote(config_.network), json::quote(config_.control_plane.cluster_id),
      control_plane::xds_status_json(ads_.get(), config_.control_plane),
      inpod_dump(), snapshot_->version());
  auto body_end = state.find_last_not_of(" \n", end - 1);
  return state.substr(0, body_end + 1) + extra + "}\n";
}

void App::shutdown() {
  asio::post(control_, [this] { begin_drain(); });
}

hbone::PoolStats App::pool_stats() {
  hbone::PoolStats total;
  for (auto& w : workers_) {
    std::promise<hbone::PoolStats> p;
    auto f = p.get_future();
    asio::post(w->io, [&p, worker = w.get()] {
      hbone::PoolStats sum;
      worker->for_each_proxy([&](Proxy& proxy) { sum += proxy.pool_stats(); });
      p.set_value(sum);
    });
    total += f.get();
  }
  return total;
}

void App::begin_drain() {
  if (draining_) return;
  draining_ = true;
  if (ads_) ads_->stop();
  if (zds_) zds_->stop();
  if (inpod_) inpod_->stop();
  for (auto& w : workers_)
    asio::post(w->io, [worker = w.get()] { worker->for_each_proxy([](Proxy& p) { p.stop_accepting(); }); });
  admin::Drain::Hooks hooks;
  hooks.live = [this] { return counters_.live.load(std::memory_order_relaxed); };
  hooks.close = [this](std::uint64_t live) {
    spdlog::info("drain deadline passed with {} live connections: closing them", live);
    for (auto& w : workers_)
      asio::post(w->io, [worker = w.get()] { worker->for_each_proxy([](Proxy& p) { p.close_all(); }); });
  };
  hooks.done = [this] {
    for (auto& w : workers_) w->io.stop();
    if (servers_) servers_->stop();
    signals_.cancel();
    control_.stop();
  };
  drain_ = std::make_unique<admin::Drain>(control_.get_executor(), config_.termination_deadline, std::move(hooks));
  drain_->start();
}

int App::run() {
  control_.run();
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  spdlog::info("ztunnel stopped");
  return 0;
}

}  // namespace ambient::ztunnel
