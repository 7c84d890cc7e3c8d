#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>

#include "cni/kube/api_client.h"
#include "test/support/fake_kube_api.h"
#include "test/support/run_coro.h"
#include "test/support/temp_dir.h"

using namespace ambient;
using namespace ambient::cni::kube;
using ambient::test::FakeKubeApi;
using ambient::test::run_coro;
using Resource = FakeKubeApi::Resource;
namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

std::string message_of(const Result<void>& r) { return r ? std::string() : r.error().message(); }
template <typename T>
std::string message_of(const Result<T>& r) {
  return r ? std::string() : r.error().message();
}
bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

void add_pods(FakeKubeApi& fake, std::string_view node, int count, std::string_view prefix = "p") {
  for (int i = 0; i < count; ++i) {
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", fmt::format("{}{}", prefix, i), node));
  }
}

}  // namespace

TEST_SUITE("cni/kube/api_client") {
  TEST_CASE("list pages with limit/continue until done: items of the node only, the list's resourceVersion") {
    FakeKubeApi fake;
    add_pods(fake, "n1", 5);
    add_pods(fake, "n2", 2, "other");
    const std::string rv = fake.resource_version();
    asio::io_context io;
    ApiClientLimits limits;
    limits.list_page_size = 2;
    ApiClient client(io.get_executor(), fake.client_config(), limits);

    auto listed = run_coro(io, client.list("/api/v1/pods", "fieldSelector=" + query_escape("spec.nodeName=n1")));
    REQUIRE_MESSAGE(listed, message_of(listed));
    CHECK(listed->resource_version == rv);
    REQUIRE(listed->items.size() == 5);
    for (const auto& item : listed->items) {
      CHECK(item.at("spec").at("nodeName").as_string() == "n1");
      CHECK(item.at("metadata").as_object().if_contains("managedFields") == nullptr);
    }
    CHECK(listed->items[0].at("metadata").at("name").as_string() == "p0");
    CHECK(listed->items[4].at("metadata").at("name").as_string() == "p4");

    const auto requests = fake.requests();
    REQUIRE(requests.size() == 3);  // 2 + 2 + 1
    CHECK(requests[0].param("limit") == "2");
    CHECK(requests[0].param("fieldSelector") == "spec.nodeName=n1");
    CHECK(requests[0].param("continue").empty());
    CHECK_FALSE(requests[1].param("continue").empty());
    CHECK(requests[2].param("continue") != requests[1].param("continue"));
    CHECK(fake.counters().lists == 3);
    CHECK(fake.counters().connections == 1);  // the pages share one keep-alive connection
  }

  TEST_CASE("list of an empty collection; namespaces are cluster-scoped") {
    FakeKubeApi fake;
    fake.upsert(Resource::Namespaces, FakeKubeApi::namespace_json("shop", {{"istio.io/dataplane-mode", "ambient"}}));
    asio::io_context io;
    ApiClient client(io.get_executor(), fake.client_config());
    auto none = run_coro(io, client.list("/api/v1/pods", ""));
    REQUIRE_MESSAGE(none, message_of(none));
    CHECK(none->items.empty());
    CHECK_FALSE(none->resource_version.empty());
    auto namespaces = run_coro(io, client.list("/api/v1/namespaces", ""));
    REQUIRE_MESSAGE(namespaces, message_of(namespaces));
    REQUIRE(namespaces->items.size() == 1);
    CHECK(namespaces->items[0].at("metadata").at("labels").at("istio.io/dataplane-mode").as_string() == "ambient");
  }

  TEST_CASE("pod_json fields arrive as written; remove() by JSON text") {
    FakeKubeApi fake;
    FakeKubeApi::PodFields fields;
    fields.namespace_ = "shop";
    fields.name = "web-1";
    fields.node = "n1";
    fields.uid = "uid-1";
    fields.ip = "";
    fields.phase = "Pending";
    fields.host_network = true;
    fields.labels = {{"istio.io/dataplane-mode", "none"}};
    const std::string text = FakeKubeApi::pod_json(fields);
    fake.upsert(Resource::Pods, text);
    asio::io_context io;
    ApiClient client(io.get_executor(), fake.client_config());
    auto pod = run_coro(io, client.get("/api/v1/namespaces/shop/pods/web-1"));
    REQUIRE_MESSAGE(pod, message_of(pod));
    CHECK(pod->at("metadata").at("labels").at("istio.io/dataplane-mode").as_string() == "none");
    CHECK(pod->at("spec").at("hostNetwork").as_bool());
    CHECK(pod->at("status").at("phase").as_string() == "Pending");
    CHECK(pod->at("status").as_object().if_contains("podIP") == nullptr);
    CHECK_FALSE(fake.remove(Resource::Pods, text).empty());
    CHECK_FALSE(fake.object(Resource::Pods, "shop", "web-1"));
    CHECK(fake.remove(Resource::Pods, text).empty());  // already gone
  }

  TEST_CASE("get one object; NotFound on 404") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("shop", "web-0", "n1", "uid-web", "10.0.0.7"));
    asio::io_context io;
    ApiClient client(io.get_executor(), fake.client_config());
    auto pod = run_coro(io, client.get("/api/v1/namespaces/shop/pods/web-0"));
    REQUIRE_MESSAGE(pod, message_of(pod));
    CHECK(pod->at("metadata").at("uid").as_string() == "uid-web");
    CHECK(pod->at("status").at("podIP").as_string() == "10.0.0.7");
    CHECK(pod->at("metadata").as_object().if_contains("managedFields") == nullptr);

    auto missing = run_coro(io, client.get("/api/v1/namespaces/shop/pods/nope"));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);
    CHECK(contains(missing.error().context, "pods \"nope\" not found"));
    CHECK(contains(missing.error().context, "/api/v1/namespaces/shop/pods/nope"));
    CHECK(fake.counters().connections == 1);
  }

  TEST_CASE("merge_patch on pods/status: the annotation is applied and the request recorded; 404 for a missing pod") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("shop", "web-0", "n1"));
    const std::string before = fake.resource_version();
    asio::io_context io;
    ApiClient client(io.get_executor(), fake.client_config());
    const std::string body = R"({"metadata":{"annotations":{"ambient.istio.io/redirection":"enabled"}}})";
    auto patched = run_coro(io, client.merge_patch("/api/v1/namespaces/shop/pods/web-0/status", body));
    REQUIRE_MESSAGE(patched, message_of(patched));
    CHECK(fake.annotation("shop", "web-0", "ambient.istio.io/redirection") == "enabled");
    CHECK(fake.resource_version() != before);
    const auto patches = fake.patches();
    REQUIRE(patches.size() == 1);
    CHECK(patches[0].namespace_ == "shop");
    CHECK(patches[0].name == "web-0");
    CHECK(patches[0].subresource == "status");
    CHECK(patches[0].content_type == "application/merge-patch+json");
    CHECK(patches[0].body == body);

    // null removes the annotation (RFC 7386)
    auto removed = run_coro(io, client.merge_patch("/api/v1/namespaces/shop/pods/web-0/status",
                                                   R"({"metadata":{"annotations":{"ambient.istio.io/redirection":null}}})"));
    REQUIRE_MESSAGE(removed, message_of(removed));
    CHECK(fake.annotation("shop", "web-0", "ambient.istio.io/redirection").empty());

    auto gone = run_coro(io, client.merge_patch("/api/v1/namespaces/shop/pods/nope/status", body));
    REQUIRE_FALSE(gone);
    CHECK(gone.error().kind == ErrorKind::NotFound);
    CHECK(gone.error().code == 404);

    auto bad = run_coro(io, client.merge_patch("/api/v1/namespaces/shop/pods/web-0/status", "{not json"));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == ErrorKind::HttpStatus);
    CHECK(bad.error().code == 400);
    CHECK(contains(bad.error().context, "error decoding patch"));
    CHECK(fake.counters().connections == 1);  // every request on the one keep-alive connection
  }

  TEST_CASE("an idle keep-alive connection the server closed: the request is retried once on a new one") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", "a", "n1"));
    asio::io_context io;
    ApiClient client(io.get_executor(), fake.client_config());
    auto first = run_coro(io, client.get("/api/v1/namespaces/default/pods/a"));
    REQUIRE_MESSAGE(first, message_of(first));
    fake.close_idle_connections();
    auto second = run_coro(io, client.get("/api/v1/namespaces/default/pods/a"));
    REQUIRE_MESSAGE(second, message_of(second));
    CHECK(fake.counters().connections == 2);
    CHECK(fake.counters().gets == 2);
  }

  TEST_CASE("a CA that did not sign the server certificate: TlsHandshake naming the reason and the CA file") {
    FakeKubeApi fake;
    asio::io_context io;
    auto config = fake.client_config();
    config.ca_file = fake.unrelated_ca_file();
    ApiClient client(io.get_executor(), config);
    auto r = run_coro(io, client.get("/api/v1/namespaces/default/pods/x"));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::TlsHandshake);
    CHECK_MESSAGE(contains(r.error().context, "unable to get local issuer certificate"), r.error().context);
    CHECK(contains(r.error().context, fake.unrelated_ca_file()));
    CHECK(fake.counters().gets == 0);
  }

  TEST_CASE("the server name is verified: an IP against IP SANs, a DNS name against DNS SANs") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", "a", "n1"));
    asio::io_context io;
    struct Row {
      const char* server_name;
      bool accepted;
    };
    for (const Row row : {Row{"", true}, Row{"localhost", true}, Row{"kubernetes.default.svc", true},
                          Row{"wrong.example", false}, Row{"127.0.0.2", false}}) {
      CAPTURE(row.server_name);
      auto config = fake.client_config();
      config.server_name = row.server_name;
      ApiClient client(io.get_executor(), config);
      auto r = run_coro(io, client.get("/api/v1/namespaces/default/pods/a"));
      if (row.accepted) {
        CHECK_MESSAGE(r, message_of(r));
      } else {
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::TlsHandshake);
        CHECK_MESSAGE((contains(r.error().context, "mismatch")), r.error().context);
      }
    }
  }

  TEST_CASE("a wrong or missing token: HttpStatus 401 with a hint") {
    FakeKubeApi fake;
    test::TempDir dir("kube-token");
    asio::io_context io;
    auto config = fake.client_config();
    config.token_file = dir.write("token", "not-the-token");
    ApiClient wrong(io.get_executor(), config);
    auto r = run_coro(io, wrong.list("/api/v1/pods", ""));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::HttpStatus);
    CHECK(r.error().code == 401);
    CHECK_MESSAGE(contains(r.error().context, "answered 401: Unauthorized"), r.error().context);
    CHECK(contains(r.error().context, config.token_file));

    config.token_file.clear();
    ApiClient none(io.get_executor(), config);
    auto n = run_coro(io, none.list("/api/v1/pods", ""));
    REQUIRE_FALSE(n);
    CHECK(n.error().code == 401);
    CHECK(contains(n.error().context, "no token file"));
    CHECK(fake.counters().unauthorized == 2);
    CHECK(fake.counters().lists == 0);
  }

  TEST_CASE("the token file is re-read for every new connection (projected tokens rotate)") {
    test::TempDir dir("kube-token");
    FakeKubeApi::Options options;
    options.token = "rotated";
    FakeKubeApi fake(options);
    asio::io_context io;
    auto config = fake.client_config();
    config.token_file = dir.write("token", "old");
    ApiClient client(io.get_executor(), config);
    auto first = run_coro(io, client.watch("/api/v1/pods", "timeoutSeconds=1", [](WatchEvent) {}));
    REQUIRE_FALSE(first);
    CHECK(first.error().code == 401);
    dir.write("token", "rotated");
    auto second = run_coro(io, client.watch("/api/v1/pods", "timeoutSeconds=1", [](WatchEvent) {}));
    CHECK_MESSAGE(second, message_of(second));
  }

  TEST_CASE("server errors carry the status and the Status message") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", "a", "n1"));
    asio::io_context io;
    ApiClient client(io.get_executor(), fake.client_config());
    for (int status : {500, 503, 403}) {
      CAPTURE(status);
      fake.fail_next(1, status);
      auto r = run_coro(io, client.get("/api/v1/namespaces/default/pods/a"));
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::HttpStatus);
      CHECK(r.error().code == status);
      CHECK_MESSAGE(contains(r.error().context, fmt::format("injected failure {}", status)), r.error().context);
    }
    auto fine = run_coro(io, client.get("/api/v1/namespaces/default/pods/a"));
    CHECK_MESSAGE(fine, message_of(fine));
  }

  TEST_CASE("bounds: a list page or an answer head over its limit is an error naming the limit") {
    FakeKubeApi fake;
    add_pods(fake, "n1", 10);
    asio::io_context io;
    SUBCASE("list page") {
      ApiClientLimits limits;
      limits.max_list_page_bytes = 2000;
      ApiClient client(io.get_executor(), fake.client_config(), limits);
      auto r = run_coro(io, client.list("/api/v1/pods", ""));
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::ResourceExhausted);
      CHECK_MESSAGE(contains(r.error().context, "larger than 2000 bytes (max_list_page_bytes)"), r.error().context);
    }
    SUBCASE("answer head") {
      ApiClientLimits limits;
      limits.max_head_bytes = 40;
      ApiClient client(io.get_executor(), fake.client_config(), limits);
      auto r = run_coro(io, client.list("/api/v1/pods", ""));
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::ResourceExhausted);
      CHECK_MESSAGE(contains(r.error().context, "answer head larger than 40 bytes"), r.error().context);
    }
  }

  TEST_CASE("transport failures: refused, silent peer") {
    asio::io_context io;
    asio::ip::tcp::acceptor silent(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::uint16_t closed_port = 0;
    {
      asio::ip::tcp::acceptor probe(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      closed_port = probe.local_endpoint().port();
    }
    FakeKubeApi fake;  // for its CA file
    SUBCASE("nobody listens: ConnectRefused naming the server") {
      auto config = fake.client_config();
      config.port = closed_port;
      ApiClient client(io.get_executor(), config);
      auto r = run_coro(io, client.get("/api/v1/namespaces/default/pods/a"));
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::ConnectRefused);
      CHECK(contains(r.error().context, fmt::format("https://127.0.0.1:{}", closed_port)));
    }
    SUBCASE("a peer that accepts and never answers the handshake: Timeout") {
      auto config = fake.client_config();
      config.port = silent.local_endpoint().port();
      ApiClientLimits limits;
      limits.connect_timeout = 300ms;
      ApiClient client(io.get_executor(), config, limits);
      const auto start = std::chrono::steady_clock::now();
      auto r = run_coro(io, client.get("/api/v1/namespaces/default/pods/a"));
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::Timeout);
      CHECK_MESSAGE(contains(r.error().context, "no answer within 300 ms"), r.error().context);
      CHECK(std::chrono::steady_clock::now() - start < 5s);
    }
  }

  TEST_CASE("watch: replays after the resourceVersion, events in order, ends ok() at timeoutSeconds") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", "a", "n1"));
    const std::string from = fake.resource_version();
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", "b", "n1"));
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", "c", "n2"));  // another node: filtered out
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", "a", "n1", "", "10.0.0.9"));
    fake.remove(Resource::Pods, "default", "b");
    asio::io_context io;
    ApiClient client(io.get_executor(), fake.client_config());
    std::vector<std::string> seen;
    auto on_event = [&seen](WatchEvent e) {
      seen.push_back(fmt::format("{} {}", to_string(e.type), std::string(e.object.at("metadata").at("name").as_string())));
      CHECK(e.object.at("metadata").as_object().if_contains("managedFields") == nullptr);
    };
    const auto start = std::chrono::steady_clock::now();
    auto r = run_coro(io, client.watch("/api/v1/pods",
                                       "fieldSelector=spec.nodeName%3Dn1&resourceVersion=" + from + "&timeoutSeconds=1",
                                       on_event));
    CHECK_MESSAGE(r, message_of(r));
    CHECK(std::chrono::steady_clock::now() - start >= 900ms);
    CHECK(seen == std::vector<std::string>{"ADDED b", "MODIFIED a", "DELETED b"});
    const auto requests = fake.requests();
    REQUIRE(!requests.empty());
    CHECK(requests.back().param("watch") == "true");
  }

  TEST_CASE("watch: 410 Gone as an ERROR event and as an HTTP status are is_gone()") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", "a", "n1"));
    const std::string old = fake.resource_version();
    fake.upsert(Resource::Pods, FakeKubeApi::pod_json("default", "b", "n1"));
    fake.compact();
    asio::io_context io;
    ApiClient client(io.get_executor(), fake.client_config());
    int events = 0;
    auto r = run_coro(io, client.watch("/api/v1/pods", "resourceVersion=" + old, [&events](WatchEvent) { ++events; }));
    REQUIRE_FALSE(r);
    CHECK(is_gone(r.error()));
    CHECK_MESSAGE(contains(r.error().context, "ERROR event (code 410)"), r.error().context);
    CHECK(events == 0);

    fake.fail_next(1, 410);
    auto status = run_coro(io, client.watch("/api/v1/pods", "resourceVersion=" + fake.resource_version(),
                                            [](WatchEvent) {}));
    REQUIRE_FALSE(status);
    CHECK(is_gone(status.error()));

    fake.fail_next(1, 500);
    auto other = run_coro(io, client.watch("/api/v1/pods", "resourceVersion=" + fake.resource_version(),
                                           [](WatchEvent) {}));
    REQUIRE_FALSE(other);
    CHECK_FALSE(is_gone(other.error()));
    CHECK(other.error().code == 500);
  }

  TEST_CASE("query_escape is Go's url.QueryEscape for the characters that matter") {
    CHECK(query_escape("spec.nodeName=n1") == "spec.nodeName%3Dn1");
    CHECK(query_escape("a-b_c.d~e") == "a-b_c.d~e");
    CHECK(query_escape("x y/z&k=v,w") == "x%20y%2Fz%26k%3Dv%2Cw");
    CHECK(query_escape("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ==") == "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ%3D%3D");
  }
}
