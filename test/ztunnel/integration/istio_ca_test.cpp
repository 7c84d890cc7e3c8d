// A ztunnel pair whose certificates AND state come from fake-istiod (CA_ADDRESS + XDS_ADDRESS): the
// Istio CA path end to end, rotation under load, and a CA that refuses at renewal.
#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>

#include "common/base/log.h"
#include "common/tls/ca.h"
#include "common/tls/pki.h"
#include "common/tls/tls_context.h"
#include "common/tls/tls_stream.h"
#include "test/support/fake_istiod.h"
#include "test/support/run_coro.h"
#include "test/ztunnel/support/mesh_clients.h"
#include "test/ztunnel/support/ztunnel_pair.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

std::string dump(const ztunnel::App& app) { return http_get(app.admin_endpoint(), "/config_dump"); }

// The serialNumber of the first certificate in a config dump ("" when there is none).
std::string serial(const ztunnel::App& app) {
  const std::string d = dump(app);
  const auto p = d.find("\"serialNumber\": \"");
  if (p == std::string::npos) return {};
  const auto b = p + 17;
  return d.substr(b, d.find('"', b) - b);
}

struct CaMesh {
  istiod::IstiodEnv istiod;
  std::string dir = make_temp_dir();
  EchoApp echo{"127.0.0.3"};
  AccessLogCapture log;
  std::unique_ptr<RunningZtunnel> server, client;

  explicit CaMesh(std::vector<std::string> flags) {
    (void)ambient::log::set_level("warn");
    telemetry::access_logger()->set_level(spdlog::level::debug);
    std::ofstream(dir + "/token") << "s3cret\n";
    istiod.write_config("mesh.yaml", two_workloads_yaml(echo.port()));
    flags.insert(flags.begin(), {"--token", "s3cret"});
    REQUIRE_MESSAGE(istiod.start(flags), istiod.error());
    server = std::make_unique<RunningZtunnel>(config("127.0.0.3", "demo/server/server"));
    client = std::make_unique<RunningZtunnel>(config("127.0.0.2", "demo/client/client"));
    REQUIRE(wait_for([&] { return http_get(server->app->readiness_endpoint(), "/healthz/ready").starts_with("HTTP/1.1 200"); }, 10s));
    REQUIRE(wait_for([&] { return http_get(client->app->readiness_endpoint(), "/healthz/ready").starts_with("HTTP/1.1 200"); }, 10s));
  }
  ztunnel::Config config(const char* ip, const char* workload_info) {
    auto c = pair_config("", "", ip, workload_info, 1);
    c.local_config_path.clear();
    c.cacerts_dir.clear();
    c.control_plane.xds_address = c.control_plane.ca_address = fmt::format("https://127.0.0.1:{}", istiod.port());
    c.control_plane.xds_root_ca = c.control_plane.ca_root_ca = istiod.file("ca.pem");
    c.control_plane.auth_token_path = dir + "/token";
    c.secret_ttl = std::chrono::hours(1);  // fake-istiod's --cert-ttl-s caps it
    return c;
  }
  ~CaMesh() {
    client.reset();
    server.reset();
    std::filesystem::remove_all(dir);
  }
};

asio::awaitable<bool> echo_ok(net::TcpStream& s, std::string text) {
  if (!co_await s.write_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size())))
    co_return false;
  std::string got;
  std::uint8_t buf[256];
  while (got.size() < text.size()) {
    auto n = co_await s.read_some(buf);
    if (!n || *n == 0) co_return false;
    got.append(reinterpret_cast<const char*>(buf), *n);
  }
  co_return got == text;
}

// The serial of the certificate the server ztunnel presents to a NEW TLS connection on 15008, seen by a
// probe client holding a certificate from the same CA (fake-istiod's key, loaded as cacerts).
std::string presented_serial(const istiod::IstiodEnv& env, const std::string& scratch) {
  std::filesystem::create_directories(scratch);
  std::filesystem::copy_file(env.file("ca.pem"), scratch + "/ca-cert.pem", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(env.file("ca.key"), scratch + "/ca-key.pem", std::filesystem::copy_options::overwrite_existing);
  auto ca = tls::CertificateAuthority::load_cacerts_dir(scratch);
  REQUIRE_MESSAGE(ca, (ca ? "" : ca.error().context));
  auto key = ca->issue(*tls::parse_spiffe("spiffe://cluster.local/ns/demo/sa/probe"), std::chrono::hours(1));
  REQUIRE(key);
  auto ctx = tls::make_client_context(*key);
  REQUIRE(ctx);
  asio::io_context io;
  return run_coro(io, [&]() -> asio::awaitable<std::string> {
    auto tcp = co_await net::connect({asio::ip::make_address("127.0.0.3"), 15008}, 5s);
    if (!tcp) co_return std::string("connect failed");
    auto ssl = tls::new_client_ssl(ctx->get(), {"spiffe://cluster.local/ns/demo/sa/server"});
    if (!ssl) co_return std::string("ssl failed");
    tls::TlsStream stream(std::move(tcp->socket()), std::move(*ssl));
    auto h = co_await stream.handshake(5s);
    if (!h) co_return "handshake failed: " + h.error().context;
    bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(stream.ssl()));
    co_return peer ? tls::serial_hex(peer.get()) : std::string("no peer certificate");
  }());
}

}  // namespace

TEST_SUITE("ztunnel/integration/istio-ca") {
  TEST_CASE("certificates from the Istio CA; rotation at half-life with 100 open tunnels drops none; new TLS uses the new one") {
    // fake-istiod backdates by 60 s: a 70 s certificate lives [-60 s, +70 s], so its half-life is ~5 s away.
    CaMesh mesh({"--cert-ttl-s", "70"});
    const std::string server_serial = serial(*mesh.server->app);
    REQUIRE_FALSE(server_serial.empty());
    CHECK(mesh.istiod.status_value("csrs_signed") >= 2);
    CHECK(dump(*mesh.server->app).find("fake-istiod-test-ca") == std::string::npos);  // sanity: serials, not names
    asio::io_context io;
    std::vector<net::TcpStream> tunnels;
    run_coro(io, [&]() -> asio::awaitable<void> {
      for (int i = 0; i < 100; ++i) {
        auto c = co_await socks_connect("127.0.0.3", mesh.echo.port());
        REQUIRE(c);
        REQUIRE(c->first == 0);
        REQUIRE(co_await echo_ok(c->second, "before " + std::to_string(i)));
        tunnels.push_back(std::move(c->second));
      }
    }());
    REQUIRE(wait_for([&] { const auto s = serial(*mesh.server->app); return !s.empty() && s != server_serial; }, 20s));
    const std::string rotated = serial(*mesh.server->app);
    int ok = 0;
    run_coro(io, [&]() -> asio::awaitable<void> {
      for (std::size_t i = 0; i < tunnels.size(); ++i)
        if (co_await echo_ok(tunnels[i], "after " + std::to_string(i))) ++ok;
      auto fresh = co_await socks_connect("127.0.0.3", mesh.echo.port());
      REQUIRE(fresh);
      CHECK(fresh->first == 0);
      CHECK(co_await echo_ok(fresh->second, "new after rotation"));
    }());
    CHECK(ok == 100);
    const std::string presented = presented_serial(mesh.istiod, mesh.dir + "/probe");
    CHECK(presented == serial(*mesh.server->app));
    CHECK(presented != server_serial);
    CHECK_FALSE(rotated.empty());
  }

  TEST_CASE("CA refusing at renewal: the valid certificate stays, failures are counted; after expiry new tunnels fail closed") {
    // A 4 s certificate (backdated 60 s) arrives past its half-life: it is renewed every min_refresh (1 s)
    // while the CA signs, and expires 4 s after the last signing once it refuses.
    CaMesh mesh({"--cert-ttl-s", "4"});
    const std::string first = serial(*mesh.client->app);
    REQUIRE_FALSE(first.empty());
    REQUIRE(mesh.istiod.admin("POST", "/fault?refuse-csr=1").status == 200);
    // Renewals fail; the certificate in use stays until it expires.
    CHECK(wait_for([&] { return mesh.istiod.status_value("csrs_refused") >= 2; }, 10s));
    CHECK_FALSE(serial(*mesh.client->app).empty());  // two refusals (~1.5 s) in: still the valid certificate
    const std::string metrics = http_get(mesh.client->app->metrics_endpoint());
    CHECK(metrics.find("ztunnel_certificate_fetch_failures_total") != std::string::npos);
    CHECK(wait_for([&] { return serial(*mesh.client->app).empty(); }, 15s));  // expired: removed from the bundle
    asio::io_context io;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto c = co_await socks_connect("127.0.0.3", mesh.echo.port());
      REQUIRE(c);
      CHECK(c->first != 0);  // no certificate: the tunnel is refused, not opened without identity
    }());
    const std::string log = mesh.log.wait_for("no certificate for spiffe://cluster.local/ns/demo/sa/client");
    INFO(log);
    CHECK(log.find("no certificate for spiffe://cluster.local/ns/demo/sa/client") != std::string::npos);
    // The CA comes back: a certificate is issued again and traffic flows.
    REQUIRE(mesh.istiod.admin("POST", "/fault?refuse-csr=0").status == 200);
    CHECK(wait_for([&] { return !serial(*mesh.client->app).empty(); }, 20s));
  }

  TEST_CASE("wrong token for the CA: no certificate, not ready, and the log names the cause") {
    istiod::IstiodEnv istiod;
    REQUIRE_MESSAGE(istiod.start({"--token", "s3cret"}), istiod.error());
    const std::string dir = make_temp_dir();
    std::ofstream(dir + "/mesh.yaml") << two_workloads_yaml(9);
    std::ofstream(dir + "/token") << "wrong\n";
    // Capture the process log (the identity manager's warnings) while this ztunnel runs.
    auto out = std::make_shared<CaptureSink>();  // read under its lock while the ztunnel's threads log
    auto previous = spdlog::default_logger();
    auto capture = std::make_shared<spdlog::logger>("capture", out);
    capture->set_level(spdlog::level::warn);
    spdlog::set_default_logger(capture);
    {
      auto c = pair_config(dir + "/mesh.yaml", "", "127.0.0.2", "demo/client/client", 1);
      c.cacerts_dir.clear();
      c.control_plane.ca_address = fmt::format("https://127.0.0.1:{}", istiod.port());
      c.control_plane.ca_root_ca = istiod.file("ca.pem");
      c.control_plane.auth_token_path = dir + "/token";
      RunningZtunnel zt(std::move(c));
      CHECK(wait_for([&] { return out->text().find("UNAUTHENTICATED: authorization token wrong") != std::string::npos; }, 5s));
      const std::string ready = http_get(zt.app->readiness_endpoint(), "/healthz/ready");
      CHECK_FALSE(ready.starts_with("HTTP/1.1 200"));
      CHECK(ready.find("workload certificate") != std::string::npos);
      CHECK(serial(*zt.app).empty());
    }
    spdlog::set_default_logger(previous);
    INFO(out->text());
    CHECK(out->text().find("spiffe://cluster.local/ns/demo/sa/client") != std::string::npos);
    std::filesystem::remove_all(dir);
  }
}
