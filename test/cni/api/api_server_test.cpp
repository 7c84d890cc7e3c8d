#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <chrono>
#include <fstream>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "cni/api/api_client.h"
#include "cni/api/api_server.h"
#include "cni/api/cmdadd.h"
#include "cni/api/json_fields.h"
#include "test/cni/api/api_test_support.h"

using namespace ambient;
using namespace ambient::cni;
using namespace std::chrono_literals;
using ambient::cni::test_support::RecordingPodEvents;
using ambient::cni::test_support::ServerThread;
using ambient::cni::test_support::TempDir;
namespace asio = boost::asio;
using unix_socket = asio::local::stream_protocol;

namespace {

ApiServerOptions options_in(const TempDir& dir) {
  ApiServerOptions o;
  o.socket_path = dir.file("run/agent.sock");
  return o;
}

ApiClient client_for(const ApiServerOptions& o, std::chrono::milliseconds timeout = 5s) {
  return ApiClient(ApiClientOptions{.socket_path = o.socket_path, .timeout = timeout});
}

const char* kEnrollBody =
    R"({"uid":"uid-7","name":"web-0","namespace":"default","serviceAccount":"web","netns":"/var/run/netns/x",)"
    R"("ips":["10.0.0.7"],"dnsCapture":false})";

// Sends raw bytes and reads until the server closes (for what ApiClient cannot send).
std::string raw_exchange(const std::string& socket_path, const std::string& bytes) {
  asio::io_context io;
  unix_socket::socket s(io);
  s.connect(unix_socket::endpoint(socket_path));
  asio::write(s, asio::buffer(bytes));
  std::string reply;
  boost::system::error_code ec;
  asio::read(s, asio::dynamic_buffer(reply), ec);  // until EOF
  return reply;
}

std::string error_of(const Result<std::string>& r) { return r ? std::string() : r.error().context; }

}  // namespace

TEST_SUITE("cni/api/api_server") {
  TEST_CASE("POST /enroll -> add_pod(spec, Enroll); POST /unenroll -> remove_pod; GET /pods") {
    TempDir dir;
    const auto opts = options_in(dir);
    ServerThread server(opts);
    const ApiClient client = client_for(opts);

    auto reply = client.post("/enroll", kEnrollBody);
    REQUIRE_MESSAGE(reply, error_of(reply));
    CHECK(*reply == R"({"result":"ok","uid":"uid-7"})");
    auto added = server.on_server([&] { return server.events_unsafe().added; });
    REQUIRE(added.size() == 1);
    CHECK(added[0].source == PodSourceKind::Enroll);
    CHECK(added[0].spec.uid == "uid-7");
    CHECK(added[0].spec.name == "web-0");
    CHECK(added[0].spec.namespace_ == "default");
    CHECK(added[0].spec.service_account == "web");
    CHECK(added[0].spec.netns == "/var/run/netns/x");
    CHECK(added[0].spec.ips == std::vector<std::string>{"10.0.0.7"});
    CHECK(added[0].spec.options.dns_capture == false);

    auto removed = client.post("/unenroll", R"({"uid":"uid-7"})");
    REQUIRE_MESSAGE(removed, error_of(removed));
    CHECK(server.on_server([&] { return server.events_unsafe().removed; }) == std::vector<std::string>{"uid-7"});

    server.on_server([&] { server.events_unsafe().pods = R"({"version":1,"pods":["x"]})"; });
    auto pods = client.get("/pods");
    REQUIRE_MESSAGE(pods, error_of(pods));
    CHECK(*pods == R"({"version":1,"pods":["x"]})");
  }

  TEST_CASE("POST /cmdadd maps the CNI plugin's body") {
    TempDir dir;
    const auto opts = options_in(dir);
    ServerThread server(opts);
    const ApiClient client = client_for(opts);
    CmdAddRequest request{"/var/run/netns/cni-5", "web-1", "shop", "uid-8", "", {"10.0.0.8/24", "fd00::8/64"}};
    auto reply = client.post("/cmdadd", cmdadd_to_json(request));
    REQUIRE_MESSAGE(reply, error_of(reply));
    auto added = server.on_server([&] { return server.events_unsafe().added; });
    REQUIRE(added.size() == 1);
    CHECK(added[0].source == PodSourceKind::Cni);
    CHECK(added[0].spec.netns == "/var/run/netns/cni-5");
    CHECK(added[0].spec.name == "web-1");
    CHECK(added[0].spec.namespace_ == "shop");
    CHECK(added[0].spec.uid == "uid-8");
    CHECK(added[0].spec.service_account.empty());
    CHECK(added[0].spec.ips == std::vector<std::string>{"10.0.0.8", "fd00::8"});
  }

  TEST_CASE("400 names the problem: bad JSON, a bad field, an unknown field; the handler is not called") {
    TempDir dir;
    const auto opts = options_in(dir);
    ServerThread server(opts);
    const ApiClient client = client_for(opts);
    struct Row {
      const char* path;
      const char* body;
      const char* error;
    };
    const std::vector<Row> rows = {
        {"/enroll", R"({"uid":"a",)", "bad /enroll body: body: JSON syntax error at line 1 column 12 (byte 11)"},
        {"/enroll", R"({"uid":"a","name":"b","namespace":"Default","netns":"/n"})",
         "bad /enroll body: namespace: 'Default' is not a DNS-1123 label"},
        {"/enroll", R"({"uid":"a","name":"b","namespace":"c","netns":"/n","ip":[]})", "bad /enroll body: ip: unknown field"},
        {"/cmdadd", R"({"Netns":"/n","PodName":"a","PodNamespace":"b"})", "bad /cmdadd body: PodUID: missing"},
        {"/cmdadd", "not json", "bad /cmdadd body: body: JSON syntax error at line 1 column 1"},
        {"/unenroll", R"({})", "bad /unenroll body: uid: missing"},
        {"/unenroll", R"({"uid":"a b"})", "bad /unenroll body: uid: 'a b' is not a pod uid"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.body);
      auto reply = client.post(row.path, row.body);
      REQUIRE_FALSE(reply);
      CHECK(reply.error().kind == ErrorKind::HttpStatus);
      CHECK(reply.error().code == 400);
      CHECK_MESSAGE(reply.error().context.find(row.error) != std::string::npos, reply.error().context);
    }
    auto calls = server.on_server([&] {
      return server.events_unsafe().added.size() + server.events_unsafe().removed.size();
    });
    CHECK(calls == 0);
  }

  TEST_CASE("a body over 64 KiB gets 413; headers over 8 KiB get 431; the server goes on") {
    TempDir dir;
    const auto opts = options_in(dir);
    ServerThread server(opts);
    const ApiClient client = client_for(opts);
    const std::string big = R"({"uid":")" + std::string(70 * 1024, 'a') + R"("})";
    auto reply = client.post("/enroll", big);
    REQUIRE_FALSE(reply);
    CHECK(reply.error().code == 413);
    CHECK_MESSAGE(reply.error().context.find("request body larger than 65536 bytes") != std::string::npos,
                  reply.error().context);

    const std::string headers = "GET /pods HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'h') + "\r\n\r\n";
    const std::string raw = raw_exchange(opts.socket_path, headers);
    CHECK_MESSAGE(raw.rfind("HTTP/1.1 431", 0) == 0, raw.substr(0, 100));

    CHECK(client.get("/pods"));  // still serving
  }

  TEST_CASE("handler errors: message in the body; NotFound -> 404, InvalidArgument -> 400, else 500") {
    TempDir dir;
    const auto opts = options_in(dir);
    ServerThread server(opts);
    const ApiClient client = client_for(opts);
    struct Row {
      ErrorKind kind;
      int status;
    };
    for (const Row row : {Row{ErrorKind::Unsupported, 500}, Row{ErrorKind::Io, 500}, Row{ErrorKind::NotFound, 404},
                          Row{ErrorKind::InvalidArgument, 400}}) {
      CAPTURE(row.status);
      server.on_server([&] {
        server.events_unsafe().fail_with = make_error(row.kind, "partial add error: no ztunnel connection");
      });
      auto reply = client.post("/enroll", kEnrollBody);
      REQUIRE_FALSE(reply);
      CHECK(reply.error().kind == ErrorKind::HttpStatus);
      CHECK(reply.error().code == row.status);
      CHECK_MESSAGE(reply.error().context.find("partial add error: no ztunnel connection") != std::string::npos,
                    reply.error().context);
      auto unenroll = client.post("/unenroll", R"({"uid":"uid-7"})");
      REQUIRE_FALSE(unenroll);
      CHECK(unenroll.error().code == row.status);
    }
  }

  TEST_CASE("unknown path -> 404, wrong method -> 405 with Allow") {
    TempDir dir;
    const auto opts = options_in(dir);
    ServerThread server(opts);
    const ApiClient client = client_for(opts);
    auto missing = client.get("/nope");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == 404);
    auto wrong = client.get("/cmdadd");
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().code == 405);
    CHECK(wrong.error().context.find("/cmdadd takes POST only") != std::string::npos);
    CHECK(client.post("/pods", "{}").error().code == 405);
    const std::string raw = raw_exchange(opts.socket_path, "GET /enroll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(raw.find("Allow: POST\r\n") != std::string::npos);
    CHECK(raw.find("Content-Type: application/json\r\n") != std::string::npos);
  }

  TEST_CASE("keep-alive: several requests on one connection") {
    TempDir dir;
    const auto opts = options_in(dir);
    ServerThread server(opts);
    const std::string one = "GET /pods HTTP/1.1\r\nHost: x\r\n\r\n";
    const std::string last = "GET /pods HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    const std::string raw = raw_exchange(opts.socket_path, one + one + last);
    std::size_t count = 0;
    for (auto pos = raw.find("HTTP/1.1 200"); pos != std::string::npos; pos = raw.find("HTTP/1.1 200", pos + 1)) ++count;
    CHECK(count == 3);
  }

  TEST_CASE("the socket: parent created, mode 0600, stale socket replaced, other files refused, removed on stop") {
    TempDir dir;
    auto opts = options_in(dir);
    {
      // A stale socket file: bound, then its owner gone.
      std::filesystem::create_directories(dir.file("run"));
      asio::io_context io;
      unix_socket::acceptor stale(io, unix_socket::endpoint(opts.socket_path));
      stale.close();
      REQUIRE(std::filesystem::exists(opts.socket_path));
    }
    {
      ServerThread server(opts);
      struct stat st {};
      REQUIRE(::stat(opts.socket_path.c_str(), &st) == 0);
      CHECK(S_ISSOCK(st.st_mode));
      CHECK((st.st_mode & 0777) == 0600);
      CHECK(client_for(opts).get("/pods"));
    }
    CHECK_FALSE(std::filesystem::exists(opts.socket_path));  // stop() removed it

    std::ofstream(opts.socket_path) << "not a socket";
    asio::io_context io;
    RecordingPodEvents events;
    ApiServer refused(io.get_executor(), opts);
    auto r = refused.start(events);
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(r.error().context.find("exists and is not a socket; not replacing it") != std::string::npos,
                  r.error().context);

    ApiServerOptions too_long;
    too_long.socket_path = "/tmp/" + std::string(120, 's');
    ApiServer long_path(io.get_executor(), too_long);
    auto lr = long_path.start(events);
    REQUIRE_FALSE(lr);
    CHECK(lr.error().context.find("longer than 107 bytes") != std::string::npos);
  }

  TEST_CASE("a connection that sends nothing is closed after the read timeout") {
    TempDir dir;
    auto opts = options_in(dir);
    opts.read_timeout = 200ms;
    ServerThread server(opts);
    asio::io_context io;
    unix_socket::socket s(io);
    s.connect(unix_socket::endpoint(opts.socket_path));
    const auto start = std::chrono::steady_clock::now();
    char byte;
    boost::system::error_code ec;
    const std::size_t n = s.read_some(asio::buffer(&byte, 1), ec);  // blocks until the server closes
    CHECK(n == 0);
    CHECK(ec);
    const auto waited = std::chrono::steady_clock::now() - start;
    CHECK(waited >= 150ms);
    CHECK(waited < 5s);
  }

  TEST_CASE("connections over the limit wait in the backlog and are served when one ends") {
    TempDir dir;
    auto opts = options_in(dir);
    opts.max_connections = 2;
    ServerThread server(opts);
    asio::io_context io;
    unix_socket::socket a(io), b(io), c(io);
    a.connect(unix_socket::endpoint(opts.socket_path));
    b.connect(unix_socket::endpoint(opts.socket_path));
    // Wait until the server holds both (connect completes at the kernel before accept).
    for (int i = 0; i < 200 && server.on_server([&] { return server.server().open_connections(); }) < 2; ++i) {
      std::this_thread::sleep_for(5ms);
    }
    REQUIRE(server.on_server([&] { return server.server().open_connections(); }) == 2);
    c.connect(unix_socket::endpoint(opts.socket_path));
    const std::string request = "GET /pods HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n";
    asio::write(c, asio::buffer(request));
    timeval tv{0, 300'000};
    ::setsockopt(c.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    CHECK(::recv(c.native_handle(), buf, sizeof(buf), 0) < 0);  // not served while two are open
    CHECK(server.on_server([&] { return server.server().open_connections(); }) == 2);
    a.close();  // one ends: c is accepted and answered
    tv = timeval{5, 0};
    ::setsockopt(c.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const ssize_t n = ::recv(c.native_handle(), buf, sizeof(buf), 0);
    REQUIRE(n > 0);
    CHECK(std::string(buf, static_cast<std::size_t>(n)).starts_with("HTTP/1.1 200"));
    b.close();
    c.close();
    CHECK(client_for(opts).get("/pods"));
  }
}

TEST_SUITE("cni/api/api_client") {
  TEST_CASE("no agent: ConnectRefused saying so") {
    TempDir dir;
    const ApiClient client(ApiClientOptions{.socket_path = dir.file("absent.sock")});
    auto r = client.post("/cmdadd", "{}");
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::ConnectRefused);
    CHECK_MESSAGE(r.error().context.find("is the node agent running?") != std::string::npos, r.error().context);

    // A socket file nobody listens on.
    asio::io_context io;
    {
      unix_socket::acceptor gone(io, unix_socket::endpoint(dir.file("gone.sock")));
    }
    const ApiClient gone_client(ApiClientOptions{.socket_path = dir.file("gone.sock")});
    auto g = gone_client.get("/pods");
    REQUIRE_FALSE(g);
    CHECK(g.error().kind == ErrorKind::ConnectRefused);
  }

  TEST_CASE("a handler that never answers: Timeout after the client's timeout") {
    TempDir dir;
    const auto opts = options_in(dir);
    ServerThread server(opts);
    server.on_server([&] { server.events_unsafe().hang = true; });
    const auto start = std::chrono::steady_clock::now();
    auto r = client_for(opts, 300ms).post("/enroll", kEnrollBody);
    const auto waited = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Timeout);
    CHECK_MESSAGE(r.error().context.find("no reply within 300 ms") != std::string::npos, r.error().context);
    CHECK(waited >= 250ms);
    CHECK(waited < 3s);
  }
}
