#include <doctest/doctest.h>

#include <openssl/bn.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/tls/ca.h"
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

std::string csr_for(const SpiffeId& id) {
  auto key = must(generate_p256_key());
  return must(make_csr_pem(key.get(), id));
}

// Every leaf the CA signs, whatever its key material: the ztunnel-facing fields.
// The CA signed between `signing_from` and `signing_to`; validity times are whole seconds (truncated).
void check_leaf_fields(X509* leaf, const std::string& uri, std::chrono::seconds ttl, SystemTime signing_from,
                       SystemTime signing_to) {
  CHECK(X509_get_version(leaf) == X509_VERSION_3);
  CHECK(X509_NAME_entry_count(X509_get_subject_name(leaf)) == 0);
  CHECK(uri_sans(leaf) == std::vector<std::string>{uri});
  const int san_at = X509_get_ext_by_NID(leaf, NID_subject_alt_name, -1);
  REQUIRE(san_at >= 0);
  CHECK(X509_EXTENSION_get_critical(X509_get_ext(leaf, san_at)) == 1);
  const uint32_t flags = X509_get_extension_flags(leaf);
  CHECK((flags & EXFLAG_CA) == 0);
  CHECK(X509_get_key_usage(leaf) == (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  CHECK(X509_get_extended_key_usage(leaf) == (XKU_SSL_SERVER | XKU_SSL_CLIENT));
  CHECK(X509_get0_subject_key_id(leaf) != nullptr);
  CHECK(X509_get0_authority_key_id(leaf) != nullptr);
  CHECK(X509_get_signature_nid(leaf) != NID_undef);
  // notBefore one minute back (whole seconds), notAfter = issue time + ttl.
  const auto nb = must(not_before(leaf));
  const auto na = must(not_after(leaf));
  const auto from = std::chrono::floor<std::chrono::seconds>(signing_from);
  CHECK(nb >= from - CertificateAuthority::kBackdate);
  CHECK(nb <= signing_to - CertificateAuthority::kBackdate);
  CHECK(na >= from + ttl);
  CHECK(na <= signing_to + ttl);
  // 128 random bits: at most 32 hex digits; two leaves never share one.
  CHECK(serial_hex(leaf).size() <= 32);
}

bssl::UniquePtr<EVP_PKEY> rsa_key() {
  bssl::UniquePtr<RSA> rsa(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  REQUIRE(BN_set_word(e.get(), RSA_F4));
  REQUIRE(RSA_generate_key_ex(rsa.get(), 2048, e.get(), nullptr));
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  REQUIRE(EVP_PKEY_assign_RSA(key.get(), rsa.release()));
  return key;
}

}  // namespace

TEST_SUITE("common/tls/ca") {
  TEST_CASE("self-signed root: P-256, CA:TRUE, keyCertSign|cRLSign, O=<trust domain>") {
    auto ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h * 365));
    X509* root = ca.signing_certificate();
    REQUIRE(ca.roots().size() == 1);
    CHECK(X509_cmp(ca.roots().front().get(), root) == 0);
    CHECK(is_self_signed(root));
    CHECK(is_ca_certificate(root));
    CHECK(X509_get_key_usage(root) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    char org[64] = {};
    CHECK(X509_NAME_get_text_by_NID(X509_get_subject_name(root), NID_organizationName, org, sizeof org) > 0);
    CHECK(std::string(org) == "cluster.local");
    bssl::UniquePtr<EVP_PKEY> pub(X509_get_pubkey(root));
    CHECK(EVP_PKEY_id(pub.get()) == EVP_PKEY_EC);
    CHECK(X509_get_signature_nid(root) == NID_ecdsa_with_SHA256);
    CHECK(contains(ca.root_pem(), "-----BEGIN CERTIFICATE-----"));
    CHECK(must(certificates_from_pem(ca.root_pem())).size() == 1);

    CHECK_FALSE(CertificateAuthority::create_self_signed("", 1h));
    CHECK_FALSE(CertificateAuthority::create_self_signed("cluster.local", 0s));
  }

  TEST_CASE("sign_csr: [leaf, root] like IstioCertificateResponse, leaf verifies against the root") {
    auto ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h));
    const auto csr = csr_for(kApp);
    const auto signing_from = std::chrono::system_clock::now();
    auto response = must(ca.sign_csr(csr, kApp, 1h));
    const auto signing_to = std::chrono::system_clock::now();
    REQUIRE(response.size() == 2);
    CHECK(response.back() == ca.root_pem());
    auto leaf = must(certificate_from_pem(response[0]));
    check_leaf_fields(leaf.get(), kApp.to_string(), 1h, signing_from, signing_to);
    must(verify_chain(leaf.get(), {}, ca.roots(), std::nullopt, X509_PURPOSE_SSL_SERVER));
    must(verify_chain(leaf.get(), {}, ca.roots(), std::nullopt, X509_PURPOSE_SSL_CLIENT));

    auto again = must(certificate_from_pem(must(ca.sign_csr(csr_for(kApp), kApp, 1h))[0]));
    CHECK(serial_hex(again.get()) != serial_hex(leaf.get()));
  }

  TEST_CASE("sign_csr without a requested identity accepts any SPIFFE SAN, refuses others") {
    auto ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h));
    auto response = must(ca.sign_csr(csr_for(kApp), std::nullopt, 1h));
    CHECK(uri_sans(must(certificate_from_pem(response[0])).get()) == std::vector<std::string>{kApp.to_string()});
  }

  TEST_CASE("sign_csr refusals") {
    auto ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h));
    const SpiffeId other{"cluster.local", "default", "other"};
    struct Row {
      std::string name;
      Result<std::vector<std::string>> result;
      std::string reason;
    };
    const std::vector<Row> rows = {
        {"SAN differs from the requested identity", ca.sign_csr(csr_for(kApp), other, 1h),
         "CSR URI SAN spiffe://cluster.local/ns/default/sa/app does not match the requested identity "
         "spiffe://cluster.local/ns/default/sa/other"},
        {"same identity in another trust domain", ca.sign_csr(csr_for(kApp), SpiffeId{"evil.org", "default", "app"}, 1h),
         "does not match the requested identity spiffe://evil.org/ns/default/sa/app"},
        {"zero ttl", ca.sign_csr(csr_for(kApp), kApp, 0s), "ttl must be positive"},
        {"not a CSR", ca.sign_csr("hello", kApp, 1h), "CSR is not a PEM CERTIFICATE REQUEST"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      REQUIRE_FALSE(row.result);
      CHECK(row.result.error().kind == ErrorKind::InvalidArgument);
      CHECK_MESSAGE(contains(row.result.error().context, row.reason), row.result.error().context);
    }
  }

  TEST_CASE("issue: key + CSR + signature as a CertifiedKey") {
    auto ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h));
    auto ck = must(ca.issue(kApp, 2h));
    REQUIRE(ck.chain.size() == 1);
    REQUIRE(ck.roots.size() == 1);
    CHECK(X509_cmp(ck.roots.front().get(), ca.signing_certificate()) == 0);
    CHECK(must(ck.identity()) == kApp);
    CHECK(key_matches_certificate(ck.leaf(), ck.key.get()));
    const auto lifetime = must(ck.not_after()) - must(ck.not_before());
    CHECK(lifetime == 2h + CertificateAuthority::kBackdate);
  }

  TEST_CASE("the clock moves validity; leaves never outlive the signing certificate") {
    auto ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h));
    const auto past = std::chrono::system_clock::now() - 2h;
    ca.set_clock([past] { return past; });
    auto expired = must(ca.issue(kApp, 1h));
    CHECK(must(expired.not_after()) < std::chrono::system_clock::now());
    auto check = verify_chain(expired.leaf(), {}, expired.roots);
    REQUIRE_FALSE(check);
    CHECK(contains(check.error().context, "expired"));

    ca.set_clock([] { return std::chrono::system_clock::now(); });
    auto long_lived = must(ca.issue(kApp, 24h * 30));
    CHECK(must(long_lived.not_after()) == must(not_after(ca.signing_certificate())));

    ca.set_clock([] { return std::chrono::system_clock::now() + 48h; });
    auto too_late = ca.issue(kApp, 1h);
    REQUIRE_FALSE(too_late);
    CHECK(contains(too_late.error().context, "has expired"));
  }

  TEST_CASE("load: istiod cacerts with an intermediate signs [leaf, ca-cert, root]") {
    testing::TempDir dir;
    auto root = testing::make_raw_ca("root.example");
    auto inter = testing::make_raw_ca("intermediate.example", &root);
    const std::string root_pem = must(certificate_to_pem(root.cert.get()));
    const std::string inter_pem = must(certificate_to_pem(inter.cert.get()));
    dir.write("ca-cert.pem", inter_pem);
    dir.write("ca-key.pem", must(ec_private_key_to_pem(inter.key.get())));  // SEC1, as openssl writes it
    dir.write("cert-chain.pem", inter_pem + root_pem);                     // istio repeats both
    dir.write("root-cert.pem", root_pem);

    auto ca = must(CertificateAuthority::load_cacerts_dir(dir.path()));
    REQUIRE(ca.roots().size() == 1);
    CHECK(X509_cmp(ca.roots().front().get(), root.cert.get()) == 0);
    CHECK(ca.root_pem() == root_pem);

    const auto csr = csr_for(kApp);
    const auto signing_from = std::chrono::system_clock::now();
    auto response = must(ca.sign_csr(csr, kApp, 1h));
    const auto signing_to = std::chrono::system_clock::now();
    REQUIRE(response.size() == 3);
    CHECK(response[1] == inter_pem);
    CHECK(response[2] == root_pem);
    auto leaf = must(certificate_from_pem(response[0]));
    check_leaf_fields(leaf.get(), kApp.to_string(), 1h, signing_from, signing_to);
    must(verify_chain(leaf.get(), testing::chain_of(inter.cert), ca.roots(), std::nullopt, X509_PURPOSE_SSL_SERVER));
    // Without the intermediate the leaf does not verify: it really was signed by ca-cert.pem.
    CHECK_FALSE(verify_chain(leaf.get(), {}, ca.roots()));

    auto ck = must(ca.issue(kApp, 1h));
    REQUIRE(ck.chain.size() == 2);
    CHECK(X509_cmp(ck.chain[1].get(), inter.cert.get()) == 0);
  }

  TEST_CASE("load: root from cert-chain.pem when root-cert.pem is absent; self-signed ca-cert alone") {
    testing::TempDir dir;
    auto root = testing::make_raw_ca("root.example");
    auto inter = testing::make_raw_ca("intermediate.example", &root);
    const std::string inter_pem = must(certificate_to_pem(inter.cert.get()));
    const std::string root_pem = must(certificate_to_pem(root.cert.get()));
    const auto cert = dir.write("ca-cert.pem", inter_pem);
    const auto key = dir.write("ca-key.pem", must(private_key_to_pem(inter.key.get())));
    const auto chain = dir.write("cert-chain.pem", inter_pem + root_pem);
    auto ca = must(CertificateAuthority::load(cert, key, chain));
    REQUIRE(ca.roots().size() == 1);
    CHECK(X509_cmp(ca.roots().front().get(), root.cert.get()) == 0);
    CHECK(must(ca.sign_csr(csr_for(kApp), kApp, 1h)).size() == 3);

    auto missing_root = CertificateAuthority::load(cert, key);
    REQUIRE_FALSE(missing_root);
    CHECK(contains(missing_root.error().context, "is not self-signed and no root was given"));

    const auto root_cert = dir.write("root-only.pem", root_pem);
    const auto root_key = dir.write("root-key.pem", must(private_key_to_pem(root.key.get())));
    auto self = must(CertificateAuthority::load(root_cert, root_key));
    CHECK(must(self.sign_csr(csr_for(kApp), kApp, 1h)).size() == 2);
  }

  TEST_CASE("load: an RSA CA (istio's sample certs are RSA) signs P-256 workload CSRs") {
    testing::TempDir dir;
    auto key = rsa_key();
    auto root_cert = must(sign_certificate(testing::ca_spec("rsa.example"), key.get(), nullptr, nullptr));
    auto ca = must(CertificateAuthority::load(dir.write("ca-cert.pem", must(certificate_to_pem(root_cert.get()))),
                                              dir.write("ca-key.pem", must(private_key_to_pem(key.get())))));
    auto leaf = must(certificate_from_pem(must(ca.sign_csr(csr_for(kApp), kApp, 1h))[0]));
    CHECK(X509_get_signature_nid(leaf.get()) == NID_sha256WithRSAEncryption);
    must(verify_chain(leaf.get(), {}, ca.roots()));
  }

  TEST_CASE("load refusals: wrong key, non-CA certificate, missing and broken files, unrelated root") {
    testing::TempDir dir;
    auto root = testing::make_raw_ca("root.example");
    auto stranger = testing::make_raw_ca("stranger.example");
    const auto cert = dir.write("ca-cert.pem", must(certificate_to_pem(root.cert.get())));
    const auto key = dir.write("ca-key.pem", must(private_key_to_pem(root.key.get())));

    auto other_key = must(generate_p256_key());
    const auto wrong_key = dir.write("wrong-key.pem", must(private_key_to_pem(other_key.get())));
    auto mismatch = CertificateAuthority::load(cert, wrong_key);
    REQUIRE_FALSE(mismatch);
    CHECK(mismatch.error().kind == ErrorKind::Certificate);
    CHECK(contains(mismatch.error().context, "does not hold the private key of " + cert));

    // A workload leaf with its own key is not a CA.
    auto leaf = testing::make_leaf(root, kApp.to_string(), true, true, {}, testing::chain_of(root.cert));
    auto not_ca = CertificateAuthority::load(dir.write("leaf.pem", must(certificate_to_pem(leaf.leaf()))),
                                             dir.write("leaf-key.pem", must(private_key_to_pem(leaf.key.get()))));
    REQUIRE_FALSE(not_ca);
    CHECK(not_ca.error().kind == ErrorKind::Certificate);
    CHECK(contains(not_ca.error().context, "is not a CA certificate"));

    auto missing = CertificateAuthority::load(dir.file("nope.pem"), key);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);
    CHECK(contains(missing.error().context, "nope.pem"));

    auto broken = CertificateAuthority::load(dir.write("broken.pem", "not pem"), key);
    REQUIRE_FALSE(broken);
    CHECK(broken.error().kind == ErrorKind::InvalidArgument);
    CHECK(contains(broken.error().context, "broken.pem: no PEM CERTIFICATE block found"));

    const auto wrong_root = dir.write("root-cert.pem", must(certificate_to_pem(stranger.cert.get())));
    auto unrelated = CertificateAuthority::load(cert, key, {}, wrong_root);
    REQUIRE_FALSE(unrelated);
    CHECK(contains(unrelated.error().context, "does not verify against the roots"));

    auto empty_dir = CertificateAuthority::load_cacerts_dir(dir.file("missing-dir"));
    REQUIRE_FALSE(empty_dir);
    CHECK(empty_dir.error().kind == ErrorKind::NotFound);
  }
}
