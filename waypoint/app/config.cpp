#include "waypoint/app/config.h"

#include <fmt/format.h>

#include "common/base/config.h"
#include "common/net/endpoint.h"

namespace ambient::waypoint {

namespace {

Result<boost::asio::ip::tcp::endpoint> parse_endpoint(const std::string& text, const std::string& where) {
  auto ep = net::parse_endpoint(text);
  if (!ep) return errorf(ErrorKind::InvalidArgument, "{}: {}", where, ep.error().context);
  return ep;
}

std::vector<std::string> split_paths(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto comma = s.find(',', start);
    std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!part.empty()) out.push_back(std::move(part));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

Result<AppConfig> load_app_config(int argc, const char* const* argv, std::string* help_text) {
  config::Options o;
  o.add({"local-config", "LOCAL_XDS_PATH", "", "YAML file with workloads and services (Istio local-config shape; exclusive with XDS_ADDRESS)"});
  control_plane::add_options(o);  // XDS_ADDRESS, ..., CLUSTER_ID, NODE_NAME, CA_ADDRESS, CA_ROOT_CA, ALT_CA_HOSTNAME
  o.add({"routes", "WAYPOINT_CONFIG_PATHS", "", "HTTPRoute/GRPCRoute/AuthorizationPolicy YAML files or directories, comma-separated"})
      .add({"reload-interval", "WAYPOINT_RELOAD_INTERVAL", "1s", "how often the config files are checked for changes"})
      .add({"workload-info", "WAYPOINT_WORKLOAD_INFO", "", "namespace/name/serviceaccount of this waypoint"})
      .add({"gateway", "WAYPOINT_GATEWAY", "", "the waypoint's Gateway name (policy targetRefs); default: the workload name"})
      .add({"network", "NETWORK", "", "the local network name"})
      .add({"worker-threads", "WAYPOINT_WORKER_THREADS", "2", "data-plane threads (1..64)"})
      .add({"bind", "BIND_ADDRESS", "::", "address the HBONE listener binds"})
      .add({"hbone-port", "", "15008", "HBONE listener port"})
      .add({"hbone", "WAYPOINT_HBONE", "true", "serve HBONE on --hbone-port (off: only the PROXY protocol binding)"})
      .add({"exact-balance", "WAYPOINT_EXACT_BALANCE", "true", "give each HBONE connection to the worker with the fewest (off: SO_REUSEPORT's hash)"})
      .add({"proxy-protocol-port", "WAYPOINT_PROXY_PROTOCOL_PORT", "", "PROXY protocol v2 listener for the local ztunnel (Istio's sandwich binding, e.g. 15088); empty = off"})
      .add({"proxy-protocol-bind", "", "127.0.0.1", "address of the PROXY protocol listener (only loopback peers are served)"})
      .add({"admin", "ADMIN_ADDRESS", "127.0.0.1:15000", "admin server (config_dump, logging, quitquitquit)"})
      .add({"metrics", "METRICS_ADDRESS", "[::]:15020", "Prometheus metrics server"})
      .add({"readiness", "READINESS_ADDRESS", "[::]:15021", "readiness server (/healthz/ready)"})
      .add({"trust-domain", "TRUST_DOMAIN", "cluster.local", "trust domain of issued certificates"})
      .add({"secret-ttl", "SECRET_TTL", "24h", "requested certificate lifetime"})
      .add({"cacerts", "CA_CERTS_DIR", "", "built-in CA from istiod-style cacerts files; empty = self-signed"})
      .add({"lb", "WAYPOINT_LB", "least-request", "endpoint choice: least-request | round-robin | random"})
      .add({"pool-max-streams", "POOL_MAX_STREAMS_PER_CONNECTION", "100", "HBONE streams per pooled connection"})
      .add({"pool-unused-release-timeout", "POOL_UNUSED_RELEASE_TIMEOUT", "5m", "idle pooled connections are closed after this"})
      .add({"connect-timeout", "CONNECT_TIMEOUT", "10s", "upstream connect timeout"})
      .add({"header-read-timeout", "WAYPOINT_HEADER_READ_TIMEOUT", "10s", "time a client has to send a request's head"})
      .add({"idle-timeout", "WAYPOINT_IDLE_TIMEOUT", "1h", "a connection (HTTP/1 keep-alive, HTTP/2, HBONE) without requests is closed after this"})
      .add({"handshake-timeout", "WAYPOINT_HANDSHAKE_TIMEOUT", "10s", "an HBONE connection must finish its mTLS handshake within this"})
      .add({"max-connections", "WAYPOINT_MAX_CONNECTIONS", "0", "downstream connections open at once; more are reset (0 = half the open-file limit)"})
      .add({"max-header-bytes", "WAYPOINT_MAX_HEADER_BYTES", "60Ki", "request line and headers, at most (431 beyond)"})
      .add({"max-headers", "WAYPOINT_MAX_HEADERS", "100", "header fields per request, at most (431 beyond)"})
      .add({"access-log", "WAYPOINT_ACCESS_LOG", "true", "one access-log line per request (metrics are recorded either way)"})
      .add({"termination-deadline", "CONNECTION_TERMINATION_DEADLINE", "5s", "drain time for live connections on SIGTERM"})
      .add({"log-level", "LOG_LEVEL", "info", "trace|debug|info|warn|error"})
      .add({"log-format", "LOG_FORMAT", "plain", "plain | json"});
  AMBIENT_TRY(o.parse(argc, argv));
  AppConfig c;
  if (o.help_requested()) {
    if (help_text) *help_text = o.usage("waypoint");
    return c;
  }
  if (!o.positional().empty())
    return errorf(ErrorKind::InvalidArgument, "unexpected argument '{}' (flags are --name=value)", o.positional().front());
  c.local_config_path = o.get("local-config");
  c.control_plane = control_plane::from_options(o);
  control_plane::apply_environment_defaults(c.control_plane, o, !c.local_config_path.empty(), !o.get("cacerts").empty());
  AMBIENT_TRY(control_plane::check_state_source(c.control_plane, c.local_config_path));
  if (c.local_config_path.empty() && c.control_plane.xds_address.empty())
    return errorf(ErrorKind::InvalidArgument,
                  "no state source for the waypoint's workloads and services: set LOCAL_XDS_PATH (or --local-config) to a "
                  "local config file, or XDS_ADDRESS (or --xds-address) to istiod");
  c.route_paths = split_paths(o.get("routes"));
  auto reload = o.duration("reload-interval");
  if (!reload) return std::move(reload).error();
  c.reload_interval = std::max(std::chrono::milliseconds(10), std::chrono::duration_cast<std::chrono::milliseconds>(*reload));

  const std::string wi = o.get("workload-info");
  const auto a = wi.find('/'), b = wi.rfind('/');
  if (a == std::string::npos || a == b || a == 0 || b + 1 == wi.size() || b == a + 1)
    return errorf(ErrorKind::InvalidArgument, "WAYPOINT_WORKLOAD_INFO (--workload-info) '{}' is not namespace/name/serviceaccount", wi);
  c.ns = wi.substr(0, a);
  c.name = wi.substr(a + 1, b - a - 1);
  c.service_account = wi.substr(b + 1);
  // The xDS node names the waypoint's pod; without the downward-API variables, its workload stands in.
  if (c.control_plane.pod_name.empty()) c.control_plane.pod_name = c.name;
  if (c.control_plane.pod_namespace.empty()) c.control_plane.pod_namespace = c.ns;
  c.gateway_name = o.get("gateway");
  if (c.gateway_name.empty()) c.gateway_name = c.name;
  c.network = o.get("network");
  auto workers = o.integer("worker-threads", 1, 64);
  if (!workers) return std::move(workers).error();
  c.worker_threads = static_cast<unsigned>(*workers);

  boost::system::error_code ec;
  c.bind_address = boost::asio::ip::make_address(o.get("bind"), ec);
  if (ec) return errorf(ErrorKind::InvalidArgument, "--bind '{}' is not an IP address", o.get("bind"));
  auto port = o.integer("hbone-port", 0, 65535);
  if (!port) return std::move(port).error();
  c.hbone_port = static_cast<std::uint16_t>(*port);
  auto hbone = o.boolean("hbone");
  if (!hbone) return std::move(hbone).error();
  c.hbone_enabled = *hbone;
  auto balance = o.boolean("exact-balance");
  if (!balance) return std::move(balance).error();
  c.balance_connections = *balance;
  if (const std::string pp = o.get("proxy-protocol-port"); !pp.empty()) {
    auto v = o.integer("proxy-protocol-port", 0, 65535);
    if (!v) return std::move(v).error();
    c.proxy_protocol_port = static_cast<std::uint16_t>(*v);
  }
  c.proxy_protocol_bind = boost::asio::ip::make_address(o.get("proxy-protocol-bind"), ec);
  if (ec) return errorf(ErrorKind::InvalidArgument, "--proxy-protocol-bind '{}' is not an IP address", o.get("proxy-protocol-bind"));
  if (!c.hbone_enabled && !c.proxy_protocol_port)
    return errorf(ErrorKind::InvalidArgument, "WAYPOINT_HBONE=false needs WAYPOINT_PROXY_PROTOCOL_PORT: the waypoint would take no traffic");
  for (auto [flag, out] : {std::pair{"admin", &c.admin}, std::pair{"metrics", &c.metrics}, std::pair{"readiness", &c.readiness}}) {
    auto v = parse_endpoint(o.get(flag), std::string("--") + flag);
    if (!v) return std::move(v).error();
    *out = *v;
  }
  c.trust_domain = o.get("trust-domain");
  if (c.trust_domain.empty()) return errorf(ErrorKind::InvalidArgument, "TRUST_DOMAIN is empty");
  auto ttl = o.duration("secret-ttl");
  if (!ttl) return std::move(ttl).error();
  c.secret_ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
  if (c.secret_ttl.count() < 60) return errorf(ErrorKind::InvalidArgument, "SECRET_TTL {}s is shorter than a minute", c.secret_ttl.count());
  c.cacerts_dir = o.get("cacerts");
  AMBIENT_TRY(control_plane::check_ca_source(c.control_plane, c.cacerts_dir));

  const std::string lb = o.get("lb");
  if (lb == "least-request") c.load_balancing = LoadBalancing::LeastRequest;
  else if (lb == "round-robin") c.load_balancing = LoadBalancing::RoundRobin;
  else if (lb == "random") c.load_balancing = LoadBalancing::Random;
  else return errorf(ErrorKind::InvalidArgument, "WAYPOINT_LB (--lb) '{}' is not least-request, round-robin or random", lb);
  auto streams = o.integer("pool-max-streams", 1, 1'000'000);
  if (!streams) return std::move(streams).error();
  c.pool_max_streams_per_connection = static_cast<std::uint32_t>(*streams);
  auto ms = [&](const char* flag, std::chrono::milliseconds& out) -> Result<void> {
    auto d = o.duration(flag);
    if (!d) return std::move(d).error();
    out = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    if (out.count() <= 0) return errorf(ErrorKind::InvalidArgument, "--{} must be positive", flag);
    return ok();
  };
  AMBIENT_TRY(ms("pool-unused-release-timeout", c.pool_unused_release_timeout));
  AMBIENT_TRY(ms("connect-timeout", c.connect_timeout));
  AMBIENT_TRY(ms("header-read-timeout", c.header_read_timeout));
  AMBIENT_TRY(ms("idle-timeout", c.idle_timeout));
  AMBIENT_TRY(ms("handshake-timeout", c.handshake_timeout));
  AMBIENT_TRY(ms("termination-deadline", c.termination_deadline));
  auto mc = o.integer("max-connections", 0, 100'000'000);
  if (!mc) return std::move(mc).error();
  c.max_connections = static_cast<std::uint64_t>(*mc);
  auto hb = o.size("max-header-bytes");
  if (!hb) return std::move(hb).error();
  if (*hb < 1024 || *hb > (1u << 20)) return errorf(ErrorKind::InvalidArgument, "WAYPOINT_MAX_HEADER_BYTES {} is outside 1Ki..1Mi", *hb);
  c.max_header_bytes = static_cast<std::size_t>(*hb);
  auto mh = o.integer("max-headers", 1, 10'000);
  if (!mh) return std::move(mh).error();
  c.max_headers = static_cast<std::size_t>(*mh);
  auto al = o.boolean("access-log");
  if (!al) return std::move(al).error();
  c.access_log = *al;
  c.log_level = o.get("log-level");
  const std::string fmt = o.get("log-format");
  if (fmt != "plain" && fmt != "json") return errorf(ErrorKind::InvalidArgument, "LOG_FORMAT '{}' is not plain or json", fmt);
  c.log_json = fmt == "json";
  return c;
}

}  // namespace ambient::waypoint
