// The waypoint in a mesh on loopback, every hop real: an app speaks HTTP/1.1 through its ztunnel (SOCKS5 front,
// 127.0.0.2) to the `echo` service, whose waypoint (127.0.0.4) routes and authorizes each request and opens
// HBONE to the chosen endpoint's ztunnel (v1 127.0.0.5, v2 127.0.0.6), which delivers to the app (Beast).
//   app -> ztunnel -> HBONE -> waypoint -> HBONE -> ztunnel -> backend v1 | v2
// Routes and the policy are Kubernetes YAML files the waypoint watches.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "test/support/wait.h"
#include "common/net/proxy_protocol.h"
#include "test/waypoint/support/waypoint_mesh.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;

namespace {

std::string first_line(const std::string& body) { return body.substr(0, body.find('\n')); }

}  // namespace

TEST_CASE("waypoint mesh: routing, policy, retries, timeouts, upgrade, telemetry and reload through real tunnels") {
  Mesh m;
  auto c = m.connect();
  REQUIRE(c.ok());

  SUBCASE("header-based route, the route's header filter, x-request-id, keep-alive") {
    auto r = c.request("GET", "/hello?x=1", {{"x-version", "v2"}});
    CHECK(r.status == 200);
    CHECK(first_line(r.body) == "v2 GET /hello?x=1");
    CHECK(r.headers["x-backend"] == "v2");
    CHECK(r.body.find("x-request-id: ") != std::string::npos);  // generated when absent
    CHECK(r.body.find("x-routed-by") == std::string::npos);     // the header rule has no filter
    auto r2 = c.request("GET", "/plain", {{"x-request-id", "req-42"}});
    CHECK(r2.status == 200);
    CHECK(r2.body.find("x-routed-by: waypoint") != std::string::npos);
    CHECK(r2.body.find("x-request-id: req-42") != std::string::npos);  // kept when present
    CHECK(r2.keep_alive);
  }

  SUBCASE("RequestMirror: the mirror backend gets a copy (Host <host>-shadow), the client the primary's answer") {
    auto r = c.request("GET", "/mirror/x");
    CHECK(r.status == 200);
    CHECK(first_line(r.body) == "v1 GET /mirror/x");
    REQUIRE(wait_for([&] { return m.v2->requests() == 1; }, 5s));
    CHECK(m.v2->hosts().at(0) == "echo.demo.svc.cluster.local-shadow");
  }

  SUBCASE("trace context (W3C traceparent, B3) reaches the app unchanged") {
    const std::string tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    auto r = c.request("GET", "/traced", {{"x-version", "v2"}, {"traceparent", tp}, {"x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"},
                                          {"x-b3-spanid", "e457b5a2e4d86bd1"}, {"x-b3-sampled", "1"}});
    CHECK(r.status == 200);
    CHECK(r.body.find("traceparent: " + tp) != std::string::npos);
    CHECK(r.body.find("x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7") != std::string::npos);
    CHECK(r.body.find("x-b3-spanid: e457b5a2e4d86bd1") != std::string::npos);
  }

  SUBCASE("a POST body reaches the app") {
    auto r = c.request("POST", "/submit", {{"x-version", "v2"}}, "payload-123");
    CHECK(r.status == 200);
    CHECK(r.body.find("body: payload-123") != std::string::npos);
  }

  SUBCASE("a chunked response is relayed whole") {
    auto r = c.request("GET", "/chunked", {{"x-version", "v2"}});
    CHECK(r.status == 200);
    CHECK(r.body.find("piece-3") != std::string::npos);
  }

  SUBCASE("a denied path answers 403 RBAC: access denied and the connection carries on") {
    auto r = c.request("GET", "/admin/users");
    CHECK(r.status == 403);
    CHECK(r.body == "RBAC: access denied");
    const auto before = m.v1->requests() + m.v2->requests();
    CHECK(before == 0);  // nothing reached an app
    auto ok = c.request("GET", "/fine", {{"x-version", "v2"}});
    CHECK(ok.status == 200);
  }

  SUBCASE("retries turn a flaky backend's 503s into a success") {
    auto r = c.request("GET", "/flaky");
    CHECK(r.status == 200);
    CHECK(first_line(r.body) == "v1 GET /flaky");
    CHECK(m.v1->requests() == 3);  // two 503s retried, then the 200
  }

  SUBCASE("retries stop at the budget: the last 503 is forwarded") {
    auto r = c.request("GET", "/status/503", {{"x-version", "v2"}});
    CHECK(r.status == 503);
    CHECK(m.v2->requests() == 3);  // Istio's default: 2 retries
  }

  SUBCASE("a slow backend gives 504 at the route timeout") {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.request("GET", "/delay/2000");
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(r.status == 504);
    CHECK(took >= 280ms);
    CHECK(took < 1500ms);
  }

  SUBCASE("the route timeout also bounds the response body: a body still streaming at the deadline is cut (UT)") {
    boost::beast::http::request<boost::beast::http::empty_body> req(boost::beast::http::verb::get, "/delay/3000/body", 11);
    req.set(boost::beast::http::field::host, "echo");
    boost::system::error_code ec;
    const auto t0 = std::chrono::steady_clock::now();
    boost::beast::http::write(c.socket(), req, ec);
    REQUIRE(!ec);
    boost::beast::http::response_parser<boost::beast::http::string_body> p;
    boost::beast::http::read_header(c.socket(), c.buffer(), p, ec);
    REQUIRE(!ec);
    CHECK(p.get().result_int() == 200);  // the head went out before the deadline
    boost::beast::http::read(c.socket(), c.buffer(), p, ec);
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(ec);  // the body never completes: the connection is closed at the deadline
    CHECK_FALSE(p.is_done());
    CHECK(took >= 280ms);
    CHECK(took < 2000ms);
    CHECK(wait_for([&] {
      const std::string metrics = http_get(m.wp->app->metrics_endpoint(), "/metrics");
      return metrics.find("response_code=\"200\",grpc_response_status=\"\",response_flags=\"UT\"") != std::string::npos;
    }, 5s));
  }

  SUBCASE("WebSocket upgrade passes through, then bytes flow both ways") {
    const std::string msg = "frames of a websocket, as opaque bytes";
    const auto ws = c.websocket_echo(msg, {{"x-version", "v2"}});
    CHECK(ws.status == 101);
    CHECK(ws.upgrade == "websocket");
    CHECK(ws.read_ok);
    CHECK(ws.echoed == msg);
  }

  SUBCASE("a 90/10 split over 2000 requests, then a reload to 0/100 and a bad file that is refused") {
    int v1 = 0, v2 = 0;
    for (int i = 0; i < 2000; ++i) {
      auto r = c.request("GET", "/split");
      REQUIRE(r.status == 200);
      (r.headers["x-backend"] == "v1" ? v1 : v2)++;
    }
    // Binomial(2000, 0.9): mean 1800, sd 13.4; six sd either way.
    CHECK(v1 > 1720);
    CHECK(v1 < 1880);
    CHECK(v1 + v2 == 2000);

    write_file(m.routes, routes_yaml(0, 100));
    REQUIRE(wait_for([&] { return http_get(m.wp->app->admin_endpoint(), "/config_dump").find("\"reloads\": 1,") != std::string::npos; }, 5s));
    for (int i = 0; i < 50; ++i) CHECK(c.request("GET", "/split").headers["x-backend"] == "v2");

    // A broken file keeps the previous config, and says where and why.
    write_file(m.routes, routes_yaml(0, 100) + "\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: bad\nspec:\n  rules:\n  - backendRefs:\n    - name: x\n      port: 80\n      weight: -1\n");
    REQUIRE(wait_for([&] { return http_get(m.wp->app->admin_endpoint(), "/config_dump").find("routes.yaml:") != std::string::npos; }, 5s));
    const std::string dump = http_get(m.wp->app->admin_endpoint(), "/config_dump");
    CHECK(dump.find("weight") != std::string::npos);
    CHECK(dump.find("\"reloadFailures\": 1") != std::string::npos);
    for (int i = 0; i < 20; ++i) CHECK(c.request("GET", "/split").headers["x-backend"] == "v2");
  }

  SUBCASE("Istio request metrics with reporter=waypoint, and /config_dump shows routes and policies") {
    CHECK(c.request("GET", "/admin").status == 403);
    CHECK(c.request("GET", "/x", {{"x-version", "v2"}}).status == 200);
    // A request is recorded once its response has gone out: wait for both records.
    std::string metrics;
    CHECK(wait_for([&] {
      metrics = http_get(m.wp->app->metrics_endpoint(), "/metrics");
      return metrics.find("destination_service=\"echo-v2.demo.svc.cluster.local\"") != std::string::npos &&
             metrics.find("response_code=\"403\"") != std::string::npos;
    }, 5s));
    CHECK(metrics.find("istio_requests_total{reporter=\"waypoint\"") != std::string::npos);
    CHECK(metrics.find("response_code=\"403\"") != std::string::npos);
    CHECK(metrics.find("response_flags=\"RBAC\"") != std::string::npos);
    CHECK(metrics.find("destination_service=\"echo-v2.demo.svc.cluster.local\"") != std::string::npos);
    CHECK(metrics.find("source_principal=\"spiffe://cluster.local/ns/demo/sa/client\"") != std::string::npos);
    CHECK(metrics.find("istio_request_duration_milliseconds_bucket") != std::string::npos);
    const std::string dump = http_get(m.wp->app->admin_endpoint(), "/config_dump");
    CHECK(dump.find("\"kind\": \"HTTPRoute\", \"namespace\": \"demo\", \"name\": \"echo\"") != std::string::npos);
    CHECK(dump.find("\"name\": \"deny-admin\", \"action\": \"DENY\"") != std::string::npos);
    CHECK(dump.find("spiffe://cluster.local/ns/demo/sa/waypoint") != std::string::npos);
  }
}

TEST_CASE("waypoint sandwich binding: ztunnel terminates HBONE and hands tunnels over PROXY protocol v2") {
  MeshOptions o;
  o.sandwich = true;
  Mesh m(o);
  auto c = m.connect();
  REQUIRE(c.ok());
  // Routing and policy work on what the PROXY header carried: the original destination and the source identity.
  auto r = c.request("GET", "/sandwich", {{"x-version", "v2"}});
  CHECK(r.status == 200);
  CHECK(first_line(r.body) == "v2 GET /sandwich");
  CHECK(c.request("GET", "/admin").status == 403);
  CHECK(wait_for([&] {
    return http_get(m.wp->app->metrics_endpoint(), "/metrics").find("source_principal=\"spiffe://cluster.local/ns/demo/sa/client\"") !=
           std::string::npos;
  }, 5s));
  SUBCASE("a PROXY header without the source identity (TLV 0xD0) is refused: no request reaches an app") {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket s(io);
    boost::system::error_code ec;
    s.connect({boost::asio::ip::make_address("127.0.0.1"), 15088}, ec);
    REQUIRE(!ec);
    const std::string no_identity = net::encode_proxy_v2({boost::asio::ip::make_address("127.0.0.2"), 1},
                                                         {boost::asio::ip::make_address("127.10.0.20"), 80}) +
                                    "GET / HTTP/1.1\r\nHost: echo\r\nx-version: v2\r\n\r\n";
    boost::asio::write(s, boost::asio::buffer(no_identity), ec);
    std::array<char, 256> buf{};
    const std::size_t n = s.read_some(boost::asio::buffer(buf), ec);
    CHECK((ec || n == 0));  // closed without an answer
    CHECK(m.v2->requests() == 1);
  }
}
