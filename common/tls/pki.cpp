#include "common/tls/pki.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <limits>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

namespace ambient::tls {
namespace {

constexpr std::string_view kCertificateLabel = "CERTIFICATE";

// A read-only memory BIO over `data` (which must outlive it). BIO_new_mem_buf takes an int length.
Result<bssl::UniquePtr<BIO>> read_bio(std::string_view data) {
  if (data.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    return errorf(ErrorKind::InvalidArgument, "PEM input of {} bytes is too large", data.size());
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) return ssl_error(ErrorKind::Certificate, "BIO_new_mem_buf");
  return bio;
}

Result<bssl::UniquePtr<BIO>> write_bio() {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio) return ssl_error(ErrorKind::Certificate, "BIO_new");
  return bio;
}

std::string bio_contents(const BIO* bio) {
  const uint8_t* data = nullptr;
  std::size_t len = 0;
  if (!BIO_mem_contents(bio, &data, &len)) return {};
  return std::string(reinterpret_cast<const char*>(data), len);
}

// Refuses to prompt for a pass phrase: encrypted PEM keys are not supported.
int no_password(char*, int, int, void*) { return 0; }

// True if the error on top of the queue only says "no more PEM blocks".
bool queue_is_pem_eof() {
  const uint32_t err = ERR_peek_last_error();
  return ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
}

Result<bssl::UniquePtr<GENERAL_NAMES>> uri_general_names(const std::vector<std::string>& uris) {
  bssl::UniquePtr<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
  if (!names) return ssl_error(ErrorKind::Certificate, "sk_GENERAL_NAME_new_null");
  for (const auto& uri : uris) {
    bssl::UniquePtr<ASN1_IA5STRING> value(ASN1_IA5STRING_new());
    if (!value || !ASN1_STRING_set(value.get(), uri.data(), static_cast<int>(uri.size())))
      return ssl_error(ErrorKind::Certificate, "ASN1_STRING_set");
    bssl::UniquePtr<GENERAL_NAME> name(GENERAL_NAME_new());
    if (!name) return ssl_error(ErrorKind::Certificate, "GENERAL_NAME_new");
    GENERAL_NAME_set0_value(name.get(), GEN_URI, value.release());
    if (!bssl::PushToStack(names.get(), std::move(name))) return ssl_error(ErrorKind::Certificate, "sk_push");
  }
  return names;
}

Result<bssl::UniquePtr<ASN1_INTEGER>> random_serial() {
  // 128 random bits, as Istio's CA does; a positive INTEGER of at most 17 DER bytes (RFC 5280 allows 20).
  uint8_t bytes[16];
  bssl::UniquePtr<BIGNUM> bn;
  do {
    if (!RAND_bytes(bytes, sizeof bytes)) return ssl_error(ErrorKind::Certificate, "RAND_bytes");
    bn.reset(BN_bin2bn(bytes, sizeof bytes, nullptr));
    if (!bn) return ssl_error(ErrorKind::Certificate, "BN_bin2bn");
  } while (BN_is_zero(bn.get()));  // serials must be positive
  bssl::UniquePtr<ASN1_INTEGER> serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial) return ssl_error(ErrorKind::Certificate, "BN_to_ASN1_INTEGER");
  return serial;
}

Result<void> set_time(X509* cert, SystemTime t, bool before) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  bssl::UniquePtr<ASN1_TIME> asn1(ASN1_TIME_set(nullptr, secs));
  if (!asn1) return ssl_error(ErrorKind::Certificate, "ASN1_TIME_set");
  const int set = before ? X509_set1_notBefore(cert, asn1.get()) : X509_set1_notAfter(cert, asn1.get());
  if (!set) return ssl_error(ErrorKind::Certificate, before ? "X509_set1_notBefore" : "X509_set1_notAfter");
  return ok();
}

// Adds an extension written in OpenSSL's config syntax (only constant strings: no user data goes through
// this path, so no value can inject extra names).
Result<void> add_conf_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  bssl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (!ext || !X509_add_ext(cert, ext.get(), -1))
    return ssl_error(ErrorKind::Certificate, fmt::format("extension {}={}", OBJ_nid2sn(nid), value));
  return ok();
}

Result<SystemTime> asn1_to_time(const ASN1_TIME* t, std::string_view what) {
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0;
  int secs = 0;
  if (!t || !epoch || !ASN1_TIME_diff(&days, &secs, epoch.get(), t))
    return ssl_error(ErrorKind::Certificate, fmt::format("certificate {} is not a valid time", what));
  // SystemTime is a 64-bit count of nanoseconds in libstdc++ (years 1677..2262); RFC 5280's "no expiry"
  // 99991231235959Z lies past that: times outside the representable range are clamped to it, not overflowed.
  constexpr std::int64_t kMax = std::chrono::duration_cast<std::chrono::seconds>(SystemTime::duration::max()).count();
  const std::int64_t since_epoch = static_cast<std::int64_t>(days) * 86400 + secs;
  return SystemTime(std::chrono::seconds(std::clamp(since_epoch, -kMax, kMax)));
}

}  // namespace

// ---- errors ---------------------------------------------------------------------------------------------

std::string drain_ssl_errors() {
  std::string out;
  while (const uint32_t err = ERR_get_error()) {
    if (!out.empty()) out += "; ";
    const char* lib = ERR_lib_error_string(err);
    const char* reason = ERR_reason_error_string(err);
    out += fmt::format("{}:{}", lib ? lib : "?", reason ? reason : std::to_string(ERR_GET_REASON(err)));
  }
  return out;
}

Error ssl_error(ErrorKind kind, std::string_view what) {
  std::string queue = drain_ssl_errors();
  if (queue.empty()) return make_error(kind, std::string(what));
  return make_error(kind, fmt::format("{}: {}", what, queue));
}

// ---- keys -----------------------------------------------------------------------------------------------

Result<bssl::UniquePtr<EVP_PKEY>> generate_p256_key() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  if (!ec || !EC_KEY_generate_key(ec.get())) return ssl_error(ErrorKind::Certificate, "P-256 key generation");
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!key || !EVP_PKEY_assign_EC_KEY(key.get(), ec.get())) return ssl_error(ErrorKind::Certificate, "EVP_PKEY_assign");
  ec.release();  // owned by `key` now
  return key;
}

Result<bssl::UniquePtr<EVP_PKEY>> private_key_from_pem(std::string_view pem) {
  auto bio = read_bio(pem);
  if (!bio) return std::move(bio).error();
  bssl::UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio->get(), nullptr, no_password, nullptr));
  if (!key) return ssl_error(ErrorKind::InvalidArgument, "no usable unencrypted PEM private key");
  return key;
}

Result<std::string> private_key_to_pem(EVP_PKEY* key) {
  auto bio = write_bio();
  if (!bio) return std::move(bio).error();
  if (!PEM_write_bio_PKCS8PrivateKey(bio->get(), key, nullptr, nullptr, 0, nullptr, nullptr))
    return ssl_error(ErrorKind::Certificate, "writing PKCS#8 private key");
  return bio_contents(bio->get());
}

Result<std::string> ec_private_key_to_pem(EVP_PKEY* key) {
  EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key);
  if (!ec) return errorf(ErrorKind::InvalidArgument, "not an EC key (type {})", EVP_PKEY_id(key));
  auto bio = write_bio();
  if (!bio) return std::move(bio).error();
  if (!PEM_write_bio_ECPrivateKey(bio->get(), ec, nullptr, nullptr, 0, nullptr, nullptr))
    return ssl_error(ErrorKind::Certificate, "writing EC private key");
  return bio_contents(bio->get());
}

bool key_matches_certificate(X509* cert, const EVP_PKEY* key) {
  const bool match = X509_check_private_key(cert, key) == 1;
  ERR_clear_error();  // a mismatch is an answer, not an error to report later
  return match;
}

// ---- certificates and PEM -------------------------------------------------------------------------------

Result<X509Chain> certificates_from_pem(std::string_view pem) {
  auto bio = read_bio(pem);
  if (!bio) return std::move(bio).error();
  X509Chain out;
  for (;;) {
    char* raw_name = nullptr;
    char* raw_header = nullptr;
    uint8_t* raw_data = nullptr;
    long len = 0;
    const int got = PEM_read_bio(bio->get(), &raw_name, &raw_header, &raw_data, &len);
    bssl::UniquePtr<char> name(raw_name);
    bssl::UniquePtr<char> header(raw_header);
    bssl::UniquePtr<uint8_t> data(raw_data);
    if (!got) {
      if (queue_is_pem_eof()) {
        ERR_clear_error();
        break;
      }
      return ssl_error(ErrorKind::InvalidArgument, fmt::format("PEM block {} is malformed", out.size() + 1));
    }
    if (kCertificateLabel != name.get())
      return errorf(ErrorKind::InvalidArgument, "PEM block {} is '{}', expected '{}'", out.size() + 1, name.get(),
                    kCertificateLabel);
    const uint8_t* p = data.get();
    bssl::UniquePtr<X509> cert(d2i_X509(nullptr, &p, len));
    if (!cert || p != data.get() + len)
      return ssl_error(ErrorKind::InvalidArgument, fmt::format("PEM certificate {} is not valid DER X.509", out.size() + 1));
    out.push_back(std::move(cert));
  }
  if (out.empty()) return errorf(ErrorKind::InvalidArgument, "no PEM CERTIFICATE block found");
  return out;
}

Result<bssl::UniquePtr<X509>> certificate_from_pem(std::string_view pem) {
  auto chain = certificates_from_pem(pem);
  if (!chain) return std::move(chain).error();
  if (chain->size() != 1)
    return errorf(ErrorKind::InvalidArgument, "expected exactly one PEM certificate, found {}", chain->size());
  return std::move(chain->front());
}

Result<std::string> certificate_to_pem(X509* cert) {
  auto bio = write_bio();
  if (!bio) return std::move(bio).error();
  if (!PEM_write_bio_X509(bio->get(), cert)) return ssl_error(ErrorKind::Certificate, "writing PEM certificate");
  return bio_contents(bio->get());
}

Result<std::string> certificates_to_pem(const X509Chain& chain) {
  std::string out;
  for (const auto& cert : chain) {
    auto pem = certificate_to_pem(cert.get());
    if (!pem) return std::move(pem).error();
    out += *pem;
  }
  return out;
}

X509Chain share(const X509Chain& chain) {
  X509Chain out;
  out.reserve(chain.size());
  for (const auto& cert : chain) out.push_back(bssl::UpRef(cert));
  return out;
}

// ---- CSRs -----------------------------------------------------------------------------------------------

Result<std::string> make_csr_pem(EVP_PKEY* key, const SpiffeId& id) {
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  if (!req || !X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) || !X509_REQ_set_pubkey(req.get(), key))
    return ssl_error(ErrorKind::Certificate, "building CSR");
  auto names = uri_general_names({id.to_string()});
  if (!names) return std::move(names).error();
  // Critical: the subject is empty, so the SAN is the only name (RFC 5280 4.2.1.6).
  bssl::UniquePtr<X509_EXTENSION> san(X509V3_EXT_i2d(NID_subject_alt_name, /*crit=*/1, names->get()));
  bssl::UniquePtr<STACK_OF(X509_EXTENSION)> exts(sk_X509_EXTENSION_new_null());
  if (!san || !exts || !bssl::PushToStack(exts.get(), std::move(san)) ||
      !X509_REQ_add_extensions(req.get(), exts.get()))
    return ssl_error(ErrorKind::Certificate, "adding CSR subjectAltName");
  if (!X509_REQ_sign(req.get(), key, EVP_sha256())) return ssl_error(ErrorKind::Certificate, "signing CSR");
  auto bio = write_bio();
  if (!bio) return std::move(bio).error();
  if (!PEM_write_bio_X509_REQ(bio->get(), req.get())) return ssl_error(ErrorKind::Certificate, "writing CSR PEM");
  return bio_contents(bio->get());
}

Result<VerifiedCsr> verify_csr_pem(std::string_view pem) {
  auto bio = read_bio(pem);
  if (!bio) return std::move(bio).error();
  bssl::UniquePtr<X509_REQ> req(PEM_read_bio_X509_REQ(bio->get(), nullptr, no_password, nullptr));
  if (!req) return ssl_error(ErrorKind::InvalidArgument, "CSR is not a PEM CERTIFICATE REQUEST");
  bssl::UniquePtr<EVP_PKEY> public_key(X509_REQ_get_pubkey(req.get()));
  if (!public_key) return ssl_error(ErrorKind::InvalidArgument, "CSR public key is unreadable");
  if (X509_REQ_verify(req.get(), public_key.get()) != 1)
    return ssl_error(ErrorKind::InvalidArgument, "CSR signature does not verify");

  bssl::UniquePtr<STACK_OF(X509_EXTENSION)> exts(X509_REQ_get_extensions(req.get()));
  ERR_clear_error();  // "no extensions" is reported below in our own words
  if (!exts) return errorf(ErrorKind::InvalidArgument, "CSR has no subjectAltName");
  int critical = -1;
  bssl::UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts.get(), NID_subject_alt_name, &critical, nullptr)));
  if (!names) {
    ERR_clear_error();
    if (critical == -2) return errorf(ErrorKind::InvalidArgument, "CSR has more than one subjectAltName extension");
    if (critical == -1) return errorf(ErrorKind::InvalidArgument, "CSR has no subjectAltName");
    return errorf(ErrorKind::InvalidArgument, "CSR subjectAltName does not decode");
  }
  if (sk_GENERAL_NAME_num(names.get()) != 1)
    return errorf(ErrorKind::InvalidArgument, "CSR subjectAltName must hold exactly one URI, found {} names",
                  sk_GENERAL_NAME_num(names.get()));
  const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), 0);
  if (name->type != GEN_URI)
    return errorf(ErrorKind::InvalidArgument, "CSR subjectAltName must be a URI, found name type {}", name->type);
  const ASN1_STRING* uri = name->d.uniformResourceIdentifier;
  return VerifiedCsr{std::move(public_key),
                     std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                                 static_cast<std::size_t>(ASN1_STRING_length(uri)))};
}

// ---- building certificates ------------------------------------------------------------------------------

Result<bssl::UniquePtr<X509>> sign_certificate(const CertificateSpec& spec, EVP_PKEY* subject_key, X509* issuer,
                                               EVP_PKEY* issuer_key) {
  if ((issuer == nullptr) != (issuer_key == nullptr))
    return errorf(ErrorKind::InvalidArgument, "issuer certificate and issuer key must be given together");
  if (spec.not_after <= spec.not_before)
    return errorf(ErrorKind::InvalidArgument, "certificate validity ends before it starts");

  bssl::UniquePtr<X509> cert(X509_new());
  if (!cert || !X509_set_version(cert.get(), X509_VERSION_3)) return ssl_error(ErrorKind::Certificate, "X509_new");
  auto serial = random_serial();
  if (!serial) return std::move(serial).error();
  if (!X509_set_serialNumber(cert.get(), serial->get())) return ssl_error(ErrorKind::Certificate, "serial");

  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (!spec.organization.empty() &&
      !X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                                  reinterpret_cast<const uint8_t*>(spec.organization.data()),
                                  static_cast<int>(spec.organization.size()), -1, 0))
    return ssl_error(ErrorKind::InvalidArgument, "subject O=");
  if (!X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject))
    return ssl_error(ErrorKind::Certificate, "issuer name");
  AMBIENT_TRY(set_time(cert.get(), spec.not_before, true));
  AMBIENT_TRY(set_time(cert.get(), spec.not_after, false));
  if (!X509_set_pubkey(cert.get(), subject_key)) return ssl_error(ErrorKind::Certificate, "X509_set_pubkey");

  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  if (spec.is_ca) {
    AMBIENT_TRY(add_conf_extension(cert.get(), &v3, NID_basic_constraints, "critical,CA:TRUE"));
    AMBIENT_TRY(add_conf_extension(cert.get(), &v3, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    AMBIENT_TRY(add_conf_extension(cert.get(), &v3, NID_basic_constraints, "critical,CA:FALSE"));
    AMBIENT_TRY(add_conf_extension(cert.get(), &v3, NID_key_usage, "critical,digitalSignature,keyEncipherment"));
    const char* eku = spec.server_auth && spec.client_auth ? "serverAuth,clientAuth"
                      : spec.server_auth                   ? "serverAuth"
                      : spec.client_auth                   ? "clientAuth"
                                                           : nullptr;
    if (eku) AMBIENT_TRY(add_conf_extension(cert.get(), &v3, NID_ext_key_usage, eku));
  }
  AMBIENT_TRY(add_conf_extension(cert.get(), &v3, NID_subject_key_identifier, "hash"));
  // "keyid" (not "keyid:always"): an issuer loaded from files may lack a subjectKeyIdentifier.
  if (issuer) AMBIENT_TRY(add_conf_extension(cert.get(), &v3, NID_authority_key_identifier, "keyid"));
  if (!spec.uri_sans.empty()) {
    auto names = uri_general_names(spec.uri_sans);
    if (!names) return std::move(names).error();
    const int critical = spec.organization.empty() ? 1 : 0;
    if (!X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, names->get(), critical, X509V3_ADD_DEFAULT))
      return ssl_error(ErrorKind::Certificate, "subjectAltName");
  }

  if (!X509_sign(cert.get(), issuer_key ? issuer_key : subject_key, EVP_sha256()))
    return ssl_error(ErrorKind::Certificate, "signing certificate");
  return cert;
}

Result<void> verify_chain(X509* leaf, const X509Chain& intermediates, const X509Chain& roots,
                          std::optional<SystemTime> at, int purpose) {
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  bssl::UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  bssl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) return ssl_error(ErrorKind::Certificate, "X509_STORE_new");
  for (const auto& root : roots) {
    if (!X509_STORE_add_cert(store.get(), root.get())) return ssl_error(ErrorKind::Certificate, "adding root");
  }
  for (const auto& cert : intermediates) {
    if (!bssl::PushToStack(untrusted.get(), bssl::UpRef(cert))) return ssl_error(ErrorKind::Certificate, "sk_push");
  }
  if (!X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()))
    return ssl_error(ErrorKind::Certificate, "X509_STORE_CTX_init");
  if (at) X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(*at));
  if (purpose != 0 && !X509_STORE_CTX_set_purpose(ctx.get(), purpose))
    return ssl_error(ErrorKind::InvalidArgument, "X509_STORE_CTX_set_purpose");
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return errorf(ErrorKind::Certificate, "certificate chain: {} (depth {})", X509_verify_cert_error_string(err),
                  X509_STORE_CTX_get_error_depth(ctx.get()));
  }
  return ok();
}

// ---- inspection -----------------------------------------------------------------------------------------

std::vector<std::string> uri_sans(const X509* cert) {
  std::vector<std::string> out;
  bssl::UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) {
    ERR_clear_error();
    return out;
  }
  for (std::size_t i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_STRING* uri = name->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                     static_cast<std::size_t>(ASN1_STRING_length(uri)));
  }
  return out;
}

std::optional<SpiffeId> spiffe_identity(const X509* cert) {
  for (const auto& uri : uri_sans(cert)) {
    if (auto id = parse_spiffe(uri)) return std::move(id).value();
  }
  return std::nullopt;
}

Result<SystemTime> not_before(const X509* cert) { return asn1_to_time(X509_get0_notBefore(cert), "notBefore"); }
Result<SystemTime> not_after(const X509* cert) { return asn1_to_time(X509_get0_notAfter(cert), "notAfter"); }

std::string serial_hex(const X509* cert) {
  bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) {
    ERR_clear_error();
    return {};
  }
  bssl::UniquePtr<char> hex(BN_bn2hex(bn.get()));
  return hex ? std::string(hex.get()) : std::string();
}

bool is_ca_certificate(X509* cert) {
  const uint32_t flags = X509_get_extension_flags(cert);  // also parses and caches the extensions
  ERR_clear_error();  // an undecodable extension is EXFLAG_INVALID, not an error left for the next caller
  if (flags & EXFLAG_INVALID) return false;
  // X509_get_key_usage is all-ones when keyUsage is absent.
  return (flags & EXFLAG_CA) != 0 && (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) != 0;
}

bool is_self_signed(X509* cert) {
  if (X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) != 0) return false;
  bssl::UniquePtr<EVP_PKEY> key(X509_get_pubkey(cert));
  const bool verifies = key && X509_verify(cert, key.get()) == 1;
  ERR_clear_error();
  return verifies;
}

}  // namespace ambient::tls
