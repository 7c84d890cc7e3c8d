#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "common/admin/http_server.h"
#include "common/admin/logging_handler.h"
#include "common/admin/readiness.h"
#include "common/base/log.h"
#include "common/net/tcp_stream.h"
#include "common/telemetry/metrics.h"
#include "common/telemetry/tcp_metrics.h"
#include "test/support/run_coro.h"

using namespace ambient;
using namespace ambient::admin;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
const tcp::endpoint kLoopback{asio::ip::make_address("127.0.0.1"), 0};

struct Reply {
  int status = 0;
  std::string content_type;
  std::string allow;
  std::string body;
  bool keep_alive = false;
};

awaitable<beast::tcp_stream> dial(tcp::endpoint ep) {
  auto s = co_await net::connect(ep, 5s);
  REQUIRE(s);
  beast::tcp_stream stream(std::move(s->socket()));
  stream.expires_after(5s);  // no test waits longer than this for the server
  co_return stream;
}

awaitable<Reply> read_reply(beast::tcp_stream& s) {
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  const auto ec = std::get<0>(co_await http::async_read(s, buf, res, kUseTuple));
  REQUIRE_MESSAGE(!ec, ec.message());
  Reply r;
  r.status = static_cast<int>(res.result_int());
  r.content_type = std::string(res[http::field::content_type]);
  r.allow = std::string(res[http::field::allow]);
  r.body = res.body();
  r.keep_alive = res.keep_alive();
  co_return r;
}

awaitable<Reply> request(beast::tcp_stream& s, http::verb method, std::string target, std::string accept = "",
                         unsigned version = 11) {
  http::request<http::string_body> req{method, target, version};
  req.set(http::field::host, "localhost");
  if (!accept.empty()) req.set(http::field::accept, accept);
  req.prepare_payload();
  const auto ec = std::get<0>(co_await http::async_write(s, req, kUseTuple));
  REQUIRE_MESSAGE(!ec, ec.message());
  co_return co_await read_reply(s);
}

awaitable<void> write_raw(beast::tcp_stream& s, std::string bytes) {
  const auto ec = std::get<0>(co_await asio::async_write(s.socket(), asio::buffer(bytes), kUseTuple));
  REQUIRE_MESSAGE(!ec, ec.message());
}

// True when the server has closed the connection (EOF, or a reset after it).
awaitable<bool> closed_by_server(beast::tcp_stream& s) {
  char c = 0;
  auto [ec, n] = co_await s.async_read_some(asio::buffer(&c, 1), kUseTuple);
  co_return ec == asio::error::eof || ec == asio::error::connection_reset;
}

awaitable<void> wait_until(std::function<bool()> cond) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (int i = 0; i < 200 && !cond(); ++i) {
    t.expires_after(5ms);
    co_await t.async_wait(kUseTuple);
  }
}

// The server the tests talk to: /metrics (the registry), /logging, /healthz/ready, and two test routes.
struct Harness {
  asio::io_context io{1};
  telemetry::Registry registry;
  Readiness readiness;
  std::unique_ptr<HttpServer> server;
  tcp::endpoint ep;

  explicit Harness(HttpServerOptions opts = {}) {
    server = std::make_unique<HttpServer>(io.get_executor(), std::move(opts));
    server->route("GET", "/metrics", [this](const Request& req) {
      const auto format = telemetry::negotiate_format(req.header("accept"));
      Response r;
      r.body = registry.render(format);
      r.content_type = std::string(telemetry::content_type(format));
      return r;
    });
    add_logging_route(*server);
    add_readiness_route(*server, readiness);
    server->route("POST", "/echo", [](const Request& req) {
      return Response::text(200, req.body + "|" + req.query_param("x").value_or("-"));
    });
    server->route("GET", "/echo", [](const Request& req) { return Response::text(200, req.query); });
    server->route("GET", "/boom", [](const Request&) -> Response { throw std::runtime_error("kaboom"); });
    auto bound = server->listen(kLoopback);
    REQUIRE(bound);
    ep = *bound;
  }
  ~Harness() { server.reset(); }  // before io: the listener belongs to it
};

}  // namespace

TEST_SUITE("common/admin/http_server") {
  TEST_CASE("query parameters are form-decoded; header lookup is case-insensitive") {
    Request q;
    q.query = "level=a%3Db%2Cc&reset&x=1+2&bad=%zz";
    q.headers.emplace_back("accept", "text/plain");
    CHECK(q.query_param("level") == "a=b,c");
    CHECK(q.query_param("reset") == "");
    CHECK(q.query_param("x") == "1 2");
    CHECK(q.query_param("bad") == "%zz");
    CHECK_FALSE(q.query_param("nope").has_value());
    CHECK(q.header("Accept") == "text/plain");
    CHECK(q.header("content-type").empty());
  }

  TEST_CASE("GET /metrics: 200, Prometheus text 0.0.4 or OpenMetrics by Accept") {
    Harness h;
    telemetry::IstioTcpMetrics tcp_metrics(h.registry);
    telemetry::TcpMetricsRecorder rec(tcp_metrics, h.registry.add_shard("w0"));
    rec.on_bytes(rec.on_open(telemetry::TcpLabels{}), 10, 20);
    test::run_coro(h.io, [&]() -> awaitable<void> {
      auto s = co_await dial(h.ep);
      const Reply text = co_await request(s, http::verb::get, "/metrics");
      CHECK(text.status == 200);
      CHECK(text.content_type == "text/plain; version=0.0.4; charset=utf-8");
      CHECK(text.body.find("# TYPE istio_tcp_connections_opened_total counter\n") != std::string::npos);
      CHECK(text.body.find("istio_tcp_sent_bytes_total{reporter=\"source\",") != std::string::npos);
      const Reply om = co_await request(s, http::verb::get, "/metrics",
                                        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
      CHECK(om.status == 200);
      CHECK(om.content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8");
      CHECK(om.body.find("# TYPE istio_tcp_connections_opened counter\n") != std::string::npos);
      CHECK(om.body.ends_with("# EOF\n"));
    }());
  }

  TEST_CASE("unknown path 404, wrong method 405 with Allow, handler exception 500, query reaches handler") {
    Harness h;
    test::run_coro(h.io, [&]() -> awaitable<void> {
      auto s = co_await dial(h.ep);
      const Reply missing = co_await request(s, http::verb::get, "/nope?x=1");
      CHECK(missing.status == 404);
      CHECK(missing.keep_alive);
      const Reply wrong = co_await request(s, http::verb::delete_, "/metrics");
      CHECK(wrong.status == 405);
      CHECK(wrong.allow == "GET");
      const Reply both = co_await request(s, http::verb::put, "/echo");
      CHECK(both.status == 405);
      CHECK(both.allow == "GET, POST");
      const Reply boom = co_await request(s, http::verb::get, "/boom");
      CHECK(boom.status == 500);
      CHECK(boom.body.find("kaboom") != std::string::npos);
      const Reply echo = co_await request(s, http::verb::get, "/echo?level=debug&x=%20");
      CHECK(echo.status == 200);
      CHECK(echo.body == "level=debug&x=%20");
    }());
  }

  TEST_CASE("keep-alive: several requests on one connection; HTTP/1.0 closes after the response") {
    Harness h;
    test::run_coro(h.io, [&]() -> awaitable<void> {
      auto s = co_await dial(h.ep);
      const Reply a = co_await request(s, http::verb::get, "/echo?first");
      const Reply b = co_await request(s, http::verb::get, "/echo?second");
      CHECK(a.body == "first");
      CHECK(b.body == "second");
      CHECK(b.keep_alive);
      CHECK(h.server->open_connections() == 1);

      // Two requests pipelined in one write: both answered, in order.
      co_await write_raw(s, "GET /echo?p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?p2 HTTP/1.1\r\nHost: x\r\n\r\n");
      beast::flat_buffer buf;
      http::response<http::string_body> r1;
      http::response<http::string_body> r2;
      auto [e1, n1] = co_await http::async_read(s, buf, r1, kUseTuple);
      auto [e2, n2] = co_await http::async_read(s, buf, r2, kUseTuple);
      REQUIRE_FALSE(e1);
      REQUIRE_FALSE(e2);
      CHECK(r1.body() == "p1");
      CHECK(r2.body() == "p2");

      auto s10 = co_await dial(h.ep);
      const Reply old = co_await request(s10, http::verb::get, "/echo?v10", "", 10);
      CHECK(old.status == 200);
      CHECK_FALSE(old.keep_alive);
      CHECK(co_await closed_by_server(s10));
    }());
  }

  TEST_CASE("limits: oversized headers 431, oversized body 413, garbage 400; each closes the connection") {
    Harness h;
    test::run_coro(h.io, [&]() -> awaitable<void> {
      {
        auto s = co_await dial(h.ep);
        co_await write_raw(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70 * 1024, 'a') + "\r\n\r\n");
        const Reply r = co_await read_reply(s);
        CHECK(r.status == 431);
        CHECK_FALSE(r.keep_alive);
        CHECK(co_await closed_by_server(s));
      }
      {
        auto s = co_await dial(h.ep);
        co_await write_raw(s, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
        const Reply r = co_await read_reply(s);
        CHECK(r.status == 413);
        CHECK(co_await closed_by_server(s));
      }
      {
        auto s = co_await dial(h.ep);
        co_await write_raw(s, "this is not http\r\n\r\n");
        const Reply r = co_await read_reply(s);
        CHECK(r.status == 400);
        CHECK(co_await closed_by_server(s));
      }
      {
        // A body within the limit is delivered.
        auto s = co_await dial(h.ep);
        co_await write_raw(s, "POST /echo?x=q HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        const Reply r = co_await read_reply(s);
        CHECK(r.status == 200);
        CHECK(r.body == "hello|q");
      }
    }());
  }

  TEST_CASE("read timeout closes idle and slow connections") {
    HttpServerOptions opts;
    opts.read_timeout = 150ms;
    Harness h(opts);
    test::run_coro(h.io, [&]() -> awaitable<void> {
      auto idle = co_await dial(h.ep);
      auto slow = co_await dial(h.ep);
      co_await write_raw(slow, "GET /echo HTTP/1.1\r\nHo");  // never finished
      const auto start = std::chrono::steady_clock::now();
      CHECK(co_await closed_by_server(idle));
      CHECK(co_await closed_by_server(slow));
      CHECK(std::chrono::steady_clock::now() - start < 3s);
      co_await wait_until([&] { return h.server->open_connections() == 0; });
      CHECK(h.server->open_connections() == 0);
    }());
  }

  TEST_CASE("max_connections: connections past the limit are closed at once") {
    HttpServerOptions opts;
    opts.max_connections = 1;
    Harness h(opts);
    test::run_coro(h.io, [&]() -> awaitable<void> {
      auto first = co_await dial(h.ep);
      const Reply ok = co_await request(first, http::verb::get, "/echo?one");
      CHECK(ok.status == 200);
      auto second = co_await dial(h.ep);
      CHECK(co_await closed_by_server(second));
      const Reply still = co_await request(first, http::verb::get, "/echo?again");
      CHECK(still.body == "again");
    }());
  }

  TEST_CASE("stop() closes the listener and open keep-alive connections") {
    Harness h;
    test::run_coro(h.io, [&]() -> awaitable<void> {
      auto s = co_await dial(h.ep);
      const Reply r = co_await request(s, http::verb::get, "/echo?x");
      CHECK(r.status == 200);
      h.server->stop();
      CHECK(co_await closed_by_server(s));
      co_await wait_until([&] { return h.server->open_connections() == 0; });
      CHECK(h.server->open_connections() == 0);
      auto again = co_await net::connect(h.ep, 1s);
      CHECK_FALSE(again.has_value());
    }());
  }

  TEST_CASE("/logging lists and changes spdlog levels; bad input is 400 and changes nothing") {
    Harness h;
    auto extra = std::make_shared<spdlog::logger>("admin-test", std::make_shared<spdlog::sinks::null_sink_mt>());
    spdlog::drop("admin-test");
    spdlog::register_logger(extra);
    REQUIRE(log::set_level("info"));
    test::run_coro(h.io, [&]() -> awaitable<void> {
      auto s = co_await dial(h.ep);
      Reply r = co_await request(s, http::verb::post, "/logging");
      CHECK(r.status == 200);
      CHECK(r.body == "current log level is info\n");

      r = co_await request(s, http::verb::post, "/logging?level=debug");
      CHECK(r.status == 200);
      CHECK(r.body == "current log level is debug\n");
      CHECK(spdlog::get_level() == spdlog::level::debug);
      CHECK(extra->level() == spdlog::level::debug);

      r = co_await request(s, http::verb::post, "/logging?level=bogus");
      CHECK(r.status == 400);
      CHECK(r.body.rfind("failed to set new level: 'bogus' is not a level", 0) == 0);
      CHECK(r.body.find("usage: POST /logging") != std::string::npos);
      CHECK(spdlog::get_level() == spdlog::level::debug);

      r = co_await request(s, http::verb::post, "/logging?level=warn,no-such-logger=debug");
      CHECK(r.status == 400);
      CHECK(r.body.find("no logger named 'no-such-logger'") != std::string::npos);
      CHECK(spdlog::get_level() == spdlog::level::debug);  // nothing applied

      r = co_await request(s, http::verb::post, "/logging?level=warn,admin-test=trace");
      CHECK(r.status == 200);
      CHECK(r.body == "current log level is admin-test=trace,warn\n");
      CHECK(extra->level() == spdlog::level::trace);
      CHECK(spdlog::get_level() == spdlog::level::warn);

      r = co_await request(s, http::verb::post, "/logging?reset");
      CHECK(r.status == 200);
      CHECK(r.body == "current log level is info\n");
      CHECK(extra->level() == spdlog::level::info);

      r = co_await request(s, http::verb::get, "/logging");
      CHECK(r.status == 405);
    }());
    spdlog::drop("admin-test");
    REQUIRE(log::set_level("info"));
  }
}

TEST_SUITE("common/admin/readiness") {
  TEST_CASE("pending tasks, sorted; idempotent mark_ready") {
    Readiness r;
    CHECK(r.ready());
    const auto a = r.register_task("state manager");
    const auto b = r.register_task("proxy");
    const auto c = r.register_task("proxy");  // two tasks may share a name
    CHECK_FALSE(r.ready());
    CHECK(r.pending() == std::vector<std::string>{"proxy", "proxy", "state manager"});
    r.mark_ready(b);
    r.mark_ready(b);
    CHECK(r.pending() == std::vector<std::string>{"proxy", "state manager"});
    r.mark_ready(c);
    r.mark_ready(a);
    CHECK(r.ready());
    r.mark_ready(Readiness::Token{});  // never registered: no-op
    CHECK(r.ready());
  }

  TEST_CASE("GET /healthz/ready: 500 with pending names, then 200 ready") {
    Harness h;
    const auto state = h.readiness.register_task("state manager");
    const auto proxy = h.readiness.register_task("proxy");
    test::run_coro(h.io, [&]() -> awaitable<void> {
      auto s = co_await dial(h.ep);
      Reply r = co_await request(s, http::verb::get, "/healthz/ready");
      CHECK(r.status == 500);
      CHECK(r.body == "not ready, pending: proxy, state manager\n");
      h.readiness.mark_ready(proxy);
      r = co_await request(s, http::verb::get, "/healthz/ready");
      CHECK(r.status == 500);
      CHECK(r.body == "not ready, pending: state manager\n");
      h.readiness.mark_ready(state);
      r = co_await request(s, http::verb::get, "/healthz/ready");
      CHECK(r.status == 200);
      CHECK(r.body == "ready\n");
      r = co_await request(s, http::verb::post, "/healthz/ready");
      CHECK(r.status == 405);
    }());
  }
}
