#include "waypoint/app/app.h"

#include <filesystem>
#include <system_error>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/base/json.h"
#include "common/control_plane/settings.h"
#include "common/state/config_dump.h"
#include "common/state/local_config.h"
#include "common/state/snapshot_builder.h"
#include "common/telemetry/process_metrics.h"
#include "common/tls/pki.h"
#include "waypoint/config/waypoint_config.h"

namespace ambient::waypoint {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

std::string iso8601(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(t));
}

std::string_view path_type(PathMatchType t) {
  switch (t) {
    case PathMatchType::Exact: return "Exact";
    case PathMatchType::PathPrefix: return "PathPrefix";
    case PathMatchType::RegularExpression: return "RegularExpression";
  }
  return "";
}

// Routes and policies as /config_dump shows them: what each matches and where it sends, by name.
std::string routes_json(const WaypointConfig& c) {
  std::string out = "[";
  for (std::size_t i = 0; i < c.routes.size(); ++i) {
    const auto& r = c.routes[i];
    std::string parents, rules;
    for (const auto& p : r.parents)
      parents += fmt::format("{}{{\"kind\": {}, \"namespace\": {}, \"name\": {}, \"port\": {}}}", parents.empty() ? "" : ", ",
                             json::quote(p.kind), json::quote(p.ns.empty() ? r.ns : p.ns), json::quote(p.name),
                             p.port ? std::to_string(*p.port) : "null");
    for (const auto& rule : r.rules) {
      std::string matches, backends, filters;
      for (const auto& m : rule.matches) {
        std::string conds;
        for (const auto& h : m.headers) conds += fmt::format(", \"header {}\": {}", h.name, json::quote(h.value));
        for (const auto& q : m.query_params) conds += fmt::format(", \"query {}\": {}", q.name, json::quote(q.value));
        if (m.method) conds += fmt::format(", \"method\": {}", json::quote(*m.method));
        const PathMatch path = m.path.value_or(PathMatch{});
        matches += fmt::format("{}{{\"path\": {{\"type\": \"{}\", \"value\": {}}}{}}}", matches.empty() ? "" : ", ",
                               path_type(path.type), json::quote(path.value), conds);
      }
      for (const auto& b : rule.backends)
        backends += fmt::format("{}{{\"name\": {}, \"namespace\": {}, \"port\": {}, \"weight\": {}}}", backends.empty() ? "" : ", ",
                                json::quote(b.name), json::quote(b.ns.empty() ? r.ns : b.ns), b.port, b.weight);
      auto add = [&](std::string_view name) { filters += fmt::format("{}\"{}\"", filters.empty() ? "" : ", ", name); };
      if (rule.filters.request_headers) add("RequestHeaderModifier");
      if (rule.filters.response_headers) add("ResponseHeaderModifier");
      if (rule.filters.redirect) add("RequestRedirect");
      if (rule.filters.rewrite) add("URLRewrite");
      if (!rule.filters.mirrors.empty()) add("RequestMirror");
      rules += fmt::format("{}{{\"matches\": [{}], \"backendRefs\": [{}], \"filters\": [{}], \"timeouts\": {{\"request\": {}, "
                           "\"backendRequest\": {}}}, \"retry\": {{\"attempts\": {}, \"codes\": [{}], \"backoffMs\": {}}}}}",
                           rules.empty() ? "" : ", ", matches, backends, filters,
                           rule.timeouts.request ? std::to_string(rule.timeouts.request->count()) + "" : "null",
                           rule.timeouts.backend_request ? std::to_string(rule.timeouts.backend_request->count()) : "null",
                           rule.retry.attempts, fmt::join(rule.retry.codes, ", "), rule.retry.backoff.count());
    }
    out += fmt::format("{}\n    {{\"kind\": \"{}\", \"namespace\": {}, \"name\": {}, \"parentRefs\": [{}], \"rules\": [{}]}}",
                       i == 0 ? "" : ",", r.grpc ? "GRPCRoute" : "HTTPRoute", json::quote(r.ns), json::quote(r.name), parents, rules);
  }
  return out + (c.routes.empty() ? "]" : "\n  ]");
}

std::string policies_json(const WaypointConfig& c) {
  std::string out = "[";
  for (std::size_t i = 0; i < c.policies.size(); ++i) {
    const auto& p = c.policies[i];
    std::string targets;
    for (const auto& t : p.targets)
      targets += fmt::format("{}{{\"kind\": {}, \"name\": {}}}", targets.empty() ? "" : ", ", json::quote(t.kind), json::quote(t.name));
    out += fmt::format("{}\n    {{\"namespace\": {}, \"name\": {}, \"action\": \"{}\", \"targetRefs\": [{}], \"rules\": {}}}",
                       i == 0 ? "" : ",", json::quote(p.policy.ns), json::quote(p.policy.name),
                       p.policy.action == L7Policy::Action::Deny ? "DENY" : "ALLOW", targets, p.policy.rules.size());
  }
  return out + (c.policies.empty() ? "]" : "\n  ]");
}

}  // namespace

App::App(AppConfig config) : config_(std::move(config)) {
  if (config_.max_connections == 0) config_.max_connections = net::ConnectionLimit::half_open_file_limit();
  counters_.connections.set_max(config_.max_connections);
}

App::~App() {
  for (auto& w : workers_) {
    w->io.stop();
    if (w->thread.joinable()) w->thread.join();
  }
}

App::FileStamps App::stamp_files() const {
  FileStamps out;
  auto stamp = [&](const fs::path& p) {
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    const auto mtime = fs::last_write_time(p, ec);
    out[p.string()] = {ec ? 0 : size, ec ? -1 : static_cast<std::int64_t>(mtime.time_since_epoch().count())};
  };
  if (!config_.local_config_path.empty()) stamp(config_.local_config_path);
  for (const auto& path : config_.route_paths) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      for (const auto& e : fs::directory_iterator(path, ec)) {
        const auto ext = e.path().extension();
        if (ext == ".yaml" || ext == ".yml") stamp(e.path());
      }
      out[path] = {0, 0};  // the directory itself: files added or removed change the key set
    } else {
      stamp(path);
    }
  }
  return out;
}

Result<std::shared_ptr<const L7State>> App::load_state() {
  std::shared_ptr<const state::Snapshot> snapshot = snapshot_;  // xDS: the latest push
  if (!ads_) {
    auto local = state::load_local_config(config_.local_config_path);
    if (!local) return std::move(local).error();
    state::SnapshotBuilder builder;
    AMBIENT_TRY(state::apply_local_config(*local, builder));
    snapshot = builder.build();
  }
  auto routes = config_.route_paths.empty() ? Result<WaypointConfig>(WaypointConfig{}) : load_waypoint_config(config_.route_paths);
  if (!routes) return std::move(routes).error();
  auto cfg = std::make_shared<const WaypointConfig>(std::move(*routes));
  auto st = L7State::build(snapshot, cfg, self());
  if (!st) return std::move(st).error();
  snapshot_ = std::move(snapshot);
  routes_ = std::move(cfg);
  return st;
}

Result<void> App::start_xds(admin::Readiness::Token config_task) {
  // Node "waypoint~<ip>~<pod>.<ns>~<ns>.svc.cluster.local", as istiod's waypoint pods (`pilot-agent proxy waypoint`)
  // send it. Address only: L4 authorization is the ztunnels', the L7 policies come from the route files.
  auto opts = control_plane::ads_options(config_.control_plane, "waypoint", {std::string(xds::kAddressType)});
  if (!opts) return std::move(opts).error();
  snapshot_ = state::Snapshot::empty();
  ads_ = std::make_unique<xds::AdsClient>(
      control_.get_executor(), std::move(*opts), builder_, [this] { on_xds_change(); },
      [this, config_task](std::string_view) {
        spdlog::info("config: first xDS push applied: {} workloads, {} services", builder_.workload_count(),
                     builder_.service_count());
        readiness_.mark_ready(config_task);
      });
  return ok();
}

void App::on_xds_change() {
  snapshot_ = builder_.build();
  auto st = L7State::build(snapshot_, routes_, self());
  if (!st) {
    // Only the routes can refuse a state (route table limits): the previous one serves until they change.
    ++reload_failures_;
    last_reload_error_ = st.error().message();
    spdlog::error("config: xDS push not applied to the routes, keeping the previous state: {}", st.error());
    return;
  }
  spdlog::debug("config: xDS push: {} workloads, {} services", snapshot_->workloads().size(), snapshot_->services().size());
  publish(std::move(*st));
}

void App::publish(std::shared_ptr<const L7State> state) {
  state_ = state;
  for (auto& w : workers_)
    asio::post(w->io, [p = w->proxy, state] { p->set_state(state); });
}

void App::publish(std::shared_ptr<const identity::CertBundle> certs) {
  if (identity_task_ && certs->find(identity_) != nullptr) {
    readiness_.mark_ready(*identity_task_);
    identity_task_.reset();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) asio::post(w->io, [p = w->proxy, certs] { p->set_certs(certs); });
    else w->proxy->set_certs(certs);
  }
}

void App::schedule_reload() {
  reload_timer_.expires_after(config_.reload_interval);
  reload_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || draining_) return;
    auto stamps = stamp_files();
    if (stamps != stamps_) {
      stamps_ = std::move(stamps);
      auto st = load_state();
      if (st) {
        ++reloads_;
        last_reload_error_.clear();
        spdlog::info("config: reloaded: {} workloads, {} services, {} routes, {} policies", (*st)->snapshot().workloads().size(),
                     (*st)->snapshot().services().size(), (*st)->config().routes.size(), (*st)->config().policies.size());
        publish(std::move(*st));
      } else {
        ++reload_failures_;
        last_reload_error_ = st.error().message();
        spdlog::error("config: reload refused, keeping the previous config: {}", st.error());
      }
    }
    schedule_reload();
  });
}

Result<void> App::start() {
  telemetry::register_process_metrics(registry_);
  telemetry::register_build_info(registry_, "waypoint", "0.1.0");
  request_metrics_ = std::make_unique<RequestMetrics>(registry_);
  auto state_task = readiness_.register_task("config");
  auto proxy_task = readiness_.register_task("proxy");
  // Trims the heap after a fall in tunnels in flight (net/heap_trimmer.h).
  trimmer_ = net::HeapTrimmer::start(control_.get_executor(), [this] { return counters_.live.load(); }, {});

  // State: the local config file, or istiod's Delta ADS (exclusive; load_app_config refuses both and neither).
  if (!config_.control_plane.xds_address.empty()) AMBIENT_TRY(start_xds(state_task));
  stamps_ = stamp_files();
  auto st = load_state();
  if (!st) return std::move(st).error();
  state_ = std::move(*st);
  if (ads_) {
    spdlog::info("config: workloads and services from xDS at {} (ready after the first push); {} routes, {} policies",
                 config_.control_plane.xds_address, state_->config().routes.size(), state_->config().policies.size());
  } else {
    spdlog::info("config: {} workloads, {} services from {}; {} routes, {} policies", state_->snapshot().workloads().size(),
                 state_->snapshot().services().size(), config_.local_config_path, state_->config().routes.size(),
                 state_->config().policies.size());
    readiness_.mark_ready(state_task);
  }
  identity_ = fmt::format("spiffe://{}/ns/{}/sa/{}", config_.trust_domain, config_.ns, config_.service_account);

  // Workers: each binds the HBONE port (SO_REUSEPORT); port 0 (tests) is picked once by the first.
  for (unsigned i = 0; i < config_.worker_threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->shard = &registry_.add_shard(fmt::format("worker-{}", i));
    w->proxy = std::make_shared<WaypointProxy>(w->io, config_, *request_metrics_, *w->shard, counters_);
    w->proxy->set_state(state_);
    w->proxy->set_identity(identity_);
    workers_.push_back(std::move(w));
  }
  // HBONE connections are balanced exactly over the workers (worker 0 accepts; connection_balancer.h).
  auto balancer = std::make_shared<ConnectionBalancer>(workers_.size());
  std::vector<std::weak_ptr<WaypointProxy>> peers;
  for (auto& w : workers_) peers.push_back(w->proxy);
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    auto& w = workers_[i];
    if (config_.balance_connections) w->proxy->set_balancer(balancer, i, peers);
    AMBIENT_TRY(w->proxy->start(config_.hbone_port, config_.proxy_protocol_port));
    if (i == 0) config_.hbone_port = w->proxy->port();
    if (config_.proxy_protocol_port) config_.proxy_protocol_port = w->proxy->proxy_protocol_port();
  }

  // Identity: istiod's CA (CA_ADDRESS), or the built-in CA (self-signed, or istiod-style cacerts files); renewed
  // at half-life. Readiness waits for the first certificate (with istiod's CA it arrives after start()).
  auto source = control_plane::make_certificate_source(control_.get_executor(), config_.control_plane, config_.trust_domain,
                                                       config_.cacerts_dir, /*impersonate=*/false);
  if (!source) return std::move(source).error();
  identity_task_ = readiness_.register_task("waypoint certificate");
  identities_ = std::make_unique<identity::IdentityManager>(
      control_.get_executor(), std::move(*source), config_.secret_ttl,
      [this](std::shared_ptr<const identity::CertBundle> b) { publish(std::move(b)); });
  AMBIENT_TRY(identities_->set_identities({identity_}));
  if (ads_) ads_->start();  // readiness: "config" is released by the first Address response (start_xds)

  auto servers = admin::ControlServers::start(control_.get_executor(), {config_.admin, config_.metrics, config_.readiness},
                                              registry_, readiness_, [this] { return config_dump(); }, [this] { shutdown(); });
  if (!servers) return std::move(servers).error();
  servers_ = std::move(*servers);
  admin_ep_ = servers_->bound().admin;
  metrics_ep_ = servers_->bound().metrics;
  readiness_ep_ = servers_->bound().readiness;

  for (auto& w : workers_)
    w->thread = std::thread([io = &w->io] {
      auto guard = asio::make_work_guard(*io);
      io->run();
    });
  readiness_.mark_ready(proxy_task);
  schedule_reload();
  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (!ec) {
      spdlog::info("received signal {}, starting drain", sig);
      shutdown();
    }
  });
  const std::string listeners =
      (config_.hbone_enabled ? fmt::format("HBONE on {}:{}", config_.bind_address.to_string(), config_.hbone_port) : std::string("no HBONE")) +
      (config_.proxy_protocol_port ? fmt::format(", PROXY protocol on {}:{}", config_.proxy_protocol_bind.to_string(), *config_.proxy_protocol_port) : "");
  spdlog::info("waypoint {} ({}/{}, gateway {}) ready: {} workers, {}, admin {}:{}, metrics {}:{}, readiness {}:{}",
               identity_, config_.ns, config_.name, config_.gateway_name, workers_.size(), listeners, admin_ep_.address().to_string(), admin_ep_.port(), metrics_ep_.address().to_string(),
               metrics_ep_.port(), readiness_ep_.address().to_string(), readiness_ep_.port());
  return ok();
}

std::string App::config_dump() const {
  std::string state = state::config_dump_json(state_->snapshot(), true);
  std::string certs = "[";
  bool first = true;
  for (const auto& [id, c] : identities_->current()->certs) {
    certs += fmt::format("{}\n    {{\"identity\": {}, \"state\": \"Available\", \"validFrom\": \"{}\", \"expirationTime\": \"{}\", "
                         "\"serialNumber\": \"{}\"}}",
                         first ? "" : ",", json::quote(id), iso8601(c->not_before), iso8601(c->not_after), tls::serial_hex(c->key.leaf()));
    first = false;
  }
  certs += "\n  ]";
  const auto end = state.rfind('}');
  const std::string extra = fmt::format(
      ",\n  \"routes\": {},\n  \"authorizationPolicies\": {},\n  \"certificates\": {},\n"
      "  \"config\": {{\"workload\": {}, \"gateway\": {}, \"localXdsPath\": {}, \"xdsAddress\": {}, \"caAddress\": {}, "
      "\"routePaths\": {}, \"workerThreads\": {}, \"reloads\": {}, \"reloadFailures\": {}, \"lastReloadError\": {}}},\n"
      "  \"xds\": {}\n",
      routes_json(state_->config()), policies_json(state_->config()), certs,
      json::quote(config_.ns + "/" + config_.name + "/" + config_.service_account), json::quote(config_.gateway_name),
      json::quote(config_.local_config_path), json::quote(config_.control_plane.xds_address),
      json::quote(config_.control_plane.ca_address), json::quote(fmt::format("{}", fmt::join(config_.route_paths, ","))),
      config_.worker_threads, reloads_, reload_failures_, json::quote(last_reload_error_),
      control_plane::xds_status_json(ads_.get(), config_.control_plane));
  const auto body_end = state.find_last_not_of(" \n", end - 1);
  return state.substr(0, body_end + 1) + extra + "}\n";
}

void App::shutdown() {
  asio::post(control_, [this] { begin_drain(); });
}

void App::begin_drain() {
  if (draining_) return;
  draining_ = true;
  reload_timer_.cancel();
  if (ads_) ads_->stop();
  for (auto& w : workers_) asio::post(w->io, [p = w->proxy] { p->stop_accepting(); });
  admin::Drain::Hooks hooks;
  hooks.live = [this] { return counters_.live.load(std::memory_order_relaxed); };
  hooks.close = [this](std::uint64_t live) {
    spdlog::info("drain deadline passed with {} live tunnels: closing them", live);
    for (auto& w : workers_) asio::post(w->io, [p = w->proxy] { p->close_all(); });
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
  spdlog::info("waypoint stopped");
  return 0;
}

}  // namespace ambient::waypoint
