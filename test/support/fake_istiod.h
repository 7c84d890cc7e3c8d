#pragma once
// Fixture for the fake-istiod tests: fake-istiod (grpc++, OpenSSL) as a child process, never in this
// process (DESIGN.md section 2), talked to with our own gRPC client (common/grpc over BoringSSL).
//
//   IstiodEnv  a scratch directory with a test CA and a serving certificate for IP 127.0.0.1 (made with
//              the openssl CLI: the serving cert needs an IP SAN), a config dir, and the process:
//              started with --port-file/--admin-port-file, stderr to <scratch>/istiod.log; SIGTERM and
//              reap (SIGKILL after 5 s) at destruction.
//   admin()    one blocking HTTP/1.1 request to the admin port.
//   wait_until a coroutine polling a predicate on an Asio timer (so the session keeps running).
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include "common/grpc/channel.h"
#include "common/grpc/client.h"
#include "proto/discovery.pb.h"
#include "test/support/paths.h"
#include "test/support/run_coro.h"

extern char** environ;

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // GCC PR 109224, see test/common/grpc/grpc_fixture.h
#endif

namespace ambient::test::istiod {

using namespace std::chrono_literals;
namespace asio = boost::asio;

inline constexpr const char* kAds = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";
inline constexpr const char* kCa = "/istio.v1.auth.IstioCertificateService/CreateCertificate";
inline constexpr const char* kAddressType = "type.googleapis.com/istio.workload.Address";
inline constexpr const char* kAuthorizationType = "type.googleapis.com/istio.security.Authorization";

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Written to a temporary name and renamed: fake-istiod's poll never sees half a file.
inline void write_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp~";
  std::ofstream(tmp, std::ios::trunc) << text;
  std::filesystem::rename(tmp, path);
}

// Polls `pred` every 10 ms on the coroutine's executor until it holds or `timeout` passes.
inline asio::awaitable<bool> wait_until(std::function<bool()> pred, std::chrono::milliseconds timeout = 5s) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) co_return false;
    t.expires_after(10ms);
    co_await t.async_wait(asio::use_awaitable);
  }
  co_return true;
}

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
};

// One request to 127.0.0.1:port, Connection: close, read to EOF.
inline HttpReply http(std::uint16_t port, const std::string& method, const std::string& target) {
  HttpReply out;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) ::close(fd);
    return out;
  }
  const std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (resp.rfind("HTTP/1.1 ", 0) == 0) out.status = std::atoi(resp.c_str() + 9);
  if (auto p = resp.find("\r\n\r\n"); p != std::string::npos) out.body = resp.substr(p + 4);
  return out;
}

// The integer after "\"key\": " in a flat JSON body (-1 when absent).
inline long json_int(const std::string& body, const std::string& key) {
  const auto p = body.find("\"" + key + "\": ");
  return p == std::string::npos ? -1 : std::atol(body.c_str() + p + key.size() + 4);
}

class IstiodEnv {
 public:
  // Certificates and the config dir; start() runs the server.
  IstiodEnv() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fake-istiod-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    std::filesystem::create_directory(config_dir());
    std::ofstream(file("server.ext")) << "basicConstraints=CA:FALSE\n"
                                         "keyUsage=critical,digitalSignature,keyEncipherment\n"
                                         "extendedKeyUsage=serverAuth\n"
                                         "subjectAltName=IP:127.0.0.1\n";
    for (const char* c : {
             "openssl ecparam -name prime256v1 -genkey -noout -out ca.key",
             "openssl req -x509 -new -key ca.key -subj /O=fake-istiod-test-ca -days 2 -out ca.pem "
             "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
             "openssl ecparam -name prime256v1 -genkey -noout -out server.key",
             "openssl req -new -key server.key -subj /CN=istiod -out server.csr",
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 -extfile server.ext "
             "-out server.pem",
         }) {
      const std::string full = "cd '" + dir_ + "' && " + c + " >/dev/null 2>>openssl.log";
      if (std::system(full.c_str()) != 0) {
        error_ = std::string("openssl failed: ") + c;
        return;
      }
    }
  }

  ~IstiodEnv() {
    stop();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  IstiodEnv(const IstiodEnv&) = delete;
  IstiodEnv& operator=(const IstiodEnv&) = delete;

  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  std::string config_dir() const { return dir_ + "/config"; }
  void write_config(const std::string& name, const std::string& yaml) const {
    write_atomic(config_dir() + "/" + name, yaml);
  }

  // Starts fake-istiod with the certificates, the config dir and an admin port, plus `extra` flags.
  // false (error() says why) when it does not write its port files within 10 s.
  bool start(std::vector<std::string> extra = {}) {
    if (!error_.empty()) return false;
    // AMBIENT_FAKE_ISTIOD: another build's binary (setup.sh tsan: grpc++ is not built with TSan, so the
    // TSan tree's own fake-istiod would report races inside it).
    const char* other = std::getenv("AMBIENT_FAKE_ISTIOD");
    const std::string exe = other != nullptr && *other != '\0' ? std::string(other) : binary_dir() + "/test/fake_istiod/fake-istiod";
    std::vector<std::string> args = {exe,
                                     "--listen", "127.0.0.1:0", "--port-file", file("port"),
                                     "--admin", "127.0.0.1:0", "--admin-port-file", file("admin-port"),
                                     "--serving-cert", file("server.pem"), "--serving-key", file("server.key"),
                                     "--ca-cert", file("ca.pem"), "--ca-key", file("ca.key"),
                                     "--config-dir", config_dir(), "--exit-with-parent"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    // stdout and stderr to the log (never our pipes: an orphaned server would hold them open).
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, file("istiod.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    const int rc = ::posix_spawn(&pid_, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      error_ = "posix_spawn " + exe + ": " + std::strerror(rc);
      return false;
    }
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        error_ = "fake-istiod exited at start-up: " + log();
        return false;
      }
      port_ = static_cast<std::uint16_t>(std::atoi(read_text(file("port")).c_str()));
      admin_port_ = static_cast<std::uint16_t>(std::atoi(read_text(file("admin-port")).c_str()));
      if (port_ != 0 && admin_port_ != 0) return true;
      std::this_thread::sleep_for(10ms);
    }
    error_ = "fake-istiod wrote no port files within 10 s: " + log();
    return false;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + 5s;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
  }

  const std::string& error() const { return error_; }
  std::string log() const { return read_text(file("istiod.log")); }
  std::uint16_t port() const { return port_; }
  asio::ip::tcp::endpoint endpoint() const { return {asio::ip::make_address("127.0.0.1"), port_}; }

  HttpReply admin(const std::string& method, const std::string& target) const { return http(admin_port_, method, target); }
  long status_value(const std::string& key) const { return json_int(admin("GET", "/status").body, key); }

  Result<grpc::ChannelTls> channel() const {
    grpc::ChannelTlsOptions o;
    o.roots_pem = read_text(file("ca.pem"));
    return grpc::ChannelTls::create(o);
  }

  // A TLS session to fake-istiod, verifying it as 127.0.0.1 against the test CA.
  asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial() const {
    auto tls = channel();
    if (!tls) co_return tls.error();
    grpc::DialOptions o;
    o.settings.ping_interval = 0ms;
    o.connect_timeout = 5s;
    co_return co_await grpc::dial(endpoint(), &*tls, "127.0.0.1", o);
  }

 private:
  std::string dir_;
  std::string error_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
};

// Runs `f(io)` (a coroutine) on a fresh single-threaded io_context until it completes.
template <typename F>
auto run_test(F&& f) {
  asio::io_context io(1);
  return run_coro(io, f(io));
}

inline grpc::CallOptions call_options(const std::string& token = "") {
  grpc::CallOptions o;
  o.timeout = 10s;
  if (!token.empty()) o.metadata.push_back({"authorization", "Bearer " + token});
  o.metadata.push_back({"clusterid", "Kubernetes"});
  return o;
}

inline envoy::service::discovery::v3::DeltaDiscoveryRequest subscribe(
    const std::string& type, std::map<std::string, std::string> initial_versions = {}) {
  envoy::service::discovery::v3::DeltaDiscoveryRequest r;
  r.set_type_url(type);
  r.mutable_node()->set_id("ztunnel~10.0.0.9~ztunnel-abc.istio-system~istio-system.svc.cluster.local");
  for (auto& [k, v] : initial_versions) (*r.mutable_initial_resource_versions())[k] = v;
  return r;
}

inline envoy::service::discovery::v3::DeltaDiscoveryRequest ack(const std::string& type, const std::string& nonce,
                                                                std::string nack_message = "") {
  envoy::service::discovery::v3::DeltaDiscoveryRequest r;
  r.set_type_url(type);
  r.set_response_nonce(nonce);
  if (!nack_message.empty()) r.mutable_error_detail()->set_message(nack_message);
  return r;
}

}  // namespace ambient::test::istiod
