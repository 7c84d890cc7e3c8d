#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/identity/certificate_source.h"
#include "common/tls/pki.h"
#include "common/identity/identity_manager.h"

// GCC false positive (PR middle-end/109224) on coroutine frames: see test/common/grpc/grpc_fixture.h.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

using namespace ambient;
using namespace std::chrono_literals;

TEST_SUITE("ztunnel/app/identity_manager") {
  TEST_CASE("issues per identity, publishes bundles, renews at half-life, forgets removed identities") {
    boost::asio::io_context io(1);
    auto ca = tls::CertificateAuthority::create_self_signed("cluster.local", 24h);
    REQUIRE(ca);
    std::vector<std::shared_ptr<const identity::CertBundle>> published;
    // 120 s requested, notBefore backdated 60 s: half-life is ~30 s away, so nothing renews in this test.
    identity::IdentityManager m(io.get_executor(), std::move(*ca), 120s,
                               [&](std::shared_ptr<const identity::CertBundle> b) { published.push_back(std::move(b)); });
    const std::string a = "spiffe://cluster.local/ns/demo/sa/a", b = "spiffe://cluster.local/ns/demo/sa/b";
    REQUIRE(m.set_identities({a, b}));
    REQUIRE(published.size() == 1);
    REQUIRE(published[0]->find(a) != nullptr);
    REQUIRE(published[0]->find(b) != nullptr);
    const auto* first = published[0]->find(a);
    CHECK(first->client_ctx != nullptr);
    CHECK(first->server_ctx != nullptr);
    CHECK(first->key.identity()->to_string() == a);
    io.run_for(100ms);  // the renewal timer is armed but not due
    CHECK(published.size() == 1);
    // Dropping b keeps a's certificate object (no reissue) and forgets b.
    REQUIRE(m.set_identities({a}));
    REQUIRE(published.size() == 2);
    CHECK(published[1]->find(b) == nullptr);
    CHECK(published[1]->find(a) == first);
    CHECK(published[1]->version == published[0]->version + 1);
  }

  TEST_CASE("a certificate past half-life is renewed and republished") {
    boost::asio::io_context io(1);
    auto ca = tls::CertificateAuthority::create_self_signed("cluster.local", 24h);
    REQUIRE(ca);
    std::vector<std::shared_ptr<const identity::CertBundle>> published;
    // 2 s requested + 60 s backdating: past half-life on arrival, 1 s left until half of the rest.
    identity::IdentityManager m(io.get_executor(), std::move(*ca), 2s,
                               [&](std::shared_ptr<const identity::CertBundle> b) { published.push_back(std::move(b)); });
    const std::string a = "spiffe://cluster.local/ns/demo/sa/a";
    REQUIRE(m.set_identities({a}));
    io.run_for(2500ms);
    REQUIRE(published.size() >= 2);
    const auto* old_cert = published.front()->find(a);
    const auto* new_cert = published.back()->find(a);
    REQUIRE(new_cert != nullptr);
    CHECK(new_cert != old_cert);
    CHECK(new_cert->not_after > old_cert->not_after);
  }

  TEST_CASE("a certificate already past half-life on arrival is renewed at half of what is left, not every second") {
    boost::asio::io_context io(1);
    auto ca = tls::CertificateAuthority::create_self_signed("cluster.local", 24h);
    REQUIRE(ca);
    std::vector<std::shared_ptr<const identity::CertBundle>> published;
    // 6 s requested + 60 s backdating: half-life was 27 s ago. Half of what is left: 3 s.
    identity::IdentityManager m(io.get_executor(), std::move(*ca), 6s,
                               [&](std::shared_ptr<const identity::CertBundle> b) { published.push_back(std::move(b)); });
    const std::string a = "spiffe://cluster.local/ns/demo/sa/a";
    auto certs = [&] {
      std::set<const identity::WorkloadCert*> seen;
      for (const auto& b : published)
        if (const auto* c = b->find(a)) seen.insert(c);
      return seen.size();
    };
    REQUIRE(m.set_identities({a}));
    io.run_for(2000ms);   // notAfter has a one-second resolution: the renewal is 2.5 to 3 s away
    CHECK(certs() == 1);  // min_refresh (1 s) would have renewed by now
    io.run_for(2000ms);
    CHECK(certs() == 2);
  }
}

// ---- the asynchronous path, with a CertificateSource that needs I/O ---------------------------------------

namespace {

namespace asio = boost::asio;

// A CA with controllable latency and failures, standing in for istiod: a real signer (its own P-256
// root, tls::sign_certificate), not a mock. Unlike tls::CertificateAuthority it does not backdate
// notBefore, so a certificate for ttl T is valid for exactly [now, now + T] (to the second) and its
// half-life is T/2 away: short renewal tests in seconds. Asynchronous (no fetch_now), as IstioCaClient.
class TestCa final : public identity::CertificateSource {
 public:
  explicit TestCa(asio::any_io_executor ex) : ex_(ex) {
    root_key_ = std::move(*tls::generate_p256_key());
    tls::CertificateSpec spec;
    spec.organization = "test-ca";
    spec.is_ca = true;
    spec.not_before = std::chrono::system_clock::now() - 1h;
    spec.not_after = std::chrono::system_clock::now() + 24h;
    root_ = std::move(*tls::sign_certificate(spec, root_key_.get(), nullptr, nullptr));
  }

  // identity::CertificateSource
  asio::awaitable<Result<tls::CertifiedKey>> fetch(tls::SpiffeId id, std::chrono::seconds ttl) override {
    started.push_back(id.to_string());
    start_times.push_back(std::chrono::system_clock::now());
    max_in_flight = std::max(max_in_flight, ++in_flight);
    if (latency.count() > 0) {
      asio::steady_timer t(ex_);
      t.expires_after(latency);
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    --in_flight;
    if (fail) co_return make_error(ErrorKind::Io, "test CA: injected failure");
    auto key = tls::generate_p256_key();
    if (!key) co_return std::move(key).error();
    tls::CertificateSpec spec;
    spec.uri_sans = {id.to_string()};
    spec.not_before = std::chrono::system_clock::now();
    spec.not_after = spec.not_before + ttl;
    auto leaf = tls::sign_certificate(spec, key->get(), root_.get(), root_key_.get());
    if (!leaf) co_return std::move(leaf).error();
    tls::CertifiedKey out;
    out.key = std::move(*key);
    out.chain.push_back(std::move(*leaf));
    out.roots.push_back(bssl::UpRef(root_));
    co_return std::move(out);
  }

  std::chrono::milliseconds latency{0};
  bool fail = false;
  std::vector<std::string> started;  // identities, in the order fetches began
  std::vector<std::chrono::system_clock::time_point> start_times;
  int in_flight = 0;
  int max_in_flight = 0;

 private:
  asio::any_io_executor ex_;
  bssl::UniquePtr<EVP_PKEY> root_key_;
  bssl::UniquePtr<X509> root_;
};

struct Harness {
  asio::io_context io{1};
  std::shared_ptr<TestCa> ca = std::make_shared<TestCa>(io.get_executor());
  std::vector<std::shared_ptr<const identity::CertBundle>> published;
  std::function<void()> on_publish;  // runs inside the publish callback (deterministic fault injection)
  std::unique_ptr<identity::IdentityManager> m;

  explicit Harness(std::chrono::seconds ttl, identity::IdentityOptions options = {}) {
    m = std::make_unique<identity::IdentityManager>(io.get_executor(), ca, ttl,
                                                   [this](std::shared_ptr<const identity::CertBundle> b) {
                                                     published.push_back(std::move(b));
                                                     if (on_publish) on_publish();
                                                   },
                                                   std::move(options));
  }
  const identity::CertBundle& last() const { return *published.back(); }
  // Runs the io_context in 20 ms slices until pred() or the timeout; returns pred().
  template <typename Pred>
  bool run_until(Pred pred, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!pred() && std::chrono::steady_clock::now() < until) io.run_for(20ms);
    return pred();
  }
};

const std::string kA = "spiffe://cluster.local/ns/demo/sa/a";
const std::string kB = "spiffe://cluster.local/ns/demo/sa/b";
const std::string kC = "spiffe://cluster.local/ns/demo/sa/c";
const std::string kD = "spiffe://cluster.local/ns/demo/sa/d";

std::chrono::system_clock::time_point half_life(const identity::WorkloadCert& c) {
  return c.not_before + (c.not_after - c.not_before) / 2;
}

}  // namespace

TEST_SUITE("ztunnel/app/identity_manager") {
  TEST_CASE("async source: set_identities returns at once, the certificate is published when it arrives") {
    Harness h(3600s);
    h.ca->latency = 50ms;
    REQUIRE(h.m->set_identities({kA}));
    REQUIRE(h.published.size() == 1);  // the bundle of the call itself: nothing issued yet
    CHECK(h.last().find(kA) == nullptr);
    REQUIRE(h.run_until([&] { return h.last().find(kA) != nullptr; }, 2s));
    CHECK(h.last().find(kA)->key.identity()->to_string() == kA);
    CHECK(h.m->stats().fetches == 1);
  }

  TEST_CASE("renewal at half-life publishes a new certificate; the identity never leaves the bundle") {
    Harness h(4s);
    REQUIRE(h.m->set_identities({kA}));
    REQUIRE(h.run_until([&] { return h.ca->started.size() >= 2 && h.last().find(kA) != h.published[1]->find(kA); }, 4s));
    const auto* first = h.published[1]->find(kA);
    REQUIRE(first != nullptr);
    const auto renewed_at = h.ca->start_times[1];
    CHECK(renewed_at >= half_life(*first) - 50ms);
    CHECK(renewed_at <= half_life(*first) + 300ms);
    const auto* second = h.last().find(kA);
    REQUIRE(second != nullptr);
    CHECK(second != first);
    for (std::size_t i = 1; i < h.published.size(); ++i) CHECK(h.published[i]->find(kA) != nullptr);
  }

  TEST_CASE("failed renewals back off 500 ms, 1 s, ... and keep the current certificate published") {
    Harness h(6s);  // half-life 2-3 s away (notBefore/notAfter have a one-second resolution), expiry 5-6 s
    h.on_publish = [&] {
      if (h.last().find(kA) != nullptr) h.ca->fail = true;  // every fetch after the first fails
    };
    REQUIRE(h.m->set_identities({kA}));
    REQUIRE(h.run_until([&] { return h.ca->started.size() >= 3; }, 5s));
    const auto* cert = h.published[1]->find(kA);
    REQUIRE(cert != nullptr);
    CHECK(h.last().find(kA) == cert);  // still the first certificate
    CHECK(std::chrono::system_clock::now() < cert->not_after);
    const auto gap1 = h.ca->start_times[2] - h.ca->start_times[1];
    CHECK(gap1 >= 450ms);
    CHECK(gap1 <= 800ms);
    CHECK(h.m->stats().failures >= 2);
    CHECK(h.m->stats().expired == 0);
    if (h.run_until([&] { return h.ca->started.size() >= 4; }, 1500ms)) {
      const auto gap2 = h.ca->start_times[3] - h.ca->start_times[2];
      CHECK(gap2 >= 950ms);
      CHECK(gap2 <= 1300ms);
    }
  }

  TEST_CASE("an expired certificate leaves the bundle while renewal fails, and comes back when a fetch succeeds") {
    Harness h(2s);
    h.on_publish = [&] {
      if (h.last().find(kA) != nullptr) h.ca->fail = true;
    };
    REQUIRE(h.m->set_identities({kA}));
    REQUIRE(h.run_until([&] { return h.published.size() >= 2; }, 1s));
    const auto* cert = h.last().find(kA);
    REQUIRE(cert != nullptr);
    const auto expiry = cert->not_after;
    REQUIRE(h.run_until([&] { return h.last().find(kA) == nullptr; }, 3s));
    CHECK(std::chrono::system_clock::now() >= expiry);
    CHECK(std::chrono::system_clock::now() <= expiry + 300ms);  // removed on time, not at the next retry
    CHECK(h.m->stats().expired == 1);
    CHECK(h.m->stats().failures >= 1);
    h.on_publish = nullptr;
    h.ca->fail = false;
    REQUIRE(h.run_until([&] { return h.last().find(kA) != nullptr; }, 5s));
    CHECK(std::chrono::system_clock::now() < h.last().find(kA)->not_after);
  }

  TEST_CASE("at most 8 fetches in flight: 20 identities") {
    Harness h(3600s);
    h.ca->latency = 100ms;
    std::set<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.insert(fmt::format("spiffe://cluster.local/ns/demo/sa/sa-{:02}", i));
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(h.m->set_identities(ids));
    REQUIRE(h.run_until([&] { return h.last().certs.size() == 20; }, 5s));
    CHECK(h.ca->max_in_flight == 8);
    CHECK(h.m->stats().max_in_flight_seen == 8);
    CHECK(h.m->stats().fetches == 20);
    CHECK(h.m->stats().in_flight == 0);
    CHECK(std::chrono::steady_clock::now() - start >= 300ms);  // three waves: 8, 8, 4
  }

  TEST_CASE("priority: an awaited fetch goes before queued warmups") {
    identity::IdentityOptions options;
    options.max_in_flight = 1;
    Harness h(3600s, std::move(options));
    h.ca->latency = 50ms;
    REQUIRE(h.m->set_identities({kA, kB, kC}));  // a in flight; b, c queued (Warmup)
    std::optional<Result<std::shared_ptr<const identity::WorkloadCert>>> got;
    asio::co_spawn(h.io,
                   [](identity::IdentityManager& m, auto& out) -> asio::awaitable<void> {
                     out.emplace(co_await m.fetch_certificate(kD));
                   }(*h.m, got),
                   asio::detached);
    REQUIRE(h.run_until([&] { return h.last().certs.size() == 4; }, 3s));
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());
    CHECK((**got)->identity == kD);
    CHECK(h.last().find(kD) == got->value().get());
    CHECK(h.ca->started == std::vector<std::string>{kA, kD, kB, kC});
  }

  TEST_CASE("fetch_certificate: the source's error, a refused identity, a cached certificate") {
    Harness h(3600s);
    h.ca->fail = true;
    asio::io_context& io = h.io;
    auto fetch = [&](std::string id) {
      std::optional<Result<std::shared_ptr<const identity::WorkloadCert>>> out;
      asio::co_spawn(io, [](identity::IdentityManager& m, std::string id, auto& o) -> asio::awaitable<void> {
        o.emplace(co_await m.fetch_certificate(std::move(id)));
      }(*h.m, std::move(id), out), asio::detached);
      h.run_until([&] { return out.has_value(); }, 2s);
      return out;
    };
    auto failed = fetch(kA);
    REQUIRE(failed.has_value());
    REQUIRE_FALSE(failed->has_value());
    CHECK(failed->error().context.find("injected failure") != std::string::npos);
    auto refused = fetch("spiffe://cluster.local/ns/demo");
    REQUIRE(refused.has_value());
    REQUIRE_FALSE(refused->has_value());
    h.ca->fail = false;
    auto good = fetch(kA);  // bypasses the backoff: a caller awaits it
    REQUIRE(good.has_value());
    REQUIRE(good->has_value());
    const auto fetches = h.ca->started.size();
    auto cached = fetch(kA);
    REQUIRE(cached.has_value());
    REQUIRE(cached->has_value());
    CHECK(cached->value() == good->value());
    CHECK(h.ca->started.size() == fetches);
  }

  TEST_CASE("set_identities forgets: the certificate leaves, a fetch in flight for it is dropped") {
    Harness h(3600s);
    h.ca->latency = 100ms;
    REQUIRE(h.m->set_identities({kA, kB}));
    REQUIRE(h.run_until([&] { return h.last().certs.size() == 2; }, 2s));
    const auto* a = h.last().find(kA);
    REQUIRE(h.m->set_identities({kA}));
    CHECK(h.last().find(kB) == nullptr);
    CHECK(h.last().find(kA) == a);
    REQUIRE(h.m->set_identities({kA, kC}));
    h.io.run_for(30ms);  // c's fetch is in flight
    REQUIRE(h.ca->in_flight == 1);
    REQUIRE(h.m->set_identities({kA}));
    h.io.run_for(300ms);  // c's fetch returns and is dropped
    CHECK(h.ca->in_flight == 0);
    for (const auto& b : h.published) CHECK(b->find(kC) == nullptr);
    CHECK(h.last().find(kA) == a);
    REQUIRE(h.m->set_identities({}));
    CHECK(h.last().certs.empty());
  }
}
