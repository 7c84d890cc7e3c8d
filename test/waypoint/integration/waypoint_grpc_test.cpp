// gRPC through the waypoint: a real grpc++ server (grpc-test-server, its own process) behind ztunnel, our gRPC
// client (HTTP/2 prior knowledge) through the client's ztunnel, the waypoint routing by GRPCRoute and
// authorizing by AuthorizationPolicy:
//   client -> ztunnel -> HBONE -> waypoint (HTTP/2 sessions both sides) -> HBONE -> ztunnel -> grpc++ server
// Unary, server streaming and bidirectional streaming calls pass with their trailers (grpc-status, messages in
// order, metadata added by the route); a denied method gets PERMISSION_DENIED from the waypoint; a server error
// status passes through unchanged.
#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "common/h2/session.h"
#include "common/h2/transport.h"
#include "test/common/grpc/grpc_fixture.h"
#include "test/waypoint/support/grpc_calls.h"
#include "test/waypoint/support/waypoint_mesh.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

constexpr const char* kGrpcConfig = R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: grpc-echo
  namespace: demo
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: grpc-echo
  rules:
  - matches:
    - method:
        service: ambient.test.Echo
        method: Unary
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add:
        - name: x-grpc-route
          value: unary-rule
    backendRefs:
    - name: grpc-echo
      port: 50051
  - backendRefs:
    - name: grpc-echo
      port: 50051
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: no-server-stream
  namespace: demo
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: grpc-echo
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/ambient.test.Echo/ServerStream"]
)";

asio::awaitable<void> run_session(std::shared_ptr<h2::Session> s) { (void)co_await s->run(); }

// An HTTP/2 (h2c) client session to the grpc-echo service VIP through the client's ztunnel (SOCKS5).
asio::awaitable<Result<std::shared_ptr<h2::Session>>> grpc_session() {
  auto c = co_await socks_connect("127.10.0.25", 50051);
  if (!c) co_return std::move(c).error();
  if (c->first != 0) co_return errorf(ErrorKind::ConnectRefused, "SOCKS5 reply {}", c->first);
  auto ex = co_await asio::this_coro::executor;
  h2::Settings settings;
  settings.ping_interval = 0ms;
  auto s = h2::Session::client(ex, h2::make_transport(std::move(c->second)), settings, "grpc-echo.demo:50051");
  if (!s) co_return std::move(s).error();
  asio::co_spawn(ex, run_session(*s), asio::detached);
  co_return *s;
}

grpc::CallOptions plain() {
  grpc::CallOptions o;
  o.scheme = "http";
  o.authority = "grpc-echo.demo.svc.cluster.local:50051";
  o.timeout = 10s;
  return o;
}

std::string metadata_of(const EchoReply& r, const std::string& key) {
  const auto it = r.metadata().find(key);
  return it == r.metadata().end() ? std::string() : it->second;
}

}  // namespace

TEST_CASE("waypoint gRPC: unary and streaming calls with trailers through real tunnels; policy and errors") {
  ScratchDir scratch;
  GrpcTestServer server(scratch, {}, "127.0.0.5");
  REQUIRE_MESSAGE(server.started(), server.error());
  MeshOptions o;
  o.grpc_port = server.port();
  o.extra_config = kGrpcConfig;
  Mesh m(o);
  asio::io_context io;

  SUBCASE("unary: the reply, the route's metadata, OK") {
    auto reply = run_coro(io, [](void) -> asio::awaitable<Result<EchoReply>> {
      auto s = co_await grpc_session();
      if (!s) co_return std::move(s).error();
      EchoRequest req;
      req.set_message("hello through the waypoint");
      req.set_payload(std::string(100000, 'p'));
      co_return co_await grpc::unary_message<EchoReply>(*s, "/ambient.test.Echo/Unary", req, plain());
    }());
    REQUIRE_MESSAGE(reply.has_value(), (reply ? std::string() : reply.error().message()));
    CHECK(reply->message() == "hello through the waypoint");
    CHECK(reply->payload().size() == 100000);
    CHECK(metadata_of(*reply, "x-grpc-route") == "unary-rule");
    CHECK(!metadata_of(*reply, "x-request-id").empty());
  }

  SUBCASE("bidirectional streaming: one reply per request, in order, then OK in the trailers") {
    auto got = run_coro(io, [](void) -> asio::awaitable<Result<std::vector<std::int64_t>>> {
      auto s = co_await grpc_session();
      if (!s) co_return std::move(s).error();
      co_return co_await bidi_ping_pong(*s, 5, plain());  // each reply arrives before the next request is sent
    }());
    REQUIRE_MESSAGE(got.has_value(), (got ? std::string() : got.error().message()));
    CHECK(*got == std::vector<std::int64_t>{1, 2, 3, 4, 5});
  }

  SUBCASE("a denied method: PERMISSION_DENIED from the waypoint, nothing reaches the server") {
    auto r = run_coro(io, [](void) -> asio::awaitable<Result<std::optional<EchoReply>>> {
      auto s = co_await grpc_session();
      if (!s) co_return std::move(s).error();
      auto call = co_await grpc::start_call(*s, "/ambient.test.Echo/ServerStream", plain());
      if (!call) co_return std::move(call).error();
      EchoRequest req;
      req.set_repeat(3);
      AMBIENT_CO_TRY(co_await grpc::send_message(*call, req));
      AMBIENT_CO_TRY(co_await call->close_send());
      co_return co_await grpc::recv_message<EchoReply>(*call);
    }());
    REQUIRE(!r);
    CHECK(r.error().kind == ErrorKind::GrpcStatus);
    CHECK(r.error().code == 7);
    CHECK(r.error().context.find("RBAC: access denied") != std::string::npos);
  }

  SUBCASE("a server's error status and message pass through in the trailers") {
    auto r = run_coro(io, [](void) -> asio::awaitable<Result<EchoReply>> {
      auto s = co_await grpc_session();
      if (!s) co_return std::move(s).error();
      EchoRequest req;
      req.set_fail_code(5);
      req.set_fail_message("no such thing");
      co_return co_await grpc::unary_message<EchoReply>(*s, "/ambient.test.Echo/Unary", req, plain());
    }());
    REQUIRE(!r);
    CHECK(r.error().code == 5);
    CHECK(r.error().context.find("no such thing") != std::string::npos);
    REQUIRE(wait_for([&] { return http_get(m.wp->app->metrics_endpoint(), "/metrics").find("grpc_response_status=\"5\"") != std::string::npos; }, 5s));
    CHECK(http_get(m.wp->app->metrics_endpoint(), "/metrics").find("request_protocol=\"grpc\"") != std::string::npos);
  }
}

namespace {

// An HTTPRoute with a request timeout on the gRPC service: over HTTP/2 the deadline also bounds a response that
// is still streaming after its headers.
constexpr const char* kGrpcTimeoutConfig = R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: grpc-echo-timeout
  namespace: demo
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: grpc-echo
  rules:
  - backendRefs:
    - name: grpc-echo
      port: 50051
    timeouts:
      request: 500ms
)";

}  // namespace

TEST_CASE("waypoint HTTP/2: the route timeout cuts a response still streaming at the deadline (flag UT)") {
  ScratchDir scratch;
  GrpcTestServer server(scratch, {}, "127.0.0.5");
  REQUIRE_MESSAGE(server.started(), server.error());
  MeshOptions o;
  o.grpc_port = server.port();
  o.extra_config = kGrpcTimeoutConfig;
  Mesh m(o);
  asio::io_context io;
  // A bidirectional call: the first reply (with the response headers) comes at once, then the client goes quiet
  // while the call stays open. At the route deadline the waypoint resets the call.
  const auto t0 = std::chrono::steady_clock::now();
  auto got = run_coro(io, [](void) -> asio::awaitable<Result<std::string>> {
    auto s = co_await grpc_session();
    if (!s) co_return std::move(s).error();
    auto call = co_await grpc::start_call(*s, "/ambient.test.Echo/BidiStream", plain());
    if (!call) co_return std::move(call).error();
    EchoRequest req;
    req.set_message("first");
    AMBIENT_CO_TRY(co_await grpc::send_message(*call, req));
    auto first = co_await grpc::recv_message<EchoReply>(*call);
    if (!first) co_return std::move(first).error();
    if (!*first) co_return errorf(ErrorKind::Closed, "no first reply");
    auto next = co_await grpc::recv_message<EchoReply>(*call);  // nothing more is sent: only the deadline ends this
    if (!next) co_return std::move(next).error();
    co_return errorf(ErrorKind::Internal, "the call went on past the route timeout");
  }());
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(!got);
  CHECK(got.error().kind != ErrorKind::Internal);  // ended by the reset, not by a reply
  CHECK(took >= 450ms);
  CHECK(took < 3s);
  CHECK(wait_for([&] {
    return http_get(m.wp->app->metrics_endpoint(), "/metrics").find("response_code=\"200\",grpc_response_status=\"\",response_flags=\"UT\"") !=
           std::string::npos;
  }, 5s));
}
