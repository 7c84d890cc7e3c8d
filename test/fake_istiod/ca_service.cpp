#include "test/fake_istiod/ca_service.h"

#include <ctime>
#include <fstream>
#include <iterator>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

namespace fake_istiod {

using ambient::ErrorKind;
using ambient::errorf;

namespace {

constexpr std::chrono::seconds kDefaultValidity{24 * 3600};
constexpr std::chrono::seconds kBackdate{60};
constexpr std::size_t kMaxCsrBytes = 64 * 1024;

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ExtsPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), decltype([](STACK_OF(X509_EXTENSION)* s) {
                                  sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
                                })>;

// OpenSSL's error queue, drained: "what: reason; reason".
std::string ssl_errors(std::string_view what) {
  std::string out(what);
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.size() == what.size() ? ": " : "; ") + std::string(buf);
  }
  return out;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

BioPtr mem_bio(std::string_view s) { return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size()))); }

ambient::Result<std::string> to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return errorf(ErrorKind::Certificate, "{}", ssl_errors("PEM_write_bio_X509"));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// The CSR's subjectAltName entries (empty when it has none).
NamesPtr csr_sans(X509_REQ* req) {
  ExtsPtr exts(X509_REQ_get_extensions(req));
  if (!exts) return NamesPtr(sk_GENERAL_NAME_new_null());
  return NamesPtr(static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts.get(), NID_subject_alt_name, nullptr, nullptr)));
}

ambient::Result<void> add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return errorf(ErrorKind::Certificate, "{}", ssl_errors(std::string("extension ") + value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return errorf(ErrorKind::Certificate, "{}", ssl_errors("X509_add_ext"));
  return {};
}

}  // namespace

ambient::Result<Signer> Signer::load(const std::string& cert_path, const std::string& key_path) {
  auto cert_pem = read_file(cert_path);
  if (!cert_pem) return errorf(ErrorKind::NotFound, "--ca-cert {}: cannot read", cert_path);
  auto key_pem = read_file(key_path);
  if (!key_pem) return errorf(ErrorKind::NotFound, "--ca-key {}: cannot read", key_path);
  X509Ptr cert(PEM_read_bio_X509(mem_bio(*cert_pem).get(), nullptr, nullptr, nullptr));
  if (!cert) return errorf(ErrorKind::InvalidArgument, "--ca-cert {}: {}", cert_path, ssl_errors("not a PEM certificate"));
  KeyPtr key(PEM_read_bio_PrivateKey(mem_bio(*key_pem).get(), nullptr, nullptr, nullptr));
  if (!key) return errorf(ErrorKind::InvalidArgument, "--ca-key {}: {}", key_path, ssl_errors("not a PEM private key"));
  if (X509_check_private_key(cert.get(), key.get()) != 1)
    return errorf(ErrorKind::InvalidArgument, "--ca-key {} does not match --ca-cert {}", key_path, cert_path);
  if (X509_check_ca(cert.get()) == 0)
    return errorf(ErrorKind::InvalidArgument, "--ca-cert {}: not a CA certificate", cert_path);
  auto pem = to_pem(cert.get());
  if (!pem) return std::move(pem).error();
  Signer s;
  s.cert_ = std::shared_ptr<X509>(cert.release(), X509Free{});
  s.key_ = std::shared_ptr<EVP_PKEY>(key.release(), KeyFree{});
  s.ca_pem_ = std::move(*pem);
  return s;
}

ambient::Result<Signer::Issued> Signer::sign(std::string_view csr_pem, const std::optional<std::string>& impersonated,
                                             std::chrono::seconds validity) const {
  ERR_clear_error();
  if (csr_pem.empty()) return errorf(ErrorKind::InvalidArgument, "csr is empty");
  if (csr_pem.size() > kMaxCsrBytes)
    return errorf(ErrorKind::InvalidArgument, "csr is {} bytes, limit {}", csr_pem.size(), kMaxCsrBytes);
  ReqPtr req(PEM_read_bio_X509_REQ(mem_bio(csr_pem).get(), nullptr, nullptr, nullptr));
  if (!req) return errorf(ErrorKind::InvalidArgument, "{}", ssl_errors("csr is not a PEM CERTIFICATE REQUEST"));
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (!pub || X509_REQ_verify(req.get(), pub) != 1)
    return errorf(ErrorKind::InvalidArgument, "{}", ssl_errors("csr signature does not verify"));
  NamesPtr sans = csr_sans(req.get());
  const int n = sans ? sk_GENERAL_NAME_num(sans.get()) : 0;
  if (n != 1) return errorf(ErrorKind::InvalidArgument, "csr has {} subjectAltName entries, want exactly one URI", n);
  const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), 0);
  if (gn->type != GEN_URI) return errorf(ErrorKind::InvalidArgument, "csr subjectAltName is not a URI");
  const std::string san(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier)),
                        static_cast<std::size_t>(ASN1_STRING_length(gn->d.uniformResourceIdentifier)));
  if (san.rfind("spiffe://", 0) != 0)
    return errorf(ErrorKind::InvalidArgument, "csr URI SAN \"{}\" is not a spiffe:// identity", san);
  if (impersonated && *impersonated != san)
    return errorf(ErrorKind::InvalidArgument, "ImpersonatedIdentity \"{}\" does not match the csr's URI SAN \"{}\"",
                  *impersonated, san);

  X509Ptr cert(X509_new());
  const auto now = std::chrono::system_clock::now();
  std::time_t now_t = std::chrono::system_clock::to_time_t(now);
  unsigned char serial[16];
  if (!cert || RAND_bytes(serial, sizeof serial) != 1) return errorf(ErrorKind::Certificate, "{}", ssl_errors("X509_new/RAND_bytes"));
  serial[0] &= 0x7f;  // positive
  serial[0] |= 0x40;  // and a full 16 bytes
  BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  X509_NAME* empty = X509_NAME_new();
  const bool ok = X509_set_version(cert.get(), X509_VERSION_3) == 1 && bn &&
                  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) != nullptr &&
                  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) == 1 &&
                  empty && X509_set_subject_name(cert.get(), empty) == 1 && X509_set_pubkey(cert.get(), pub) == 1 &&
                  X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -static_cast<long>(kBackdate.count()), &now_t) &&
                  X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, static_cast<long>(validity.count()), &now_t);
  X509_NAME_free(empty);
  if (!ok) return errorf(ErrorKind::Certificate, "{}", ssl_errors("building the certificate"));

  // SAN built as a GENERAL_NAME (not a config string, so any URI characters are safe); critical because
  // the subject is empty (RFC 5280 4.2.1.6).
  NamesPtr out_sans(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* uri = GENERAL_NAME_new();
  ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
  if (!out_sans || !uri || !ia5 || ASN1_STRING_set(ia5, san.data(), static_cast<int>(san.size())) != 1) {
    GENERAL_NAME_free(uri);
    ASN1_IA5STRING_free(ia5);
    return errorf(ErrorKind::Certificate, "{}", ssl_errors("subjectAltName"));
  }
  GENERAL_NAME_set0_value(uri, GEN_URI, ia5);
  sk_GENERAL_NAME_push(out_sans.get(), uri);
  if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, out_sans.get(), 1, X509V3_ADD_DEFAULT) != 1)
    return errorf(ErrorKind::Certificate, "{}", ssl_errors("subjectAltName"));
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            std::pair{NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                            std::pair{NID_ext_key_usage, "serverAuth,clientAuth"},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (auto r = add_ext(cert.get(), cert_.get(), nid, value); !r) return std::move(r).error();
  }
  if (X509_sign(cert.get(), key_.get(), EVP_sha256()) <= 0)
    return errorf(ErrorKind::Certificate, "{}", ssl_errors("X509_sign"));
  auto pem = to_pem(cert.get());
  if (!pem) return std::move(pem).error();
  return Issued{std::move(*pem), san, now + validity};
}

grpc::Status CaService::CreateCertificate(grpc::ServerContext* ctx, const istio::v1::auth::IstioCertificateRequest* req,
                                          istio::v1::auth::IstioCertificateResponse* resp) {
  auto st = create(*ctx, *req, *resp);
  if (!st.ok()) {
    ++stats_.csrs_refused;
    spdlog::warn("CreateCertificate from {} (clusterid={}) refused: {}: {}", ctx->peer(),
                 metadata_value(ctx->client_metadata(), "clusterid"), static_cast<int>(st.error_code()),
                 st.error_message());
  }
  return st;
}

grpc::Status CaService::create(grpc::ServerContext& ctx, const istio::v1::auth::IstioCertificateRequest& req,
                               istio::v1::auth::IstioCertificateResponse& resp) {
  if (auto refused = check_token(ctx.client_metadata(), token_)) {
    ++stats_.unauthenticated;
    return *refused;
  }
  if (faults_.refuse_csr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "CA refusing CSRs (fault injection)");
  if (req.validity_duration() < 0)
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "validity_duration " + std::to_string(req.validity_duration()) + " is negative");
  std::chrono::seconds validity = req.validity_duration() == 0 ? kDefaultValidity
                                                               : std::chrono::seconds(req.validity_duration());
  validity = std::min(validity, std::chrono::seconds(std::int64_t{10} * 365 * 24 * 3600));  // time_t arithmetic stays sane
  if (const auto cap = faults_.cert_ttl_s.load(); cap > 0) validity = std::min(validity, std::chrono::seconds(cap));

  std::optional<std::string> impersonated;
  if (req.has_metadata()) {
    const auto& fields = req.metadata().fields();
    if (auto it = fields.find("ImpersonatedIdentity"); it != fields.end()) {
      if (it->second.kind_case() != google::protobuf::Value::kStringValue)
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "metadata ImpersonatedIdentity is not a string");
      impersonated = it->second.string_value();
    }
  }
  auto issued = signer_.sign(req.csr(), impersonated, validity);
  if (!issued)
    return grpc::Status(issued.error().kind == ErrorKind::InvalidArgument ? grpc::StatusCode::INVALID_ARGUMENT
                                                                          : grpc::StatusCode::INTERNAL,
                        issued.error().context);
  resp.add_cert_chain(std::move(issued->leaf_pem));
  resp.add_cert_chain(signer_.ca_pem());
  ++stats_.csrs_signed;
  spdlog::info("signed certificate for {} (clusterid={}, validity {}s{})", issued->identity,
               metadata_value(ctx.client_metadata(), "clusterid"), validity.count(),
               impersonated ? ", impersonated" : "");
  return grpc::Status::OK;
}

}  // namespace fake_istiod
