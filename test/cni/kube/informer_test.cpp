#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "cni/kube/informer.h"
#include "test/cni/kube/kube_test_support.h"
#include "test/support/fake_kube_api.h"

using namespace ambient;
using namespace ambient::cni::kube;
using ambient::cni::kube::test_support::Recorder;
using ambient::cni::kube::test_support::run_until;
using ambient::test::FakeKubeApi;
using Resource = FakeKubeApi::Resource;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Fast retries for tests (the default is 200 ms doubling to 30 s).
InformerOptions pod_options(std::string_view node) {
  InformerOptions o;
  o.name = "pods";
  o.path = "/api/v1/pods";
  o.query = "fieldSelector=" + query_escape(fmt::format("spec.nodeName={}", node));
  o.backoff = BackoffPolicy{20ms, 200ms, 0.5};
  return o;
}

std::string pod(std::string_view name, std::string_view node = "n1", std::string_view ip = "10.0.0.1",
                std::string_view uid = "") {
  return FakeKubeApi::pod_json("default", name, node, uid, ip);
}

// The informer, its client and its recorder on one io_context driven by the test thread.
struct Harness {
  explicit Harness(FakeKubeApi& fake, InformerOptions options = pod_options("n1"), ApiClientLimits limits = {})
      : client(io.get_executor(), fake.client_config(), limits),
        informer(std::make_unique<Informer>(io.get_executor(), client, std::move(options), recorder.handler())) {}

  bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
    return test_support::run_until(io, pred, timeout);
  }
  bool start_and_sync(FakeKubeApi& fake) {
    informer->start();
    return run_until([&] { return informer->synced() && fake.open_watches() >= 1; });
  }

  asio::io_context io;
  Recorder recorder;
  ApiClient client;
  std::unique_ptr<Informer> informer;
};

std::vector<FakeKubeApi::RecordedRequest> watch_requests(const FakeKubeApi& fake) {
  std::vector<FakeKubeApi::RecordedRequest> out;
  for (auto& r : fake.requests()) {
    if (r.param("watch") == "true") out.push_back(r);
  }
  return out;
}

}  // namespace

TEST_SUITE("cni/kube/informer") {
  TEST_CASE("initial sync: the node's pods (paged), then on_synced; get() finds them without managedFields") {
    FakeKubeApi fake;
    for (auto name : {"a", "b", "c"}) fake.upsert(Resource::Pods, pod(name));
    fake.upsert(Resource::Pods, pod("elsewhere", "n2"));
    ApiClientLimits limits;
    limits.list_page_size = 2;
    Harness h(fake, pod_options("n1"), limits);
    REQUIRE(h.start_and_sync(fake));

    CHECK(h.recorder.calls.size() == 4);
    CHECK(h.recorder.calls.back() == "synced");
    CHECK(h.recorder.upserts_of("default/a") == 1);
    CHECK(h.recorder.upserts_of("default/b") == 1);
    CHECK(h.recorder.upserts_of("default/c") == 1);
    CHECK(h.recorder.upserts_of("default/elsewhere") == 0);
    CHECK(h.informer->size() == 3);
    const auto* a = h.informer->get("default", "a");
    REQUIRE(a != nullptr);
    CHECK(a->at("metadata").as_object().if_contains("managedFields") == nullptr);
    CHECK(h.informer->get("default", "elsewhere") == nullptr);
    CHECK(fake.counters().lists == 2);  // pages of 2
    CHECK(h.informer->stats().lists == 1);

    const auto watches = watch_requests(fake);
    REQUIRE(watches.size() == 1);
    CHECK(watches[0].param("resourceVersion") == fake.resource_version());
    CHECK(watches[0].param("allowWatchBookmarks") == "true");
    CHECK(watches[0].param("fieldSelector") == "spec.nodeName=n1");
    const int timeout = std::stoi(watches[0].param("timeoutSeconds"));
    CHECK(timeout >= 300);
    CHECK(timeout <= 600);
  }

  TEST_CASE("added, modified and deleted events reach the handler in order; other nodes' pods do not") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, pod("a"));
    Harness h(fake);
    REQUIRE(h.start_and_sync(fake));
    h.recorder.calls.clear();

    const std::string rv_b = fake.upsert(Resource::Pods, pod("b"));
    fake.upsert(Resource::Pods, pod("x", "n2"));
    const std::string rv_a = fake.upsert(Resource::Pods, pod("a", "n1", "10.0.0.2"));
    fake.remove(Resource::Pods, "default", "b");
    REQUIRE(h.run_until([&] { return h.recorder.calls.size() == 3; }));
    CHECK(h.recorder.calls == std::vector<std::string>{"upsert default/b rv=" + rv_b, "upsert default/a rv=" + rv_a,
                                                       "delete default/b"});
    CHECK(h.informer->get("default", "b") == nullptr);
    REQUIRE(h.informer->get("default", "a") != nullptr);
    CHECK(h.informer->get("default", "a")->at("status").at("podIP").as_string() == "10.0.0.2");
    CHECK(h.informer->resource_version() == fake.resource_version());
    const auto stats = h.informer->stats();
    CHECK(stats.events == 3);
    CHECK(stats.errors == 0);
    CHECK(stats.watches == 1);
  }

  TEST_CASE("a dropped watch resumes from the last resourceVersion: no relist, no duplicate handler calls") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, pod("a"));
    Harness h(fake);
    REQUIRE(h.start_and_sync(fake));
    const std::string rv_b = fake.upsert(Resource::Pods, pod("b"));
    REQUIRE(h.run_until([&] { return h.recorder.upserts_of("default/b") == 1; }));

    fake.drop_watches();
    fake.upsert(Resource::Pods, pod("c"));  // while the watch is down, or replayed after it
    REQUIRE(h.run_until([&] { return h.recorder.upserts_of("default/c") == 1 && fake.open_watches() == 1; }));

    CHECK(fake.counters().lists == 1);
    CHECK(h.informer->stats().lists == 1);
    CHECK(h.recorder.upserts_of("default/a") == 1);
    CHECK(h.recorder.upserts_of("default/b") == 1);
    CHECK(h.recorder.deletes.empty());
    const auto watches = watch_requests(fake);
    REQUIRE(watches.size() == 2);
    CHECK(watches[1].param("resourceVersion") == rv_b);
    CHECK(h.informer->stats().errors == 1);
    CHECK_MESSAGE(h.informer->stats().last_error.find("closed") != std::string::npos, h.informer->stats().last_error);
  }

  TEST_CASE("a bookmark moves the resourceVersion without a handler call; the next watch starts there") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, pod("a"));
    Harness h(fake);
    REQUIRE(h.start_and_sync(fake));
    const auto calls = h.recorder.calls.size();
    fake.upsert(Resource::Namespaces, FakeKubeApi::namespace_json("shop"));  // bumps the global resourceVersion
    const std::string now = fake.resource_version();
    fake.send_bookmarks();
    REQUIRE(h.run_until([&] { return h.informer->resource_version() == now; }));
    CHECK(h.recorder.calls.size() == calls);
    fake.drop_watches();
    REQUIRE(h.run_until([&] { return watch_requests(fake).size() == 2; }));
    CHECK(watch_requests(fake)[1].param("resourceVersion") == now);
    CHECK(fake.counters().lists == 1);
  }

  TEST_CASE("a stream that ends normally (timeoutSeconds) is watched again from the last resourceVersion") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, pod("a"));
    auto options = pod_options("n1");
    options.min_watch_timeout = 1s;
    options.max_watch_timeout = 1s;
    options.min_healthy_watch = 500ms;
    Harness h(fake, options);
    REQUIRE(h.start_and_sync(fake));
    const std::string rv_b = fake.upsert(Resource::Pods, pod("b"));
    REQUIRE(h.run_until([&] { return watch_requests(fake).size() >= 3; }));
    const auto watches = watch_requests(fake);
    CHECK(watches[0].param("timeoutSeconds") == "1");
    CHECK(watches[2].param("resourceVersion") == rv_b);
    CHECK(fake.counters().lists == 1);
    CHECK(h.informer->stats().errors == 0);
    CHECK(h.recorder.upserts_of("default/b") == 1);
  }

  TEST_CASE("compaction -> 410 -> relist: the diff delivers what changed while disconnected, deletions once") {
    FakeKubeApi fake;
    for (auto name : {"a", "b", "c"}) fake.upsert(Resource::Pods, pod(name));
    Harness h(fake);
    REQUIRE(h.start_and_sync(fake));
    REQUIRE(h.recorder.synced == 1);

    // Disconnect the informer and keep it out (503s) while the world changes, then compact the history.
    fake.fail_next(1'000'000, 503);
    fake.drop_watches();
    REQUIRE(h.run_until([&] { return h.informer->stats().errors >= 2; }));
    fake.remove(Resource::Pods, "default", "b");
    const std::string rv_c = fake.upsert(Resource::Pods, pod("c", "n1", "10.0.0.3"));
    const std::string rv_d = fake.upsert(Resource::Pods, pod("d"));
    fake.compact();
    h.recorder.calls.clear();
    fake.fail_next(0, 0);

    REQUIRE(h.run_until([&] { return h.recorder.synced == 2; }));
    CHECK(h.recorder.calls ==
          std::vector<std::string>{"delete default/b", "upsert default/c rv=" + rv_c, "upsert default/d rv=" + rv_d, "synced"});
    CHECK(h.recorder.deletes_of("default/b") == 1);
    CHECK(h.recorder.upserts_of("default/a") == 1);  // unchanged: not delivered again
    const auto stats = h.informer->stats();
    CHECK(stats.relists_on_gone == 1);
    CHECK(stats.lists == 2);
    CHECK(h.informer->get("default", "b") == nullptr);
    CHECK(h.informer->size() == 3);

    // The relist's watch starts from the new list; later events flow again, b's deletion is not repeated.
    REQUIRE(h.run_until([&] { return fake.open_watches() == 1; }));
    fake.remove(Resource::Pods, "default", "a");
    REQUIRE(h.run_until([&] { return h.recorder.deletes_of("default/a") == 1; }));
    CHECK(h.recorder.deletes_of("default/b") == 1);
  }

  TEST_CASE("410 Gone as the watch's HTTP status relists too; an unchanged world gives no handler call") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, pod("a"));
    Harness h(fake);
    REQUIRE(h.start_and_sync(fake));
    const auto calls = h.recorder.calls.size();
    fake.fail_next(1, 410);
    fake.drop_watches();
    REQUIRE(h.run_until([&] { return h.recorder.synced == 2; }));
    CHECK(h.recorder.calls.size() == calls + 1);  // only "synced"
    CHECK(h.informer->stats().relists_on_gone == 1);
    CHECK(fake.counters().lists == 2);
  }

  TEST_CASE("5xx answers: backoff and recovery, the cache is kept meanwhile") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, pod("a"));
    fake.fail_next(2, 503);  // the first two lists fail
    Harness h(fake);
    h.informer->start();
    REQUIRE(h.run_until([&] { return h.informer->synced(); }));
    CHECK(h.informer->stats().errors == 2);
    CHECK_MESSAGE(h.informer->stats().last_error.find("503") != std::string::npos, h.informer->stats().last_error);
    REQUIRE(h.run_until([&] { return fake.open_watches() == 1; }));

    fake.fail_next(3, 500);
    fake.drop_watches();
    REQUIRE(h.run_until([&] { return fake.counters().injected == 5; }));
    CHECK(h.informer->get("default", "a") != nullptr);  // known objects survive errors
    CHECK(h.informer->synced());
    REQUIRE(h.run_until([&] { return fake.open_watches() == 1; }));
    fake.upsert(Resource::Pods, pod("b"));
    REQUIRE(h.run_until([&] { return h.recorder.upserts_of("default/b") == 1; }));
    const auto stats = h.informer->stats();
    CHECK(stats.errors == 2 + 1 + 3);  // two lists, the dropped stream, three refused watches
    CHECK(stats.lists == 1);
    CHECK(h.recorder.deletes.empty());
    CHECK(h.informer->get("default", "a") != nullptr);
  }

  TEST_CASE("a malformed event line is skipped: the watch restarts from the last good resourceVersion") {
    struct Row {
      const char* name;
      std::string line;
      const char* reason;
    };
    const std::vector<Row> rows = {
        {"bad JSON", "{not json", "JSON syntax error"},
        {"unknown type", R"({"type":"PATCHED","object":{"metadata":{"name":"z","uid":"u"}}})", "type 'PATCHED'"},
        {"no uid", R"({"type":"ADDED","object":{"metadata":{"name":"z","namespace":"default"}}})",
         "metadata.uid: missing"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      FakeKubeApi fake;
      fake.upsert(Resource::Pods, pod("a"));
      Harness h(fake);
      REQUIRE(h.start_and_sync(fake));
      const std::string rv_b = fake.upsert(Resource::Pods, pod("b"));
      fake.inject_raw_watch_line(row.line);
      fake.upsert(Resource::Pods, pod("c"));  // after the bad line: delivered by the restarted watch
      REQUIRE(h.run_until([&] { return h.recorder.upserts_of("default/c") == 1; }));
      const auto stats = h.informer->stats();
      CHECK(stats.malformed_events == 1);
      CHECK(stats.errors == 1);
      CHECK_MESSAGE(stats.last_error.find(row.reason) != std::string::npos, stats.last_error);
      CHECK(stats.lists == 1);
      CHECK(h.recorder.upserts_of("default/b") == 1);
      CHECK(h.informer->get("default", "z") == nullptr);
      CHECK(h.informer->get("default", "a") != nullptr);
      const auto watches = watch_requests(fake);
      REQUIRE(watches.size() == 2);
      CHECK(watches[1].param("resourceVersion") == rv_b);
    }
  }

  TEST_CASE("an oversize event line: an error naming the limit; the stream continues after a reconnect") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, pod("a"));
    ApiClientLimits limits;
    limits.max_event_line_bytes = 4096;
    Harness h(fake, pod_options("n1"), limits);
    REQUIRE(h.start_and_sync(fake));
    fake.inject_raw_watch_line(std::string(10'000, 'x'));
    fake.upsert(Resource::Pods, pod("b"));
    REQUIRE(h.run_until([&] { return h.recorder.upserts_of("default/b") == 1; }));
    const auto stats = h.informer->stats();
    CHECK(stats.errors == 1);
    CHECK(stats.malformed_events == 0);
    CHECK_MESSAGE(stats.last_error.find("longer than 4096 bytes") != std::string::npos, stats.last_error);
    CHECK(stats.lists == 1);
    CHECK(h.informer->get("default", "a") != nullptr);
  }

  TEST_CASE("a pod recreated under the same name while disconnected: delete of the old uid, then upsert") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, pod("a", "n1", "10.0.0.1", "uid-old"));
    Harness h(fake);
    REQUIRE(h.start_and_sync(fake));
    h.recorder.calls.clear();
    fake.upsert(Resource::Pods, pod("a", "n1", "10.0.0.2", "uid-new"));  // the fake emits DELETED then ADDED
    REQUIRE(h.run_until([&] { return h.recorder.calls.size() == 2; }));
    CHECK(h.recorder.calls[0] == "delete default/a");
    CHECK(h.recorder.calls[1].rfind("upsert default/a", 0) == 0);
    CHECK(h.informer->get("default", "a")->at("metadata").at("uid").as_string() == "uid-new");
  }

  TEST_CASE("namespaces: a cluster-scoped collection") {
    FakeKubeApi fake;
    fake.upsert(Resource::Namespaces, FakeKubeApi::namespace_json("shop", {{"istio.io/dataplane-mode", "ambient"}}));
    InformerOptions options;
    options.name = "namespaces";
    options.path = "/api/v1/namespaces";
    options.backoff = BackoffPolicy{20ms, 200ms, 0.5};
    Harness h(fake, options);
    REQUIRE(h.start_and_sync(fake));
    const auto* shop = h.informer->get("", "shop");
    REQUIRE(shop != nullptr);
    CHECK(shop->at("metadata").at("labels").at("istio.io/dataplane-mode").as_string() == "ambient");
    fake.upsert(Resource::Namespaces, FakeKubeApi::namespace_json("shop"));
    REQUIRE(h.run_until([&] { return h.recorder.upserts_of("shop") == 2; }));
    CHECK(h.informer->get("", "shop")->at("metadata").at("labels").as_object().empty());
  }

  TEST_CASE("stop(): no handler call after it returns; the coroutine ends and its watch connection closes") {
    FakeKubeApi fake;
    fake.upsert(Resource::Pods, pod("a"));
    Harness h(fake);
    REQUIRE(h.start_and_sync(fake));
    h.informer->stop();
    const auto calls = h.recorder.calls.size();
    fake.upsert(Resource::Pods, pod("b"));
    fake.remove(Resource::Pods, "default", "a");
    REQUIRE(h.run_until([&] { return fake.open_watches() == 0; }));
    h.informer.reset();  // destroying a stopped informer is fine while its coroutine winds down
    h.io.restart();
    h.io.run_for(2s);  // returns at once when no work is left: the coroutine has ended
    CHECK(h.io.stopped());
    CHECK(h.recorder.calls.size() == calls);
  }

  TEST_CASE("stop() from inside a handler: the rest of a relist diff is not delivered") {
    FakeKubeApi fake;
    for (auto name : {"a", "b", "c"}) fake.upsert(Resource::Pods, pod(name));
    asio::io_context io;
    ApiClient client(io.get_executor(), fake.client_config());
    int upserts = 0;
    bool synced = false;
    std::unique_ptr<Informer> informer;
    Informer::Handler handler;
    handler.on_upsert = [&](const boost::json::object&) {
      ++upserts;
      informer->stop();
    };
    handler.on_synced = [&] { synced = true; };
    informer = std::make_unique<Informer>(io.get_executor(), client, pod_options("n1"), handler);
    informer->start();
    REQUIRE(test_support::run_until(io, [&] { return upserts > 0; }));
    io.restart();
    io.run_for(2s);
    CHECK(io.stopped());
    CHECK(upserts == 1);
    CHECK_FALSE(synced);
  }
}
