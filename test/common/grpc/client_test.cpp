// common/grpc/client against a real grpc++ server (grpc-test-server, a child process), plaintext h2c.
// TLS runs are in channel_tls_test.cpp.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "test/common/grpc/grpc_fixture.h"

using namespace ambient;
using namespace ambient::test;
using namespace std::chrono_literals;
using namespace std::string_literals;
namespace asio = boost::asio;

namespace {

constexpr const char* kUnary = "/ambient.test.Echo/Unary";
constexpr const char* kBidi = "/ambient.test.Echo/BidiStream";
constexpr const char* kServerStream = "/ambient.test.Echo/ServerStream";

asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial_plain(const GrpcTestServer& server) {
  grpc::DialOptions o;
  o.settings = quiet_settings();
  co_return co_await grpc::dial(server.endpoint(), nullptr, "", o);
}

grpc::CallOptions plain_options() {
  grpc::CallOptions o;
  o.scheme = "http";
  return o;
}

Result<EchoReply> parse_reply(const Result<std::string>& bytes) {
  if (!bytes) return bytes.error();
  EchoReply r;
  if (!r.ParseFromString(*bytes)) return make_error(ErrorKind::Parse, "EchoReply does not parse");
  return r;
}

std::string map_get(const EchoReply& r, const std::string& key) {
  auto it = r.metadata().find(key);
  return it == r.metadata().end() ? std::string("<absent>") : it->second;
}

#define REQUIRE_STARTED(server) REQUIRE_MESSAGE((server).started(), (server).error())

}  // namespace

TEST_SUITE("common/grpc/client") {
  TEST_CASE("unary over h2c: reply, request headers as the server saw them") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    auto reply = run_test([&](asio::io_context&) -> asio::awaitable<Result<EchoReply>> {
      auto s = co_await dial_plain(server);
      if (!s) co_return s.error();
      co_return parse_reply(co_await grpc::unary(*s, kUnary, serialize(echo_request("hello grpc")), plain_options()));
    });
    REQUIRE_MESSAGE(reply, (reply ? "" : reply.error().message()));
    CHECK(reply->message() == "hello grpc");
    CHECK(reply->sequence() == 1);
    CHECK(map_get(*reply, ":authority") == server.authority());  // the session's peer() by default
    CHECK(map_get(*reply, ":path") == kUnary);
    CHECK(map_get(*reply, "user-agent").find("ambient-grpc/0.1") != std::string::npos);
    CHECK(map_get(*reply, ":deadline-ms") == "<absent>");  // no deadline, no grpc-timeout
  }

  TEST_CASE("unary with metadata, authority and a deadline as the server saw them") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    auto reply = run_test([&](asio::io_context&) -> asio::awaitable<Result<EchoReply>> {
      auto s = co_await dial_plain(server);
      if (!s) co_return s.error();
      auto o = plain_options();
      o.authority = "istiod.istio-system.svc:15012";
      o.timeout = 5s;
      o.metadata = {{"authorization", "Bearer token-123"},
                    {"clusterid", "Kubernetes"},
                    {"x-custom", "one"},
                    {"x-custom", "two"},
                    {"x-raw-bin", "\x00\x01\xfe\xff"s}};
      co_return parse_reply(co_await grpc::unary(*s, kUnary, serialize(echo_request("md")), o));
    });
    REQUIRE_MESSAGE(reply, (reply ? "" : reply.error().message()));
    CHECK(map_get(*reply, "authorization") == "Bearer token-123");
    CHECK(map_get(*reply, "clusterid") == "Kubernetes");
    CHECK(map_get(*reply, "x-custom") == "one,two");
    CHECK(map_get(*reply, "x-raw-bin") == "AAH+/w==");  // grpc++ decoded our base64; the server re-encodes
    CHECK(map_get(*reply, ":authority") == "istiod.istio-system.svc:15012");
    const int left = std::atoi(map_get(*reply, ":deadline-ms").c_str());
    CHECK(left > 4000);
    CHECK(left <= 5000);
  }

  TEST_CASE("unary method through a Call: initial metadata, trailers with -bin decoded, status") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await dial_plain(server);
      REQUIRE_MESSAGE(s, (s ? "" : s.error().message()));
      auto call = co_await grpc::start_call(*s, kUnary, plain_options());
      REQUIRE(call);
      REQUIRE(co_await grpc::send_message(*call, echo_request("typed")));
      REQUIRE(co_await call->close_send());
      auto m = co_await grpc::recv_message<EchoReply>(*call);
      REQUIRE_MESSAGE(m, (m ? "" : m.error().message()));
      REQUIRE(m->has_value());
      CHECK((*m)->message() == "typed");
      CHECK(h2::find_header(call->initial_metadata(), "x-echo-initial") == "yes");
      auto end = co_await call->recv();
      REQUIRE(end);
      CHECK_FALSE(end->has_value());
      CHECK(call->done());
      CHECK(call->status().ok());
      CHECK(h2::find_header(call->trailers(), "x-echo-trailer") == "done");
      CHECK(h2::find_header(call->trailers(), "x-echo-trailer-bin") == "\x00\x01\xfe\xff"s);
      auto again = co_await call->recv();  // done: the same clean end
      REQUIRE(again);
      CHECK_FALSE(again->has_value());
    });
  }

  TEST_CASE("a failing call: grpc-status and percent-encoded grpc-message from a Trailers-Only response") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await dial_plain(server);
      REQUIRE(s);
      EchoRequest req = echo_request("fail");
      req.set_fail_code(7);
      req.set_fail_message("denied: caf\xc3\xa9 100% \"sure\"\n");
      auto r = co_await grpc::unary(*s, kUnary, serialize(req), plain_options());
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::GrpcStatus);
      CHECK(r.error().code == 7);
      CHECK(r.error().context == "/ambient.test.Echo/Unary: PERMISSION_DENIED: denied: caf\xc3\xa9 100% \"sure\"\n");

      // The same through a Call: no initial metadata, trailers from the single HEADERS frame.
      auto call = co_await grpc::start_call(*s, kUnary, plain_options());
      REQUIRE(call);
      REQUIRE(co_await call->send(serialize(req)));
      REQUIRE(co_await call->close_send());
      auto m = co_await call->recv();
      REQUIRE_FALSE(m);
      CHECK(m.error().code == 7);
      CHECK(call->status().code == 7);
      CHECK(call->status().message == "denied: caf\xc3\xa9 100% \"sure\"\n");
      CHECK(call->initial_metadata().empty());
      CHECK(h2::find_header(call->trailers(), "x-echo-trailer") == "done");
    });
  }

  TEST_CASE("deadline: a slow server cannot hang the call") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    EchoRequest slow = echo_request("slow");
    slow.set_delay_ms(2000);
    SUBCASE("grpc-timeout sent: DEADLINE_EXCEEDED") {
      run_test([&](asio::io_context&) -> asio::awaitable<void> {
        auto s = co_await dial_plain(server);
        REQUIRE(s);
        auto o = plain_options();
        o.timeout = 200ms;
        const auto t0 = std::chrono::steady_clock::now();
        auto r = co_await grpc::unary(*s, kUnary, serialize(slow), o);
        const auto took = std::chrono::steady_clock::now() - t0;
        REQUIRE_FALSE(r);
        CHECK(r.error().code == 4);  // the server's status or ours, whichever came first
        CHECK((r.error().kind == ErrorKind::Timeout || r.error().kind == ErrorKind::GrpcStatus));
        CHECK(took >= 190ms);
        CHECK(took < 1s);
      });
    }
    SUBCASE("no grpc-timeout: enforced locally with RST_STREAM, the connection stays usable") {
      run_test([&](asio::io_context&) -> asio::awaitable<void> {
        auto s = co_await dial_plain(server);
        REQUIRE(s);
        auto o = plain_options();
        o.timeout = 200ms;
        o.send_grpc_timeout = false;  // the server does not know: only our watchdog ends the call
        const auto t0 = std::chrono::steady_clock::now();
        auto r = co_await grpc::unary(*s, kUnary, serialize(slow), o);
        const auto took = std::chrono::steady_clock::now() - t0;
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Timeout);
        CHECK(r.error().code == 4);
        CHECK(r.error().context.find("DEADLINE_EXCEEDED") != std::string::npos);
        CHECK(took >= 190ms);
        CHECK(took < 1s);
        auto next = co_await grpc::unary(*s, kUnary, serialize(echo_request("after")), plain_options());
        REQUIRE_MESSAGE(next, (next ? "" : next.error().message()));
        CHECK((*s)->alive());
      });
    }
    SUBCASE("a stream whose server never answers: the blocked reader is woken at the deadline") {
      run_test([&](asio::io_context&) -> asio::awaitable<void> {
        auto s = co_await dial_plain(server);
        REQUIRE(s);
        auto o = plain_options();
        o.timeout = 200ms;
        o.send_grpc_timeout = false;
        auto call = co_await grpc::start_call(*s, kBidi, o);  // the server waits for our first message
        REQUIRE(call);
        const auto t0 = std::chrono::steady_clock::now();
        auto m = co_await call->recv();
        const auto took = std::chrono::steady_clock::now() - t0;
        REQUIRE_FALSE(m);
        CHECK(m.error().kind == ErrorKind::Timeout);
        CHECK(call->status().code == 4);
        CHECK(took >= 190ms);
        CHECK(took < 1s);
        auto late = co_await call->send(serialize(echo_request("late")));
        REQUIRE_FALSE(late);
        CHECK(late.error().kind == ErrorKind::Timeout);
      });
    }
    SUBCASE("a deadline already passed fails before sending") {
      run_test([&](asio::io_context&) -> asio::awaitable<void> {
        auto s = co_await dial_plain(server);
        REQUIRE(s);
        auto o = plain_options();
        o.deadline = std::chrono::steady_clock::now() - 1ms;
        auto r = co_await grpc::unary(*s, kUnary, serialize(slow), o);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Timeout);
        CHECK(r.error().code == 4);
      });
    }
  }

  TEST_CASE("bidi stream: ping-pong in order, then OK and the trailers") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await dial_plain(server);
      REQUIRE(s);
      auto call = co_await grpc::start_call(*s, kBidi, plain_options());
      REQUIRE(call);
      constexpr int kN = 25;
      for (int i = 1; i <= kN; ++i) {
        REQUIRE(co_await grpc::send_message(*call, echo_request("msg-" + std::to_string(i))));
        auto m = co_await grpc::recv_message<EchoReply>(*call);
        REQUIRE_MESSAGE(m, (m ? "" : m.error().message()));
        REQUIRE(m->has_value());
        CHECK((*m)->message() == "msg-" + std::to_string(i));
        CHECK((*m)->sequence() == i);
      }
      REQUIRE(co_await call->close_send());
      auto end = co_await call->recv();
      REQUIRE_MESSAGE(end, (end ? "" : end.error().message()));
      CHECK_FALSE(end->has_value());
      CHECK(call->status().ok());
      CHECK(h2::find_header(call->trailers(), "x-echo-trailer") == "done");
      CHECK(h2::find_header(call->initial_metadata(), "x-echo-initial") == "yes");
      auto after = co_await call->send("late");
      CHECK_FALSE(after);
    });
  }

  TEST_CASE("bidi stream: a reader and a writer running concurrently") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    using namespace asio::experimental::awaitable_operators;
    constexpr int kN = 200;
    std::vector<std::string> got;
    Result<void> wrote = ok();
    Result<void> read = ok();
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await dial_plain(server);
      REQUIRE(s);
      auto call = co_await grpc::start_call(*s, kBidi, plain_options());
      REQUIRE(call);
      auto writer = [&]() -> asio::awaitable<void> {
        for (int i = 1; i <= kN; ++i) {
          EchoRequest req = echo_request(std::to_string(i));
          req.set_payload(std::string(1000 + i, 'p'));
          if (wrote = co_await grpc::send_message(*call, req); !wrote) co_return;
        }
        wrote = co_await call->close_send();
      };
      auto reader = [&]() -> asio::awaitable<void> {
        for (;;) {
          auto m = co_await grpc::recv_message<EchoReply>(*call);
          if (!m) {
            read = m.error();
            co_return;
          }
          if (!m->has_value()) co_return;
          got.push_back((*m)->message() + "/" + std::to_string((*m)->sequence()) + "/" +
                        std::to_string((*m)->payload().size()));
        }
      };
      co_await (writer() && reader());
      CHECK(call->status().ok());
    });
    REQUIRE_MESSAGE(wrote, (wrote ? "" : wrote.error().message()));
    REQUIRE_MESSAGE(read, (read ? "" : read.error().message()));
    REQUIRE(got.size() == kN);
    for (int i = 1; i <= kN; ++i)
      CHECK(got[i - 1] == std::to_string(i) + "/" + std::to_string(i) + "/" + std::to_string(1000 + i));
  }

  TEST_CASE("server stream: three replies, then the server's error status") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await dial_plain(server);
      REQUIRE(s);
      auto call = co_await grpc::start_call(*s, kServerStream, plain_options());
      REQUIRE(call);
      EchoRequest req = echo_request("stream");
      req.set_repeat(3);
      req.set_fail_code(9);
      req.set_fail_message("precondition");
      REQUIRE(co_await grpc::send_message(*call, req));
      REQUIRE(co_await call->close_send());
      for (int i = 1; i <= 3; ++i) {
        auto m = co_await grpc::recv_message<EchoReply>(*call);
        REQUIRE_MESSAGE(m, (m ? "" : m.error().message()));
        REQUIRE(m->has_value());
        CHECK((*m)->sequence() == i);
      }
      auto end = co_await call->recv();
      REQUIRE_FALSE(end);
      CHECK(end.error().kind == ErrorKind::GrpcStatus);
      CHECK(end.error().code == 9);
      CHECK(end.error().context.find("FAILED_PRECONDITION: precondition") != std::string::npos);
      CHECK(call->status().code == 9);
      CHECK(h2::find_header(call->trailers(), "x-echo-trailer") == "done");
      auto again = co_await call->recv();  // done: the same error again
      REQUIRE_FALSE(again);
      CHECK(again.error().code == 9);
    });
  }

  TEST_CASE("1 MiB payloads both ways, and the receive limit") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    std::string payload(1u << 20, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 2654435761u) >> 13);
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await dial_plain(server);
      REQUIRE(s);
      EchoRequest req = echo_request("big");
      req.set_payload(payload);
      auto r = parse_reply(co_await grpc::unary(*s, kUnary, serialize(req), plain_options()));
      REQUIRE_MESSAGE(r, (r ? "" : r.error().message()));
      CHECK(r->payload().size() == payload.size());
      CHECK(r->payload() == payload);

      auto small = plain_options();
      small.max_recv_message_size = 64u << 10;
      auto over = co_await grpc::unary(*s, kUnary, serialize(req), small);
      REQUIRE_FALSE(over);
      CHECK(over.error().kind == ErrorKind::ResourceExhausted);
      CHECK(over.error().code == 8);
      // The stream was reset; the connection goes on.
      auto next = co_await grpc::unary(*s, kUnary, serialize(echo_request("small")), plain_options());
      REQUIRE_MESSAGE(next, (next ? "" : next.error().message()));
    });
  }

  TEST_CASE("token enforcement (--require-token)") {
    ScratchDir dir;
    GrpcTestServer server(dir, {"--require-token", "s3cret"});
    REQUIRE_STARTED(server);
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await dial_plain(server);
      REQUIRE(s);
      auto none = co_await grpc::unary(*s, kUnary, serialize(echo_request("x")), plain_options());
      REQUIRE_FALSE(none);
      CHECK(none.error().code == 16);
      CHECK(none.error().context.find("UNAUTHENTICATED: missing bearer token") != std::string::npos);

      auto bad_opts = plain_options();
      bad_opts.metadata = {{"authorization", "Bearer wrong"}};
      auto bad = co_await grpc::unary(*s, kUnary, serialize(echo_request("x")), bad_opts);
      REQUIRE_FALSE(bad);
      CHECK(bad.error().code == 16);
      CHECK(bad.error().context.find("bad bearer token") != std::string::npos);

      auto good_opts = plain_options();
      good_opts.metadata = {{"authorization", "Bearer s3cret"}};
      auto good = parse_reply(co_await grpc::unary(*s, kUnary, serialize(echo_request("x")), good_opts));
      REQUIRE_MESSAGE(good, (good ? "" : good.error().message()));
      CHECK(good->message() == "x");

      // Bidi: the server refuses before reading; our sends may or may not have gone out, recv says why.
      auto call = co_await grpc::start_call(*s, kBidi, plain_options());
      REQUIRE(call);
      (void)co_await call->send(serialize(echo_request("x")));
      auto m = co_await call->recv();
      REQUIRE_FALSE(m);
      CHECK(m.error().code == 16);
    });
  }

  TEST_CASE("unknown method is UNIMPLEMENTED; bad request options are refused locally") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await dial_plain(server);
      REQUIRE(s);
      auto r = co_await grpc::unary(*s, "/ambient.test.Echo/Nope", serialize(echo_request("x")), plain_options());
      REQUIRE_FALSE(r);
      CHECK(r.error().code == 12);

      auto no_slash = co_await grpc::unary(*s, "ambient.test.Echo/Unary", "", plain_options());
      REQUIRE_FALSE(no_slash);
      CHECK(no_slash.error().kind == ErrorKind::InvalidArgument);

      auto reserved = plain_options();
      reserved.metadata = {{"grpc-timeout", "1S"}};
      auto r2 = co_await grpc::unary(*s, kUnary, "", reserved);
      REQUIRE_FALSE(r2);
      CHECK(r2.error().kind == ErrorKind::InvalidArgument);

      auto huge = plain_options();
      huge.metadata = {{"x-big", std::string(9000, 'a')}};
      auto r3 = co_await grpc::unary(*s, kUnary, "", huge);
      REQUIRE_FALSE(r3);
      CHECK(r3.error().kind == ErrorKind::InvalidArgument);
      CHECK(r3.error().context.find("over the limit of 8192") != std::string::npos);
    });
  }

  TEST_CASE("cancel: the stream is reset and the call reports CANCELLED") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      using namespace asio::experimental::awaitable_operators;
      auto s = co_await dial_plain(server);
      REQUIRE(s);
      auto call = co_await grpc::start_call(*s, kBidi, plain_options());
      REQUIRE(call);
      REQUIRE(co_await grpc::send_message(*call, echo_request("one")));
      auto m = co_await call->recv();
      REQUIRE(m);
      REQUIRE(m->has_value());
      // A reader waiting for a reply that never comes, cancelled from another coroutine.
      Result<std::optional<std::string>> pending = std::optional<std::string>{};
      auto reader = [&]() -> asio::awaitable<void> { pending = co_await call->recv(); };
      auto canceller = [&]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor, 50ms);
        co_await t.async_wait(asio::use_awaitable);
        call->cancel();
      };
      co_await (reader() && canceller());
      REQUIRE_FALSE(pending);
      CHECK(pending.error().kind == ErrorKind::Cancelled);
      CHECK(pending.error().code == 1);
      CHECK(call->status().code == 1);
      auto after = co_await call->send(serialize(echo_request("two")));
      CHECK_FALSE(after);
      // The connection is still good.
      auto next = co_await grpc::unary(*s, kUnary, serialize(echo_request("after")), plain_options());
      REQUIRE_MESSAGE(next, (next ? "" : next.error().message()));
    });
  }

  TEST_CASE("50 concurrent unary calls multiplexed on one connection") {
    ScratchDir dir;
    GrpcTestServer server(dir, {});
    REQUIRE_STARTED(server);
    constexpr int kCalls = 50;
    std::vector<std::string> replies(kCalls);
    int done = 0;
    std::size_t peak_streams = 0;
    run_test([&](asio::io_context& io) -> asio::awaitable<void> {
      auto s = co_await dial_plain(server);
      REQUIRE(s);
      asio::steady_timer all_done(io, asio::steady_timer::time_point::max());  // cancelled by the last call
      for (int i = 0; i < kCalls; ++i) {
        asio::co_spawn(io, [&, i, s = *s]() -> asio::awaitable<void> {
              auto r = parse_reply(co_await grpc::unary(s, kUnary, serialize(echo_request("c" + std::to_string(i))),
                                                        plain_options()));
              replies[i] = r ? r->message() : r.error().message();
              if (++done == kCalls) all_done.cancel();
            }, asio::detached);
      }
      // Let every spawned call open its stream; none can have its reply yet.
      asio::steady_timer tick(io, 0ms);
      co_await tick.async_wait(asio::use_awaitable);
      peak_streams = (*s)->active_streams();
      if (done < kCalls) co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    });
    CHECK(done == kCalls);
    CHECK(peak_streams > 1);
    for (int i = 0; i < kCalls; ++i) CHECK(replies[i] == "c" + std::to_string(i));
  }
}
