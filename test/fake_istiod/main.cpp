// fake-istiod: a real grpc++ control plane for tests, benchmarks and local demos. It serves, over TLS:
//   envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources  (ads_service.h)
//   istio.v1.auth.IstioCertificateService/CreateCertificate                         (ca_service.h)
// fed from a directory of local-config YAML files (config_store.h, polled every 100 ms), with faults
// settable by flag and at runtime on a plain-HTTP admin port (admin.h, server_state.h).
//
// It links grpc++ and therefore OpenSSL 3: never link it, or anything from here, beside BoringSSL.
//
// stderr: log lines (one per stream, push, NACK, signing, config reload). SIGTERM / SIGINT: shutdown
// (calls in flight get 1 s), exit 0. Bad flags: a message and exit 2; start-up failures: exit 1.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <spdlog/spdlog.h>

#include "common/base/log.h"
#include "test/fake_istiod/admin.h"
#include "test/fake_istiod/ads_service.h"
#include "test/fake_istiod/ca_service.h"
#include "test/fake_istiod/config_store.h"
#include "test/fake_istiod/server_state.h"

namespace {

using namespace fake_istiod;
using namespace std::chrono_literals;

constexpr int kMaxMessageBytes = 4 << 20;  // grpc max receive (and send) message size
constexpr auto kPollInterval = 100ms;      // config dir poll

constexpr const char* kUsage =
    "usage: fake-istiod --serving-cert PEM --serving-key PEM --ca-cert PEM --ca-key PEM\n"
    "                   [--listen HOST:PORT] [--port-file PATH] [--config-dir DIR] [--token TOKEN]\n"
    "                   [--admin HOST:PORT] [--admin-port-file PATH] [--log-level LEVEL] [--exit-with-parent]\n"
    "                   [--push-delay-ms N] [--invalid-resource 0|1] [--refuse-csr 0|1] [--cert-ttl-s N]\n"
    "  --listen HOST:PORT        gRPC over TLS (default 127.0.0.1:0; port 0 = any free port)\n"
    "  --port-file PATH          write the bound gRPC port there once serving\n"
    "  --config-dir DIR          *.yaml files in ztunnel local-config shape; their union is served,\n"
    "                            re-read when they change (polled every 100 ms)\n"
    "  --serving-cert/-key PEM   the server's TLS certificate chain and key (no client certificate asked)\n"
    "  --ca-cert/--ca-key PEM    the CA that signs CreateCertificate CSRs\n"
    "  --token TOKEN             every call must carry 'authorization: Bearer TOKEN' (else UNAUTHENTICATED)\n"
    "  --admin HOST:PORT         plain-HTTP admin: GET /status, POST /fault?name=value\n"
    "  --admin-port-file PATH    write the bound admin port there\n"
    "  --exit-with-parent        exit when the parent process dies (tests: no orphaned servers)\n"
    "  faults (also POST /fault?name=value; drop-streams is admin-only):\n"
    "  --push-delay-ms N         wait N ms before each ADS push\n"
    "  --invalid-resource 0|1    push an extra invalid Address \"invalid/bad-workload\"\n"
    "  --refuse-csr 0|1          CreateCertificate answers UNAVAILABLE\n"
    "  --cert-ttl-s N            issue certificates valid for at most N seconds\n";

struct Options {
  std::string listen = "127.0.0.1:0";
  std::string port_file;
  std::string config_dir;
  std::string serving_cert, serving_key;
  std::string ca_cert, ca_key;
  std::optional<std::string> token;
  std::string admin;
  std::string admin_port_file;
  std::string log_level = "info";
  bool exit_with_parent = false;
  std::vector<std::pair<std::string, std::string>> faults;  // applied at start, in order
};

[[noreturn]] void bad_usage(const std::string& message) {
  std::fprintf(stderr, "fake-istiod: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

Options parse_args(int argc, char** argv, Faults& faults) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::optional<std::string> inline_value;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = a.substr(eq + 1);
      a.resize(eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) bad_usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--listen") {
      o.listen = value();
    } else if (a == "--port-file") {
      o.port_file = value();
    } else if (a == "--config-dir") {
      o.config_dir = value();
    } else if (a == "--serving-cert") {
      o.serving_cert = value();
    } else if (a == "--serving-key") {
      o.serving_key = value();
    } else if (a == "--ca-cert") {
      o.ca_cert = value();
    } else if (a == "--ca-key") {
      o.ca_key = value();
    } else if (a == "--token") {
      o.token = value();
      if (o.token->empty()) bad_usage("--token must not be empty");
    } else if (a == "--admin") {
      o.admin = value();
    } else if (a == "--admin-port-file") {
      o.admin_port_file = value();
    } else if (a == "--exit-with-parent") {
      o.exit_with_parent = true;
    } else if (a == "--log-level") {
      o.log_level = value();
    } else if (a == "--push-delay-ms" || a == "--invalid-resource" || a == "--refuse-csr" || a == "--cert-ttl-s") {
      const std::string name = a.substr(2);
      const std::string v = value();
      if (auto r = set_fault(faults, name, v); !r) bad_usage(r.error().context);
    } else {
      bad_usage("unknown argument " + a);
    }
  }
  if (o.serving_cert.empty() || o.serving_key.empty()) bad_usage("--serving-cert and --serving-key are required (TLS only)");
  if (o.ca_cert.empty() || o.ca_key.empty()) bad_usage("--ca-cert and --ca-key are required");
  if (auto r = split_host_port("--listen", o.listen); !r) bad_usage(r.error().context);
  if (!o.admin.empty())
    if (auto r = split_host_port("--admin", o.admin); !r) bad_usage(r.error().context);
  if (!o.admin_port_file.empty() && o.admin.empty()) bad_usage("--admin-port-file needs --admin");
  if (!o.config_dir.empty() && !std::filesystem::is_directory(o.config_dir))
    bad_usage("--config-dir " + o.config_dir + " is not a directory");
  return o;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Written to PATH.tmp then renamed, so a reader never sees a partial number.
bool write_port_file(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

[[noreturn]] void die(const std::string& message) {
  spdlog::critical("{}", message);
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  Faults faults;
  Stats stats;
  const Options opt = parse_args(argc, argv, faults);
  if (auto r = ambient::log::init(opt.log_level); !r) bad_usage("--log-level: " + r.error().context);

  // SIGTERM/SIGINT are taken with sigtimedwait below: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto serving_cert = read_file(opt.serving_cert);
  auto serving_key = read_file(opt.serving_key);
  if (!serving_cert || !serving_key) die("cannot read --serving-cert " + opt.serving_cert + " / --serving-key " + opt.serving_key);
  auto signer = Signer::load(opt.ca_cert, opt.ca_key);
  if (!signer) die(signer.error().context);

  ConfigStore store(opt.config_dir);
  if (auto r = store.load(); !r) die("config: " + r.error().context);
  stats.config_generation = store.current()->generation;
  spdlog::info("config: {} address(es), {} authorization(s) from {}", store.current()->addresses.size(),
               store.current()->authorizations.size(), opt.config_dir.empty() ? "(none)" : opt.config_dir);

  AdsService ads(opt.token, faults, stats, store.current());
  CaService ca(std::move(*signer), opt.token, faults, stats);

  grpc::SslServerCredentialsOptions tls(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  tls.pem_key_cert_pairs.push_back({*serving_key, *serving_cert});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(opt.listen, grpc::SslServerCredentials(tls), &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(&ads);
  builder.RegisterService(&ca);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) die("cannot serve gRPC on " + opt.listen);
  spdlog::info("serving gRPC (TLS) on {} port {}", opt.listen, port);

  std::unique_ptr<AdminServer> admin;
  if (!opt.admin.empty()) {
    auto hp = split_host_port("--admin", opt.admin);
    AdminHandlers h;
    h.status = [&] { return status_json(stats, faults); };
    h.answer_latencies = [&] {
      std::string body = "[";
      for (auto us : stats.answer_latencies()) body += (body.size() > 1 ? "," : "") + std::to_string(us);
      return body + "]\n";
    };
    h.fault = [&](std::string_view name, std::string_view value) -> ambient::Result<void> {
      auto which = set_fault(faults, name, value);
      if (!which) return std::move(which).error();
      if (*which == FaultName::DropStreams) ads.drop_streams();
      if (*which == FaultName::InvalidResource) ads.faults_changed();
      return {};
    };
    auto a = AdminServer::start(hp->first, hp->second, std::move(h));
    if (!a) die(a.error().context);
    admin = std::move(*a);
    spdlog::info("admin (HTTP) on {} port {}", hp->first, admin->port());
    if (!opt.admin_port_file.empty() && !write_port_file(opt.admin_port_file, admin->port()))
      die("cannot write --admin-port-file " + opt.admin_port_file);
  }
  if (!opt.port_file.empty() && !write_port_file(opt.port_file, port)) die("cannot write --port-file " + opt.port_file);

  // Main thread: config poll every 100 ms until SIGTERM/SIGINT (or, with --exit-with-parent, until the
  // parent is gone: we are re-parented).
  const pid_t parent = ::getppid();
  const timespec interval{0, std::chrono::nanoseconds(kPollInterval).count()};
  for (;;) {
    siginfo_t info;
    if (sigtimedwait(&signals, &info, &interval) > 0) {
      spdlog::info("signal {}: shutting down", info.si_signo);
      break;
    }
    if (opt.exit_with_parent && ::getppid() != parent) {
      spdlog::info("parent {} gone: shutting down", parent);
      break;
    }
    auto changed = store.poll();
    if (!changed) {
      ++stats.config_errors;
      stats.set_last_config_error(changed.error().context);
      spdlog::error("config reload refused, previous state kept: {}", changed.error().context);
    } else if (*changed) {
      auto now = store.current();
      stats.config_generation = now->generation;
      spdlog::info("config generation {}: {} address(es), {} authorization(s)", now->generation, now->addresses.size(),
                   now->authorizations.size());
      ads.publish(std::move(now));
    }
  }
  admin.reset();
  server->Shutdown(std::chrono::system_clock::now() + 1s);
  server->Wait();
  return 0;
}
