#include "ztunnel/app/config.h"

#include <thread>

#include "common/base/config.h"
#include "common/net/endpoint.h"

namespace ambient::ztunnel {

namespace {

Result<boost::asio::ip::tcp::endpoint> parse_endpoint(const std::string& text, const std::string& where) {
  auto ep = net::parse_endpoint(text);
  if (!ep) return errorf(ErrorKind::InvalidArgument, "{}: {}", where, ep.error().context);
  return ep;
}

Result<unsigned> parse_workers(const std::string& text) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (!text.empty() && text.back() == '%') {
    auto pct = config::parse_int(text.substr(0, text.size() - 1), 1, 100);
    if (!pct) return errorf(ErrorKind::InvalidArgument, "ZTUNNEL_WORKER_THREADS '{}': {}", text, pct.error().context);
    return std::max(1u, static_cast<unsigned>((cores * static_cast<unsigned>(*pct) + 99) / 100));
  }
  auto n = config::parse_int(text, 0, 1024);
  if (!n) return errorf(ErrorKind::InvalidArgument, "ZTUNNEL_WORKER_THREADS '{}': {}", text, n.error().context);
  return *n == 0 ? cores : static_cast<unsigned>(*n);
}

}  // namespace

Result<Config> load_config(int argc, const char* const* argv, std::string* help_text) {
  config::Options o;
  o.add({"local-config", "LOCAL_XDS_PATH", "", "YAML file with workloads, services and policies (Istio local-config shape)"});
  control_plane::add_options(o);  // XDS_ADDRESS, ..., CLUSTER_ID, NODE_NAME, CA_ADDRESS, CA_ROOT_CA, ALT_CA_HOSTNAME
  o.add({"proxy-mode", "PROXY_MODE", "dedicated", "dedicated (own netns) | shared (in-pod, needs the CNI agent)"})
      .add({"workload-info", "PROXY_WORKLOAD_INFO", "", "namespace/name/serviceaccount of the workload (dedicated mode)"})
      .add({"network", "NETWORK", "", "the local network name"})
      .add({"worker-threads", "ZTUNNEL_WORKER_THREADS", "2", "data-plane threads: N, N% of cores, or 0 for all"})
      .add({"bind", "BIND_ADDRESS", "::", "address the data-plane listeners bind (dedicated mode)"})
      .add({"outbound-port", "", "15001", "captured outbound listener"})
      .add({"inbound-plaintext-port", "", "15006", "captured inbound plaintext listener"})
      .add({"inbound-port", "", "15008", "HBONE listener"})
      .add({"socks5-port", "", "15080", "SOCKS5 listener"})
      .add({"socks5", "UNSTABLE_ENABLE_SOCKS5", "true", "enable the SOCKS5 outbound front"})
      .add({"packet-mark", "PACKET_MARK", "", "SO_MARK on data-plane sockets (0 = none; default 1337 in shared mode, else 0)"})
      .add({"inpod-uds", "INPOD_UDS", "/var/run/ztunnel/ztunnel.sock", "the node agent's ZDS socket (shared mode)"})
      .add({"orig-src", "ENABLE_ORIG_SRC", "true", "keep the client's source IP towards the app when the kernel allows"})
      .add({"admin", "ADMIN_ADDRESS", "127.0.0.1:15000", "admin server (config_dump, logging, quitquitquit)"})
      .add({"metrics", "METRICS_ADDRESS", "[::]:15020", "Prometheus metrics server"})
      .add({"readiness", "READINESS_ADDRESS", "[::]:15021", "readiness server (/healthz/ready)"})
      .add({"trust-domain", "TRUST_DOMAIN", "cluster.local", "trust domain of issued certificates"})
      .add({"secret-ttl", "SECRET_TTL", "24h", "requested certificate lifetime"})
      .add({"cacerts", "CA_CERTS_DIR", "", "built-in CA from istiod-style cacerts files (ca-cert.pem, ca-key.pem); empty = self-signed"})
      .add({"pool-max-streams", "POOL_MAX_STREAMS_PER_CONNECTION", "100", "HBONE streams per pooled connection"})
      .add({"pool-unused-release-timeout", "POOL_UNUSED_RELEASE_TIMEOUT", "5m", "idle pooled connections are closed after this"})
      .add({"h2-stream-window", "HTTP2_STREAM_WINDOW_SIZE", "4Mi", "HTTP/2 stream receive window"})
      .add({"h2-connection-window", "HTTP2_CONNECTION_WINDOW_SIZE", "16Mi", "HTTP/2 connection receive window"})
      .add({"h2-frame-size", "HTTP2_FRAME_SIZE", "1Mi", "HTTP/2 max frame size we accept"})
      .add({"connect-timeout", "CONNECT_TIMEOUT", "10s", "TCP connect timeout"})
      .add({"max-connections", "MAX_CONNECTIONS", "0", "connections accepted at once, all listeners; more are reset (0 = half the open-file limit)"})
      .add({"hbone-handshake-timeout", "HBONE_HANDSHAKE_TIMEOUT", "10s", "an inbound HBONE connection must finish mTLS within this"})
      .add({"hbone-idle-timeout", "HBONE_IDLE_TIMEOUT", "10m", "an inbound HBONE connection without tunnels is closed after this (0s = never)"})
      .add({"termination-deadline", "CONNECTION_TERMINATION_DEADLINE", "5s", "drain time for live connections on SIGTERM"})
      .add({"log-level", "LOG_LEVEL", "info", "trace|debug|info|warn|error"})
      .add({"log-format", "LOG_FORMAT", "plain", "plain | json"});
  AMBIENT_TRY(o.parse(argc, argv));
  Config c;
  if (o.help_requested()) {
    if (help_text) *help_text = o.usage("ztunnel");
    return c;
  }
  // Istio's ztunnel chart runs `ztunnel proxy ztunnel`: those two words are accepted, nothing else.
  if (const auto& pos = o.positional(); !pos.empty() && !(pos.size() == 2 && pos[0] == "proxy" && pos[1] == "ztunnel"))
    return errorf(ErrorKind::InvalidArgument, "unexpected argument '{}' (flags are --name=value)", pos.front());

  c.local_config_path = o.get("local-config");
  c.cacerts_dir = o.get("cacerts");
  c.control_plane = control_plane::from_options(o);
  const bool in_kubernetes =
      control_plane::apply_environment_defaults(c.control_plane, o, !c.local_config_path.empty(), !c.cacerts_dir.empty());
  AMBIENT_TRY(control_plane::check_state_source(c.control_plane, c.local_config_path));

  // PROXY_MODE: in a pod (Kubernetes) Istio's default, shared; INPOD_ENABLED=true (older Istio charts) too.
  std::string mode = o.get("proxy-mode");
  if (o.source("proxy-mode") == "default") {
    auto inpod = config::env("INPOD_ENABLED");
    if (inpod && !inpod->empty()) {
      auto on = config::parse_bool(*inpod);
      if (!on) return errorf(ErrorKind::InvalidArgument, "INPOD_ENABLED '{}': {}", *inpod, on.error().context);
      if (*on) mode = "shared";
    } else if (in_kubernetes) {
      mode = "shared";
    }
  }
  if (mode == "dedicated") c.mode = ProxyMode::Dedicated;
  else if (mode == "shared") c.mode = ProxyMode::Shared;
  else return errorf(ErrorKind::InvalidArgument, "PROXY_MODE '{}' is not dedicated or shared", mode);

  if (const std::string wi = o.get("workload-info"); !wi.empty()) {
    auto a = wi.find('/'), b = wi.rfind('/');
    if (a == std::string::npos || a == b || a == 0 || b + 1 == wi.size() || b == a + 1)
      return errorf(ErrorKind::InvalidArgument, "PROXY_WORKLOAD_INFO '{}' is not namespace/name/serviceaccount", wi);
    c.workload = {wi.substr(0, a), wi.substr(a + 1, b - a - 1), wi.substr(b + 1)};
  } else if (c.mode == ProxyMode::Dedicated) {
    return errorf(ErrorKind::InvalidArgument, "dedicated mode needs PROXY_WORKLOAD_INFO (or --workload-info) = namespace/name/serviceaccount");
  }
  c.network = o.get("network");
  // ZTUNNEL_CPU_LIMIT (Istio's chart: the container's limits.cpu, whole cores rounded up) sizes the workers
  // when ZTUNNEL_WORKER_THREADS is not set.
  std::string worker_text = o.get("worker-threads");
  if (o.source("worker-threads") == "default")
    if (auto limit = config::env("ZTUNNEL_CPU_LIMIT"); limit && !limit->empty() && *limit != "0") worker_text = *limit;
  auto workers = parse_workers(worker_text);
  if (!workers) return std::move(workers).error();
  c.worker_threads = *workers;

  boost::system::error_code ec;
  c.bind_address = boost::asio::ip::make_address(o.get("bind"), ec);
  if (ec) return errorf(ErrorKind::InvalidArgument, "--bind '{}' is not an IP address", o.get("bind"));
  auto port = [&](const char* flag, std::uint16_t& out) -> Result<void> {
    auto v = o.integer(flag, 0, 65535);
    if (!v) return std::move(v).error();
    out = static_cast<std::uint16_t>(*v);
    return ok();
  };
  AMBIENT_TRY(port("outbound-port", c.outbound_port));
  AMBIENT_TRY(port("inbound-plaintext-port", c.inbound_plaintext_port));
  AMBIENT_TRY(port("inbound-port", c.inbound_port));
  AMBIENT_TRY(port("socks5-port", c.socks5_port));
  auto socks = o.boolean("socks5");
  if (!socks) return std::move(socks).error();
  c.socks5_enabled = *socks;
  if (o.get("packet-mark").empty()) {
    c.packet_mark = c.mode == ProxyMode::Shared ? 1337 : 0;
  } else {
    auto mark = o.integer("packet-mark", 0, 0xffffffffll);
    if (!mark) return std::move(mark).error();
    c.packet_mark = static_cast<std::uint32_t>(*mark);
  }
  c.inpod_uds = o.get("inpod-uds");
  if (c.mode == ProxyMode::Shared && c.inpod_uds.empty()) return errorf(ErrorKind::InvalidArgument, "INPOD_UDS is empty (shared mode needs the node agent's socket)");
  auto orig = o.boolean("orig-src");
  if (!orig) return std::move(orig).error();
  c.orig_src = *orig;

  auto ep = [&](const char* flag, boost::asio::ip::tcp::endpoint& out) -> Result<void> {
    auto v = parse_endpoint(o.get(flag), std::string("--") + flag);
    if (!v) return std::move(v).error();
    out = *v;
    return ok();
  };
  AMBIENT_TRY(ep("admin", c.admin));
  AMBIENT_TRY(ep("metrics", c.metrics));
  AMBIENT_TRY(ep("readiness", c.readiness));

  c.trust_domain = o.get("trust-domain");
  if (c.trust_domain.empty()) return errorf(ErrorKind::InvalidArgument, "TRUST_DOMAIN is empty");
  auto ttl = o.duration("secret-ttl");
  if (!ttl) return std::move(ttl).error();
  c.secret_ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
  if (c.secret_ttl.count() < 60) return errorf(ErrorKind::InvalidArgument, "SECRET_TTL {}s is shorter than a minute", c.secret_ttl.count());
  AMBIENT_TRY(control_plane::check_ca_source(c.control_plane, c.cacerts_dir));

  auto streams = o.integer("pool-max-streams", 1, 1'000'000);
  if (!streams) return std::move(streams).error();
  c.pool_max_streams_per_connection = static_cast<std::uint32_t>(*streams);
  auto idle = o.duration("pool-unused-release-timeout");
  if (!idle) return std::move(idle).error();
  c.pool_unused_release_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*idle);
  auto sw = o.size("h2-stream-window");
  if (!sw) return std::move(sw).error();
  auto cw = o.size("h2-connection-window");
  if (!cw) return std::move(cw).error();
  auto fs = o.size("h2-frame-size");
  if (!fs) return std::move(fs).error();
  if (*sw < 65535 || *sw > 0x7fffffff) return errorf(ErrorKind::InvalidArgument, "HTTP2_STREAM_WINDOW_SIZE {} is outside [65535, 2^31-1]", *sw);
  if (*cw < 65535 || *cw > 0x7fffffff) return errorf(ErrorKind::InvalidArgument, "HTTP2_CONNECTION_WINDOW_SIZE {} is outside [65535, 2^31-1]", *cw);
  if (*fs < 16384 || *fs > 16777215) return errorf(ErrorKind::InvalidArgument, "HTTP2_FRAME_SIZE {} is outside [16384, 16777215]", *fs);
  c.h2.stream_window = static_cast<std::uint32_t>(*sw);
  c.h2.connection_window = static_cast<std::uint32_t>(*cw);
  c.h2.max_frame_size = static_cast<std::uint32_t>(*fs);
  auto ct = o.duration("connect-timeout");
  if (!ct) return std::move(ct).error();
  c.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*ct);
  auto mc = o.integer("max-connections", 0, 100'000'000);
  if (!mc) return std::move(mc).error();
  c.max_connections = static_cast<std::uint64_t>(*mc);
  auto hs = o.duration("hbone-handshake-timeout");
  if (!hs) return std::move(hs).error();
  c.hbone_handshake_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*hs);
  if (c.hbone_handshake_timeout.count() <= 0) return errorf(ErrorKind::InvalidArgument, "HBONE_HANDSHAKE_TIMEOUT must be positive");
  auto hi = o.duration("hbone-idle-timeout");
  if (!hi) return std::move(hi).error();
  c.h2.idle_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*hi);
  auto td = o.duration("termination-deadline");
  if (!td) return std::move(td).error();
  c.termination_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(*td);
  // Istio's rule: without CONNECTION_TERMINATION_DEADLINE, the pod's grace period minus 5 s when that is over 10 s.
  if (o.source("termination-deadline") == "default")
    if (auto grace = config::env("TERMINATION_GRACE_PERIOD_SECONDS"); grace && !grace->empty()) {
      auto g = config::parse_int(*grace, 0, 365LL * 24 * 3600);
      if (!g) return errorf(ErrorKind::InvalidArgument, "TERMINATION_GRACE_PERIOD_SECONDS '{}': {}", *grace, g.error().context);
      if (*g > 10) c.termination_deadline = std::chrono::seconds(*g - 5);
    }

  c.log_level = o.get("log-level");
  // RUST_LOG (what Istio's chart sets) when LOG_LEVEL is not: its default level, e.g. "info" of "info,access=debug".
  if (o.source("log-level") == "default")
    if (auto rust = config::env("RUST_LOG"); rust && !rust->empty()) {
      std::string_view text(*rust);
      for (std::size_t start = 0; start <= text.size();) {
        const auto comma = std::min(text.find(',', start), text.size());
        const auto directive = text.substr(start, comma - start);
        if (!directive.empty() && directive.find('=') == std::string_view::npos) {
          c.log_level = std::string(directive);
          break;
        }
        start = comma + 1;
      }
    }
  const std::string fmt = o.get("log-format");
  if (fmt != "plain" && fmt != "json") return errorf(ErrorKind::InvalidArgument, "LOG_FORMAT '{}' is not plain or json", fmt);
  c.log_json = fmt == "json";
  return c;
}

}  // namespace ambient::ztunnel
