// common/grpc/channel_tls + channel: gRPC over TLS to a real grpc++ server (grpc-test-server in its own
// process, OpenSSL) from our client (BoringSSL), certificates made by the openssl CLI at test time.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include <boost/asio/io_context.hpp>

#include "test/common/grpc/grpc_fixture.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

constexpr const char* kUnary = "/ambient.test.Echo/Unary";
constexpr const char* kBidi = "/ambient.test.Echo/BidiStream";

// Certificates plus a TLS grpc-test-server using them.
struct TlsEnv {
  ScratchDir dir;
  std::string cert_error = make_test_certs(dir);
  std::unique_ptr<GrpcTestServer> server;

  explicit TlsEnv(bool require_client_cert = false) {
    if (!cert_error.empty()) return;
    std::vector<std::string> args = {"--tls-cert", dir.file("server.pem"), "--tls-key", dir.file("server.key")};
    if (require_client_cert) {
      args.push_back("--client-ca");
      args.push_back(dir.file("ca.pem"));
    }
    server = std::make_unique<GrpcTestServer>(dir, args);
  }
  bool ready() const { return cert_error.empty() && server && server->started(); }
  std::string why() const { return !cert_error.empty() ? "openssl failed: " + cert_error : server->error(); }

  Result<grpc::ChannelTls> channel(const std::string& roots = "ca.pem", bool client_cert = false) const {
    grpc::ChannelTlsOptions o;
    o.roots_pem = read_text(dir.file(roots));
    if (client_cert) {
      o.client_chain_pem = read_text(dir.file("client.pem"));
      o.client_key_pem = read_text(dir.file("client.key"));
    }
    return grpc::ChannelTls::create(o);
  }
};

asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial_tls(const GrpcTestServer& server, const grpc::ChannelTls& tls,
                                                               std::string name) {
  grpc::DialOptions o;
  o.settings = quiet_settings();
  o.connect_timeout = 5s;
  co_return co_await grpc::dial(server.endpoint(), &tls, std::move(name), o);
}

// One unary and one 3-message bidi call over `s`; returns the unary reply.
asio::awaitable<Result<EchoReply>> unary_and_bidi(std::shared_ptr<h2::Session> s) {
  auto bytes = co_await grpc::unary(s, kUnary, serialize(echo_request("over tls")), {});
  if (!bytes) co_return bytes.error();
  EchoReply reply;
  if (!reply.ParseFromString(*bytes)) co_return make_error(ErrorKind::Parse, "EchoReply");
  auto call = co_await grpc::start_call(s, kBidi, {});
  if (!call) co_return call.error();
  for (int i = 1; i <= 3; ++i) {
    if (auto w = co_await grpc::send_message(*call, echo_request("b" + std::to_string(i))); !w) co_return w.error();
    auto m = co_await grpc::recv_message<EchoReply>(*call);
    if (!m) co_return m.error();
    if (!*m || (*m)->message() != "b" + std::to_string(i) || (*m)->sequence() != i)
      co_return make_error(ErrorKind::Internal, "bidi reply out of order");
  }
  if (auto c = co_await call->close_send(); !c) co_return c.error();
  auto end = co_await call->recv();
  if (!end) co_return end.error();
  if (end->has_value()) co_return make_error(ErrorKind::Internal, "extra bidi reply");
  if (h2::find_header(call->trailers(), "x-echo-trailer") != "done")
    co_return make_error(ErrorKind::Internal, "bidi trailer missing");
  co_return reply;
}

std::string map_get(const EchoReply& r, const std::string& key) {
  auto it = r.metadata().find(key);
  return it == r.metadata().end() ? std::string("<absent>") : it->second;
}

}  // namespace

TEST_SUITE("common/grpc/channel_tls") {
  TEST_CASE("TLS to grpc++: server verified by IP SAN and by DNS SAN, unary and bidi") {
    TlsEnv env;
    REQUIRE_MESSAGE(env.ready(), env.why());
    auto tls = env.channel();
    REQUIRE_MESSAGE(tls, (tls ? "" : tls.error().message()));
    for (const char* name : {"127.0.0.1", "localhost"}) {
      CAPTURE(name);
      auto reply = run_test([&](asio::io_context&) -> asio::awaitable<Result<EchoReply>> {
        auto s = co_await dial_tls(*env.server, *tls, name);
        if (!s) co_return s.error();
        co_return co_await unary_and_bidi(*s);
      });
      REQUIRE_MESSAGE(reply, (reply ? "" : reply.error().message()));
      CHECK(reply->message() == "over tls");
      // Default :authority is the verified server name and port, as gRPC clients send their target.
      CHECK(map_get(*reply, ":authority") == std::string(name) + ":" + std::to_string(env.server->port()));
      CHECK(map_get(*reply, ":peer-uri-san") == "<absent>");  // no client certificate was sent
    }
  }

  TEST_CASE("wrong root CA: the handshake fails and says why") {
    TlsEnv env;
    REQUIRE_MESSAGE(env.ready(), env.why());
    auto tls = env.channel("other-ca.pem");
    REQUIRE(tls);
    auto s = run_test([&](asio::io_context&) -> asio::awaitable<Result<std::shared_ptr<h2::Session>>> {
      co_return co_await dial_tls(*env.server, *tls, "127.0.0.1");
    });
    REQUIRE_FALSE(s);
    CHECK(s.error().kind == ErrorKind::TlsHandshake);
    INFO(s.error().message());
    CHECK(s.error().context.find("CERTIFICATE_VERIFY_FAILED") != std::string::npos);
    CHECK(s.error().context.find("unable to get local issuer certificate") != std::string::npos);
    CHECK(s.error().context.find("127.0.0.1") != std::string::npos);
  }

  TEST_CASE("server name not in the certificate: the handshake fails") {
    TlsEnv env;
    REQUIRE_MESSAGE(env.ready(), env.why());
    auto tls = env.channel();
    REQUIRE(tls);
    for (const char* name : {"istiod.istio-system.svc", "127.0.0.2"}) {
      CAPTURE(name);
      auto s = run_test([&](asio::io_context&) -> asio::awaitable<Result<std::shared_ptr<h2::Session>>> {
        co_return co_await dial_tls(*env.server, *tls, name);
      });
      REQUIRE_FALSE(s);
      CHECK(s.error().kind == ErrorKind::TlsHandshake);
      INFO(s.error().message());
      CHECK(s.error().context.find("mismatch") != std::string::npos);
      CHECK(s.error().context.find(name) != std::string::npos);
    }
  }

  TEST_CASE("mTLS: the server requires and verifies our client certificate") {
    TlsEnv env(/*require_client_cert=*/true);
    REQUIRE_MESSAGE(env.ready(), env.why());
    auto with_cert = env.channel("ca.pem", /*client_cert=*/true);
    REQUIRE_MESSAGE(with_cert, (with_cert ? "" : with_cert.error().message()));
    auto reply = run_test([&](asio::io_context&) -> asio::awaitable<Result<EchoReply>> {
      auto s = co_await dial_tls(*env.server, *with_cert, "localhost");
      if (!s) co_return s.error();
      co_return co_await unary_and_bidi(*s);
    });
    REQUIRE_MESSAGE(reply, (reply ? "" : reply.error().message()));
    CHECK(map_get(*reply, ":peer-uri-san") == "spiffe://cluster.local/ns/default/sa/ztunnel");

    // Without a certificate the server refuses us (in TLS 1.3 its alert may only arrive after our
    // handshake completed, so the failure shows on the handshake or on the first call).
    auto without = env.channel();
    REQUIRE(without);
    auto failed = run_test([&](asio::io_context&) -> asio::awaitable<Result<std::string>> {
      auto s = co_await dial_tls(*env.server, *without, "localhost");
      if (!s) co_return s.error();
      grpc::CallOptions o;
      o.timeout = 5s;
      co_return co_await grpc::unary(*s, kUnary, serialize(echo_request("x")), o);
    });
    REQUIRE_FALSE(failed);
    INFO(failed.error().message());
    CHECK(failed.error().kind != ErrorKind::Timeout);
  }

  TEST_CASE("ChannelTls refuses bad material and unnamed servers") {
    ScratchDir dir;
    REQUIRE(make_test_certs(dir).empty());
    grpc::ChannelTlsOptions o;
    o.roots_pem = "not a pem";
    auto bad_roots = grpc::ChannelTls::create(o);
    REQUIRE_FALSE(bad_roots);
    CHECK(bad_roots.error().kind == ErrorKind::InvalidArgument);

    o.roots_pem = read_text(dir.file("ca.pem"));
    o.client_chain_pem = read_text(dir.file("client.pem"));
    auto no_key = grpc::ChannelTls::create(o);
    REQUIRE_FALSE(no_key);
    CHECK(no_key.error().kind == ErrorKind::InvalidArgument);

    o.client_key_pem = read_text(dir.file("server.key"));  // not the client certificate's key
    auto mismatch = grpc::ChannelTls::create(o);
    REQUIRE_FALSE(mismatch);
    CHECK(mismatch.error().context.find("does not match") != std::string::npos);

    auto files = grpc::ChannelTls::from_files(dir.file("ca.pem"), dir.file("client.pem"), dir.file("client.key"));
    REQUIRE_MESSAGE(files, (files ? "" : files.error().message()));
    CHECK_FALSE(files->new_ssl(""));
    CHECK(files->new_ssl("[::1]"));
    CHECK(files->new_ssl("istiod.istio-system.svc"));
    auto missing = grpc::ChannelTls::from_files(dir.file("nope.pem"));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);
  }
}
