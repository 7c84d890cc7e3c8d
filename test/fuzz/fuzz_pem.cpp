// fuzz_pem: PEM and certificate inputs (common/tls/pki.h, certified_key.h, common/identity/istio_ca_client.h):
// what ztunnel and the waypoint parse from istiod's CA (CreateCertificate responses), from files (cacerts,
// keys, CA_ROOT_CA) and what the built-in CA parses from a client's CSR.
//
// Input: byte 0 picks the parser (byte % 6; bit 0 of byte / 6 is a flag), the rest is its input. For parsers 0-3
// the flag says the rest is DER, which the target wraps in PEM armour (base64) so mutations reach the DER parser.
//   0  certificates_from_pem, then on each certificate uri_sans, spiffe_identity, not_before/not_after,
//      is_ca_certificate, is_self_signed, serial_hex; certificates_to_pem round trip
//   1  certificate_from_pem
//   2  private_key_from_pem; private_key_to_pem (and ec_private_key_to_pem) round trip
//   3  verify_csr_pem, then CertificateAuthority::sign_csr of the same PEM (a CA made once at start)
//   4  check_certificate_response (the pure check of istiod's answer; IstioCaClient::fetch_once only adds I/O):
//      NUL-separated key PEM, then cert_chain elements; flag: the last element goes to root_cert.ca_cert;
//      requested identity kIdentity, at the epoch (so the chain is verified at the leaf's notBefore);
//      also CertifiedKey::from_ca_response on the same elements (the built-in CA's path)
//   5  CertifiedKey::from_pem: NUL-separated key PEM, chain PEM, roots PEM (files)
// Seeds: generated with the project's CA code (tls::CertificateAuthority, sign_certificate, make_csr_pem).
// Regression seeds: corpus/fuzz_pem/regression_* (a validity time past 2262 overflowed SystemTime in
// not_before/not_after; is_ca_certificate left BoringSSL errors queued for an undecodable extension).
//
// Invariants:
//  - errors are InvalidArgument / Parse / Certificate with a context, and leave BoringSSL's error queue empty
//    (a stale entry would be reported with the next, unrelated error);
//  - certificates re-encode to PEM that parses to the same DER; keys re-encode to the same key;
//  - a verified CSR has a public key; sign_csr accepts it exactly when its URI SAN is a SPIFFE id, and the
//    leaf carries that one URI SAN and verifies to the CA's roots;
//  - an accepted CA response or key+chain: the key matches the leaf, chain and roots are non-empty, the
//    response's leaf is for kIdentity, and from_ca_response accepts what check_certificate_response accepts.
#include <openssl/base64.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "common/identity/istio_ca_client.h"
#include "common/tls/ca.h"
#include "common/tls/certified_key.h"
#include "common/tls/pki.h"
#include "test/fuzz/fuzz_protobuf.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using namespace std::chrono_literals;

const tls::SpiffeId kIdentity{"cluster.local", "ns", "client"};
tls::CertificateAuthority* g_ca = nullptr;

void check_queue_empty(std::string_view after) {
  const std::uint32_t err = ERR_peek_error();
  FUZZ_CHECK(err == 0, "BoringSSL error queue not empty after {}: {}", after, tls::drain_ssl_errors());
}

void check_err(const Error& e, std::string_view after) {
  fuzz::check_error(e, {ErrorKind::InvalidArgument, ErrorKind::Parse, ErrorKind::Certificate});
  check_queue_empty(after);
}

std::string der(X509* cert) {
  std::uint8_t* out = nullptr;
  const int n = i2d_X509(cert, &out);
  std::string s = n > 0 ? std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n)) : std::string();
  OPENSSL_free(out);
  return s;
}

void inspect(X509* cert) {
  const auto sans = tls::uri_sans(cert);
  check_queue_empty("uri_sans");
  if (auto id = tls::spiffe_identity(cert)) {
    FUZZ_CHECK(std::find(sans.begin(), sans.end(), id->to_string()) != sans.end(), "SPIFFE id {} not among the URI SANs",
               id->to_string());
  }
  check_queue_empty("spiffe_identity");
  auto nb = tls::not_before(cert);
  if (!nb) check_err(nb.error(), "not_before");
  auto na = tls::not_after(cert);
  if (!na) check_err(na.error(), "not_after");
  check_queue_empty("not_before/not_after");
  (void)tls::is_ca_certificate(cert);
  check_queue_empty("is_ca_certificate");
  (void)tls::is_self_signed(cert);
  check_queue_empty("is_self_signed");
  (void)tls::serial_hex(cert);
  check_queue_empty("serial_hex");
}

void certificates(std::string_view pem) {
  auto chain = tls::certificates_from_pem(pem);
  if (!chain) return check_err(chain.error(), "certificates_from_pem");
  check_queue_empty("certificates_from_pem");
  FUZZ_CHECK(!chain->empty(), "empty chain accepted");
  for (const auto& c : *chain) inspect(c.get());
  auto text = tls::certificates_to_pem(*chain);
  FUZZ_CHECK(text.has_value(), "certificates_to_pem: {}", text ? "" : text.error().context);
  auto again = tls::certificates_from_pem(*text);
  FUZZ_CHECK(again && again->size() == chain->size(), "re-encoded chain does not parse back whole");
  for (std::size_t i = 0; i < chain->size(); ++i)
    FUZZ_CHECK(der((*chain)[i].get()) == der((*again)[i].get()), "certificate {} changed in a PEM round trip", i);
  check_queue_empty("PEM round trip");
}

void certificate(std::string_view pem) {
  auto cert = tls::certificate_from_pem(pem);
  if (!cert) return check_err(cert.error(), "certificate_from_pem");
  auto chain = tls::certificates_from_pem(pem);
  FUZZ_CHECK(chain && chain->size() == 1, "certificate_from_pem accepted what is not one certificate");
  check_queue_empty("certificate_from_pem");
}

void private_key(std::string_view pem) {
  auto key = tls::private_key_from_pem(pem);
  if (!key) return check_err(key.error(), "private_key_from_pem");
  check_queue_empty("private_key_from_pem");
  auto text = tls::private_key_to_pem(key->get());
  if (!text) return check_err(text.error(), "private_key_to_pem");  // e.g. a key type PKCS#8 cannot carry
  auto back = tls::private_key_from_pem(*text);
  FUZZ_CHECK(back && EVP_PKEY_cmp(key->get(), back->get()) == 1, "PKCS#8 round trip changed the key");
  if (EVP_PKEY_id(key->get()) == EVP_PKEY_EC) {
    auto sec1 = tls::ec_private_key_to_pem(key->get());
    if (!sec1) return check_err(sec1.error(), "ec_private_key_to_pem");
    auto back1 = tls::private_key_from_pem(*sec1);
    FUZZ_CHECK(back1 && EVP_PKEY_cmp(key->get(), back1->get()) == 1, "SEC1 round trip changed the key");
  }
  ERR_clear_error();  // EVP_PKEY_cmp may queue "different key types"; not ours to report
}

void csr(std::string_view pem) {
  auto v = tls::verify_csr_pem(pem);
  auto signed_chain = g_ca->sign_csr(pem, std::nullopt, 1h);
  if (!v) {
    check_err(v.error(), "verify_csr_pem");
    FUZZ_CHECK(!signed_chain, "sign_csr accepted a CSR verify_csr_pem refused");
    return;
  }
  FUZZ_CHECK(v->public_key != nullptr, "verified CSR without a public key");
  const bool spiffe = tls::parse_spiffe(v->uri_san).has_value();
  if (!signed_chain) {
    check_err(signed_chain.error(), "sign_csr");
    FUZZ_CHECK(!spiffe, "sign_csr refused a CSR for {}: {}", v->uri_san, signed_chain.error().context);
    return;
  }
  FUZZ_CHECK(spiffe, "sign_csr signed a URI SAN that is not a SPIFFE id: {:?}", v->uri_san);
  FUZZ_CHECK(signed_chain->size() >= 2, "CA response of {} elements", signed_chain->size());
  auto leaf = tls::certificate_from_pem(signed_chain->front());
  FUZZ_CHECK(leaf.has_value(), "issued leaf does not parse");
  FUZZ_CHECK(tls::uri_sans(leaf->get()) == std::vector<std::string>{v->uri_san}, "issued leaf's SANs differ from {:?}",
             v->uri_san);
  auto ok = tls::verify_chain(leaf->get(), {}, g_ca->roots());
  FUZZ_CHECK(ok.has_value(), "issued leaf does not verify: {}", ok ? "" : ok.error().context);
  check_queue_empty("sign_csr");
}

// `der` as one PEM block with `label`, 64 base64 characters a line (RFC 7468).
std::string pem_wrap(std::string_view label, std::string_view der) {
  std::string b64(((der.size() + 2) / 3) * 4 + 1, '\0');
  const std::size_t n = EVP_EncodeBlock(reinterpret_cast<std::uint8_t*>(b64.data()),
                                        reinterpret_cast<const std::uint8_t*>(der.data()), der.size());
  b64.resize(n);
  std::string out = fmt::format("-----BEGIN {}-----\n", label);
  for (std::size_t i = 0; i < b64.size(); i += 64) out.append(b64, i, 64).push_back('\n');
  return out + fmt::format("-----END {}-----\n", label);
}

// The DER inside the first block of `pem` (for DER seeds).
std::string pem_body(std::string_view pem) {
  std::string b64;
  const auto start = pem.find('\n') + 1;
  for (char c : pem.substr(start, pem.find("-----END") - start))
    if (c != '\n') b64.push_back(c);
  std::size_t len = 0;
  EVP_DecodedLength(&len, b64.size());
  std::string out(len, '\0');
  if (!EVP_DecodeBase64(reinterpret_cast<std::uint8_t*>(out.data()), &len, out.size(),
                        reinterpret_cast<const std::uint8_t*>(b64.data()), b64.size()))
    std::abort();
  out.resize(len);
  return out;
}

std::vector<std::string_view> split_nul(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto nul = s.find('\0');
    out.push_back(s.substr(0, nul));
    if (nul == std::string_view::npos) return out;
    s.remove_prefix(nul + 1);
  }
}

void check_certified(const tls::CertifiedKey& k) {
  FUZZ_CHECK(k.key && !k.chain.empty() && !k.roots.empty(), "certified key without key, chain or roots");
  FUZZ_CHECK(tls::key_matches_certificate(k.leaf(), k.key.get()), "the key does not match the leaf");
  auto pem = k.chain_pem();
  FUZZ_CHECK(pem.has_value(), "chain_pem: {}", pem ? "" : pem.error().context);
}

void ca_response(std::string_view in, bool separate_roots) {
  const auto parts = split_nul(in);
  auto key = tls::private_key_from_pem(parts[0]);
  if (!key) return check_err(key.error(), "private_key_from_pem");
  istio::v1::auth::IstioCertificateResponse response;
  std::vector<std::string> elems;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (separate_roots && i + 1 == parts.size() && i > 1) response.mutable_root_cert()->add_ca_cert(std::string(parts[i]));
    else response.add_cert_chain(std::string(parts[i]));
    elems.emplace_back(parts[i]);
  }
  auto r = identity::check_certificate_response(response, std::move(*key), kIdentity, tls::SystemTime{});
  if (!r) return check_err(r.error(), "check_certificate_response");
  check_queue_empty("check_certificate_response");
  check_certified(*r);
  auto id = r->identity();
  FUZZ_CHECK(id && *id == kIdentity, "accepted a leaf that is not for {}", kIdentity.to_string());
  if (!response.has_root_cert()) {
    auto k = tls::CertifiedKey::from_ca_response(parts[0], elems);
    FUZZ_CHECK(k.has_value(), "from_ca_response refused what check_certificate_response accepted: {}",
               k ? "" : k.error().context);
    check_certified(*k);
  }
}

void from_pem(std::string_view in) {
  const auto parts = split_nul(in);
  auto k = tls::CertifiedKey::from_pem(parts[0], parts.size() > 1 ? parts[1] : "", parts.size() > 2 ? parts[2] : "");
  if (!k) return check_err(k.error(), "CertifiedKey::from_pem");
  check_queue_empty("CertifiedKey::from_pem");
  check_certified(*k);
}

// ---- seeds, from the project's own CA code ----

template <typename T>
T must(Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "fuzz_pem: %s: %s\n", what, r.error().context.c_str());
    std::abort();
  }
  return std::move(r).value();
}

std::string join(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) {
    if (!out.empty()) out.push_back('\0');
    out.append(p);
  }
  return out;
}

// A certificate for `key`, signed by `issuer_key` (self-signed when null), valid for ten years from an hour ago.
bssl::UniquePtr<X509> cert_for(EVP_PKEY* key, bool is_ca, std::string organization, std::vector<std::string> sans,
                               X509* issuer, EVP_PKEY* issuer_key) {
  tls::CertificateSpec spec;
  spec.organization = std::move(organization);
  spec.is_ca = is_ca;
  spec.uri_sans = std::move(sans);
  spec.not_before = std::chrono::system_clock::now() - 1h;
  spec.not_after = spec.not_before + 24h * 3650;
  return must(tls::sign_certificate(spec, key, issuer, issuer_key), "sign_certificate");
}

std::vector<std::pair<std::string, std::string>> seeds() {
  // The built-in CA's way: [leaf, root].
  auto ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h * 3650), "CA");
  auto issued = must(ca.issue(kIdentity, 24h * 3650), "issue");
  const std::string key_pem = must(tls::private_key_to_pem(issued.key.get()), "key PEM");
  const std::string sec1_pem = must(tls::ec_private_key_to_pem(issued.key.get()), "SEC1 PEM");
  const std::string chain_pem = must(issued.chain_pem(), "chain PEM");
  const std::string roots_pem = ca.root_pem();

  // istiod with plugged-in cacerts: [leaf, intermediate, root].
  auto root_key = must(tls::generate_p256_key(), "key");
  auto inter_key = must(tls::generate_p256_key(), "key");
  auto leaf_key = must(tls::generate_p256_key(), "key");
  auto root = cert_for(root_key.get(), true, "cluster.local", {}, nullptr, nullptr);
  auto inter = cert_for(inter_key.get(), true, "intermediate", {}, root.get(), root_key.get());
  auto leaf = cert_for(leaf_key.get(), false, "", {kIdentity.to_string(), "spiffe://other/ns/a/sa/b"}, inter.get(),
                       inter_key.get());
  const std::string root_pem = must(tls::certificate_to_pem(root.get()), "PEM");
  const std::string inter_pem = must(tls::certificate_to_pem(inter.get()), "PEM");
  const std::string leaf_pem = must(tls::certificate_to_pem(leaf.get()), "PEM");
  const std::string leaf_key_pem = must(tls::private_key_to_pem(leaf_key.get()), "PEM");
  const std::string csr = must(tls::make_csr_pem(leaf_key.get(), kIdentity), "CSR");

  auto mode = [](int m) { return std::string(1, static_cast<char>(m)); };
  return {
      {"chain", mode(0) + chain_pem + roots_pem},
      {"chain_intermediate", mode(0) + leaf_pem + inter_pem + root_pem},
      {"one_cert", mode(1) + roots_pem},
      {"key_pkcs8", mode(2) + key_pem},
      {"key_sec1", mode(2) + sec1_pem},
      {"csr", mode(3) + csr},
      {"ca_response", mode(4) + join({key_pem, chain_pem, roots_pem})},
      {"ca_response_intermediate", mode(4) + join({leaf_key_pem, leaf_pem, inter_pem, root_pem})},
      {"ca_response_root_cert", mode(10) + join({leaf_key_pem, leaf_pem, inter_pem, root_pem})},  // 10: mode 4, flag
      {"ca_response_wrong_key", mode(4) + join({leaf_key_pem, chain_pem, roots_pem})},
      {"from_pem", mode(5) + join({key_pem, chain_pem, roots_pem})},
      {"from_pem_intermediate", mode(5) + join({leaf_key_pem, leaf_pem + inter_pem, root_pem})},
      {"der_cert", mode(6) + pem_body(leaf_pem)},  // 6: mode 0, DER
      {"der_key", mode(8) + pem_body(key_pem)},    // 8: mode 2, DER
      {"der_csr", mode(9) + pem_body(csr)},        // 9: mode 3, DER
  };
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silence_protobuf_logs();
  g_ca = new tls::CertificateAuthority(must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h), "CA"));
  fuzz::write_seeds_if_asked(seeds());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view in = fuzz::as_text(data + 1, size - 1);
  const bool flag = ((data[0] / 6) & 1) != 0;
  static constexpr std::string_view kLabels[] = {"CERTIFICATE", "CERTIFICATE", "PRIVATE KEY", "CERTIFICATE REQUEST"};
  const int mode = data[0] % 6;
  const std::string wrapped = flag && mode < 4 ? pem_wrap(kLabels[mode], in) : std::string();
  const std::string_view text = wrapped.empty() ? in : std::string_view(wrapped);
  switch (mode) {
    case 0: certificates(text); break;
    case 1: certificate(text); break;
    case 2: private_key(text); break;
    case 3: csr(text); break;
    case 4: ca_response(in, flag); break;
    default: from_pem(in); break;
  }
  ERR_clear_error();
  return 0;
}
