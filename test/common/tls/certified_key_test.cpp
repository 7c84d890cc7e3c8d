#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/tls/ca.h"
#include "common/tls/certified_key.h"
#include "test/common/tls/test_pki.h"

using namespace ambient;
using namespace ambient::tls;
using ambient::tls::testing::must;
using namespace std::chrono_literals;

namespace {
bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}
const SpiffeId kApp{"cluster.local", "default", "app"};
}  // namespace

TEST_SUITE("common/tls/certified_key") {
  TEST_CASE("from_ca_response: leaf and intermediates first, roots last (several roots in one element)") {
    auto root = testing::make_raw_ca("root.example");
    auto second_root = testing::make_raw_ca("next-root.example");
    auto inter = testing::make_raw_ca("intermediate.example", &root);
    auto leaf = testing::make_leaf(inter, kApp.to_string(), true, true, {}, {});
    const std::string key_pem = must(private_key_to_pem(leaf.key.get()));
    const std::vector<std::string> response = {
        must(certificate_to_pem(leaf.leaf())),
        must(certificate_to_pem(inter.cert.get())),
        must(certificate_to_pem(root.cert.get())) + must(certificate_to_pem(second_root.cert.get())),
    };
    auto ck = must(CertifiedKey::from_ca_response(key_pem, response));
    REQUIRE(ck.chain.size() == 2);
    REQUIRE(ck.roots.size() == 2);
    CHECK(X509_cmp(ck.chain[0].get(), leaf.leaf()) == 0);
    CHECK(X509_cmp(ck.chain[1].get(), inter.cert.get()) == 0);
    CHECK(X509_cmp(ck.roots[1].get(), second_root.cert.get()) == 0);
    CHECK(must(ck.identity()) == kApp);
    CHECK(must(ck.chain_pem()) == response[0] + response[1]);
    CHECK(must(ck.roots_pem()) == response[2]);
    CHECK(must(ck.not_before()) < must(ck.not_after()));

    auto copy = ck.share();
    CHECK(copy.key.get() == ck.key.get());
    CHECK(copy.chain[1].get() == ck.chain[1].get());
    CHECK(copy.roots.size() == 2);
  }

  TEST_CASE("from_pem is the same with separate chain and roots") {
    auto ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h));
    auto issued = must(ca.issue(kApp, 1h));
    auto ck = must(CertifiedKey::from_pem(must(private_key_to_pem(issued.key.get())), must(issued.chain_pem()),
                                          ca.root_pem()));
    CHECK(X509_cmp(ck.leaf(), issued.leaf()) == 0);
    CHECK(must(ck.identity()) == kApp);
  }

  TEST_CASE("refusals: key of another certificate, short response, no SPIFFE SAN") {
    auto ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h));
    auto a = must(ca.issue(kApp, 1h));
    auto b = must(ca.issue(kApp, 1h));
    auto mismatch = CertifiedKey::from_pem(must(private_key_to_pem(b.key.get())), must(a.chain_pem()), ca.root_pem());
    REQUIRE_FALSE(mismatch);
    CHECK(mismatch.error().kind == ErrorKind::Certificate);
    CHECK(contains(mismatch.error().context, "private key does not match the leaf certificate"));

    auto short_response = CertifiedKey::from_ca_response(must(private_key_to_pem(a.key.get())), {must(a.chain_pem())});
    REQUIRE_FALSE(short_response);
    CHECK(contains(short_response.error().context, "has 1 element(s)"));

    auto bad_roots = CertifiedKey::from_pem(must(private_key_to_pem(a.key.get())), must(a.chain_pem()), "junk");
    REQUIRE_FALSE(bad_roots);
    CHECK(contains(bad_roots.error().context, "roots: no PEM CERTIFICATE block found"));

    auto root = testing::make_raw_ca("root.example");
    auto odd = testing::make_leaf(root, "https://example.org/not-spiffe", true, true, {}, testing::chain_of(root.cert));
    auto id = odd.identity();
    REQUIRE_FALSE(id);
    CHECK(contains(id.error().context, "no SPIFFE URI SAN (URI SANs: [https://example.org/not-spiffe])"));
  }
}
