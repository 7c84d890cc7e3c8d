#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>

#include "ztunnel/app/identity_manager.h"

using namespace ambient;
using namespace std::chrono_literals;

TEST_SUITE("ztunnel/app/identity_manager") {
  TEST_CASE("issues per identity, publishes bundles, renews at half-life, forgets removed identities") {
    boost::asio::io_context io(1);
    auto ca = tls::CertificateAuthority::create_self_signed("cluster.local", 24h);
    REQUIRE(ca);
    std::vector<std::shared_ptr<const ztunnel::CertBundle>> published;
    // 120 s requested, notBefore backdated 60 s: half-life is ~30 s away, so nothing renews in this test.
    ztunnel::IdentityManager m(io.get_executor(), std::move(*ca), 120s,
                               [&](std::shared_ptr<const ztunnel::CertBundle> b) { published.push_back(std::move(b)); });
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
    std::vector<std::shared_ptr<const ztunnel::CertBundle>> published;
    // 61 s requested + 60 s backdating: half-life is ~0.5 s from now.
    ztunnel::IdentityManager m(io.get_executor(), std::move(*ca), 61s,
                               [&](std::shared_ptr<const ztunnel::CertBundle> b) { published.push_back(std::move(b)); });
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
}
