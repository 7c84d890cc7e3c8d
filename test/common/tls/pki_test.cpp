#include <doctest/doctest.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/tls/pki.h"
#include "test/common/tls/test_pki.h"

using namespace ambient;
using namespace ambient::tls;
using ambient::tls::testing::must;

namespace {

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
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

// A CSR built by hand: public key of `subject`, signed by `signer`, SAN URIs plus optional DNS names.
std::string raw_csr(EVP_PKEY* subject, EVP_PKEY* signer, const std::vector<std::string>& uris,
                    const std::vector<std::string>& dns = {}) {
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  REQUIRE(X509_REQ_set_version(req.get(), X509_REQ_VERSION_1));
  REQUIRE(X509_REQ_set_pubkey(req.get(), subject));
  if (!uris.empty() || !dns.empty()) {
    bssl::UniquePtr<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
    auto add = [&](int type, const std::string& value) {
      bssl::UniquePtr<ASN1_IA5STRING> s(ASN1_IA5STRING_new());
      REQUIRE(ASN1_STRING_set(s.get(), value.data(), static_cast<int>(value.size())));
      bssl::UniquePtr<GENERAL_NAME> gn(GENERAL_NAME_new());
      GENERAL_NAME_set0_value(gn.get(), type, s.release());
      REQUIRE(bssl::PushToStack(names.get(), std::move(gn)));
    };
    for (const auto& u : uris) add(GEN_URI, u);
    for (const auto& d : dns) add(GEN_DNS, d);
    bssl::UniquePtr<STACK_OF(X509_EXTENSION)> exts(sk_X509_EXTENSION_new_null());
    bssl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_i2d(NID_subject_alt_name, 1, names.get()));
    REQUIRE(bssl::PushToStack(exts.get(), std::move(ext)));
    REQUIRE(X509_REQ_add_extensions(req.get(), exts.get()));
  }
  REQUIRE(X509_REQ_sign(req.get(), signer, EVP_sha256()));
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  REQUIRE(PEM_write_bio_X509_REQ(bio.get(), req.get()));
  const uint8_t* data = nullptr;
  size_t len = 0;
  REQUIRE(BIO_mem_contents(bio.get(), &data, &len));
  return std::string(reinterpret_cast<const char*>(data), len);
}

bssl::UniquePtr<X509_REQ> parse_csr(const std::string& pem) {
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  bssl::UniquePtr<X509_REQ> req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  REQUIRE(req);
  return req;
}

CertificateSpec leaf_spec(std::vector<std::string> uris) {
  const auto now = std::chrono::system_clock::now();
  CertificateSpec spec;
  spec.uri_sans = std::move(uris);
  spec.not_before = std::chrono::floor<std::chrono::seconds>(now) - std::chrono::minutes(1);
  spec.not_after = std::chrono::floor<std::chrono::seconds>(now) + std::chrono::hours(1);
  return spec;
}

}  // namespace

TEST_SUITE("common/tls/pki") {
  TEST_CASE("P-256 keys round-trip through PKCS#8 and SEC1 PEM") {
    auto key = must(generate_p256_key());
    CHECK(EVP_PKEY_id(key.get()) == EVP_PKEY_EC);
    const EC_GROUP* group = EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(key.get()));
    CHECK(EC_GROUP_get_curve_name(group) == NID_X9_62_prime256v1);

    const std::string pkcs8 = must(private_key_to_pem(key.get()));
    CHECK(contains(pkcs8, "-----BEGIN PRIVATE KEY-----"));
    auto from_pkcs8 = must(private_key_from_pem(pkcs8));
    CHECK(EVP_PKEY_cmp(key.get(), from_pkcs8.get()) == 1);

    const std::string sec1 = must(ec_private_key_to_pem(key.get()));
    CHECK(contains(sec1, "-----BEGIN EC PRIVATE KEY-----"));
    auto from_sec1 = must(private_key_from_pem(sec1));
    CHECK(EVP_PKEY_cmp(key.get(), from_sec1.get()) == 1);

    auto other = must(generate_p256_key());
    CHECK(EVP_PKEY_cmp(key.get(), other.get()) != 1);
  }

  TEST_CASE("RSA keys load from PEM; SEC1 output refuses them") {
    auto rsa = rsa_key();
    auto loaded = must(private_key_from_pem(must(private_key_to_pem(rsa.get()))));
    CHECK(EVP_PKEY_id(loaded.get()) == EVP_PKEY_RSA);
    auto sec1 = ec_private_key_to_pem(rsa.get());
    REQUIRE_FALSE(sec1);
    CHECK(sec1.error().kind == ErrorKind::InvalidArgument);
    CHECK(contains(sec1.error().context, "not an EC key"));
  }

  TEST_CASE("bad key PEM is refused with the BoringSSL reason drained into the context") {
    auto bad = private_key_from_pem("-----BEGIN PRIVATE KEY-----\nnot base64!!\n-----END PRIVATE KEY-----\n");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == ErrorKind::InvalidArgument);
    CHECK(contains(bad.error().context, "no usable unencrypted PEM private key: "));
    CHECK(drain_ssl_errors().empty());  // the queue was drained into the error
    auto empty = private_key_from_pem("");
    REQUIRE_FALSE(empty);
    CHECK(contains(empty.error().context, "PEM"));
  }

  TEST_CASE("certificates round-trip through PEM in order") {
    auto root = testing::make_raw_ca("root.example");
    auto inter = testing::make_raw_ca("intermediate.example", &root);

    const std::string one = must(certificate_to_pem(root.cert.get()));
    CHECK(contains(one, "-----BEGIN CERTIFICATE-----"));
    auto parsed = must(certificate_from_pem(one));
    CHECK(X509_cmp(parsed.get(), root.cert.get()) == 0);

    X509Chain chain;
    chain.push_back(bssl::UpRef(inter.cert));
    chain.push_back(bssl::UpRef(root.cert));
    const std::string both = must(certificates_to_pem(chain));
    auto back = must(certificates_from_pem("comment lines between blocks are skipped\n" + both));
    REQUIRE(back.size() == 2);
    CHECK(X509_cmp(back[0].get(), inter.cert.get()) == 0);
    CHECK(X509_cmp(back[1].get(), root.cert.get()) == 0);

    auto shared = share(back);
    REQUIRE(shared.size() == 2);
    CHECK(shared[0].get() == back[0].get());  // same objects, new references

    auto two_for_one = certificate_from_pem(both);
    REQUIRE_FALSE(two_for_one);
    CHECK(contains(two_for_one.error().context, "expected exactly one PEM certificate, found 2"));
  }

  TEST_CASE("certificate PEM refusals") {
    auto key = must(generate_p256_key());
    const std::string key_pem = must(private_key_to_pem(key.get()));
    struct Row {
      std::string name;
      std::string pem;
      std::string reason;
    };
    const std::vector<Row> rows = {
        {"empty", "", "no PEM CERTIFICATE block found"},
        {"text only", "hello\n", "no PEM CERTIFICATE block found"},
        {"a key", key_pem, "PEM block 1 is 'PRIVATE KEY', expected 'CERTIFICATE'"},
        {"bad base64", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "PEM block 1 is malformed"},
        {"not DER", "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
         "PEM certificate 1 is not valid DER X.509"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto r = certificates_from_pem(row.pem);
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::InvalidArgument);
      CHECK_MESSAGE(contains(r.error().context, row.reason), r.error().context);
    }
  }

  TEST_CASE("CSR: empty subject, one critical URI SAN, SHA-256, verifies") {
    auto key = must(generate_p256_key());
    const SpiffeId id{"cluster.local", "default", "app"};
    const std::string pem = must(make_csr_pem(key.get(), id));
    CHECK(contains(pem, "-----BEGIN CERTIFICATE REQUEST-----"));

    auto req = parse_csr(pem);
    CHECK(X509_NAME_entry_count(X509_REQ_get_subject_name(req.get())) == 0);
    CHECK(X509_REQ_get_signature_nid(req.get()) == NID_ecdsa_with_SHA256);
    bssl::UniquePtr<STACK_OF(X509_EXTENSION)> exts(X509_REQ_get_extensions(req.get()));
    REQUIRE(exts);
    REQUIRE(sk_X509_EXTENSION_num(exts.get()) == 1);
    X509_EXTENSION* san = sk_X509_EXTENSION_value(exts.get(), 0);
    CHECK(OBJ_obj2nid(X509_EXTENSION_get_object(san)) == NID_subject_alt_name);
    CHECK(X509_EXTENSION_get_critical(san) == 1);

    auto verified = must(verify_csr_pem(pem));
    CHECK(verified.uri_san == "spiffe://cluster.local/ns/default/sa/app");
    CHECK(EVP_PKEY_cmp(verified.public_key.get(), key.get()) == 1);
  }

  TEST_CASE("CSR refusals") {
    auto a = must(generate_p256_key());
    auto b = must(generate_p256_key());
    const std::string uri = "spiffe://cluster.local/ns/default/sa/app";
    struct Row {
      std::string name;
      std::string pem;
      std::string reason;
    };
    const std::vector<Row> rows = {
        {"not PEM", "garbage", "CSR is not a PEM CERTIFICATE REQUEST"},
        {"signed by another key", raw_csr(a.get(), b.get(), {uri}), "CSR signature does not verify"},
        {"no SAN", raw_csr(a.get(), a.get(), {}), "CSR has no subjectAltName"},
        {"two URIs", raw_csr(a.get(), a.get(), {uri, uri + "2"}), "exactly one URI, found 2 names"},
        {"URI plus DNS", raw_csr(a.get(), a.get(), {uri}, {"app.default.svc"}), "exactly one URI, found 2 names"},
        {"DNS only", raw_csr(a.get(), a.get(), {}, {"app.default.svc"}), "must be a URI"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto r = verify_csr_pem(row.pem);
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::InvalidArgument);
      CHECK_MESSAGE(contains(r.error().context, row.reason), r.error().context);
    }
    CHECK(drain_ssl_errors().empty());
  }

  TEST_CASE("sign_certificate writes the spec and inspection reads it back") {
    auto root = testing::make_raw_ca("cluster.local");
    auto key = must(generate_p256_key());
    const auto spec = leaf_spec({"https://not-spiffe.example/x", "spiffe://cluster.local/ns/a/sa/b"});
    auto leaf = must(sign_certificate(spec, key.get(), root.cert.get(), root.key.get()));

    CHECK(X509_get_version(leaf.get()) == X509_VERSION_3);
    CHECK(X509_get_signature_nid(leaf.get()) == NID_ecdsa_with_SHA256);
    CHECK(X509_NAME_entry_count(X509_get_subject_name(leaf.get())) == 0);
    CHECK(X509_NAME_cmp(X509_get_issuer_name(leaf.get()), X509_get_subject_name(root.cert.get())) == 0);
    CHECK(uri_sans(leaf.get()) == spec.uri_sans);
    const auto id = spiffe_identity(leaf.get());
    REQUIRE(id);
    CHECK(id->to_string() == "spiffe://cluster.local/ns/a/sa/b");
    CHECK(must(not_before(leaf.get())) == spec.not_before);
    CHECK(must(not_after(leaf.get())) == spec.not_after);
    CHECK(key_matches_certificate(leaf.get(), key.get()));
    CHECK_FALSE(key_matches_certificate(leaf.get(), root.key.get()));
    CHECK_FALSE(is_ca_certificate(leaf.get()));
    CHECK(is_ca_certificate(root.cert.get()));
    CHECK_FALSE(is_self_signed(leaf.get()));
    CHECK(is_self_signed(root.cert.get()));
    // SAN is critical because the subject is empty; SKID of the root is the leaf's AKID.
    const int san_at = X509_get_ext_by_NID(leaf.get(), NID_subject_alt_name, -1);
    REQUIRE(san_at >= 0);
    CHECK(X509_EXTENSION_get_critical(X509_get_ext(leaf.get(), san_at)) == 1);
    const ASN1_OCTET_STRING* akid = X509_get0_authority_key_id(leaf.get());
    const ASN1_OCTET_STRING* root_skid = X509_get0_subject_key_id(root.cert.get());
    REQUIRE(akid);
    REQUIRE(root_skid);
    CHECK(ASN1_OCTET_STRING_cmp(akid, root_skid) == 0);
    CHECK(X509_get0_subject_key_id(leaf.get()) != nullptr);

    const std::string serial = serial_hex(leaf.get());
    CHECK_FALSE(serial.empty());
    CHECK(serial.size() <= 32);
    CHECK(serial.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(serial != serial_hex(root.cert.get()));
  }

  TEST_CASE("sign_certificate refuses impossible specs") {
    auto key = must(generate_p256_key());
    auto spec = leaf_spec({"spiffe://cluster.local/ns/a/sa/b"});
    spec.not_after = spec.not_before;
    auto r = sign_certificate(spec, key.get(), nullptr, nullptr);
    REQUIRE_FALSE(r);
    CHECK(contains(r.error().context, "validity ends before it starts"));
    auto root = testing::make_raw_ca("cluster.local");
    auto half = sign_certificate(leaf_spec({}), key.get(), root.cert.get(), nullptr);
    REQUIRE_FALSE(half);
    CHECK(half.error().kind == ErrorKind::InvalidArgument);
  }

  TEST_CASE("verify_chain: good chain, unknown root, expiry, purpose") {
    auto root = testing::make_raw_ca("cluster.local");
    auto inter = testing::make_raw_ca("intermediate", &root);
    auto other_root = testing::make_raw_ca("other");
    const std::string uri = "spiffe://cluster.local/ns/a/sa/b";
    auto leaf = testing::make_leaf(inter, uri, /*server_auth=*/false, /*client_auth=*/true,
                                   testing::chain_of(inter.cert), testing::chain_of(root.cert));
    const X509Chain intermediates = testing::chain_of(inter.cert);

    must(verify_chain(leaf.leaf(), intermediates, leaf.roots));
    must(verify_chain(leaf.leaf(), intermediates, leaf.roots, std::nullopt, X509_PURPOSE_SSL_CLIENT));

    auto unknown = verify_chain(leaf.leaf(), intermediates, testing::chain_of(other_root.cert));
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().kind == ErrorKind::Certificate);
    CHECK(contains(unknown.error().context, "unable to get local issuer certificate"));

    auto missing_intermediate = verify_chain(leaf.leaf(), {}, leaf.roots);
    REQUIRE_FALSE(missing_intermediate);
    CHECK(contains(missing_intermediate.error().context, "unable to get local issuer certificate (depth 0)"));

    auto later = verify_chain(leaf.leaf(), intermediates, leaf.roots,
                              std::chrono::system_clock::now() + std::chrono::hours(2));
    REQUIRE_FALSE(later);
    CHECK(contains(later.error().context, "certificate has expired (depth 0)"));

    auto earlier = verify_chain(leaf.leaf(), intermediates, leaf.roots,
                                std::chrono::system_clock::now() - std::chrono::hours(2));
    REQUIRE_FALSE(earlier);
    CHECK(contains(earlier.error().context, "certificate is not yet valid"));

    auto as_server = verify_chain(leaf.leaf(), intermediates, leaf.roots, std::nullopt, X509_PURPOSE_SSL_SERVER);
    REQUIRE_FALSE(as_server);
    CHECK(contains(as_server.error().context, "unsupported certificate purpose"));
  }
}
