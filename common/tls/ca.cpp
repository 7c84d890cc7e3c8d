#include "common/tls/ca.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include <fmt/format.h>

namespace ambient::tls {
namespace {

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io,
                      fmt::format("{}: {}", path, std::strerror(err)), err);
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return errorf(ErrorKind::Io, "{}: read failed", path);
  return out.str();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool same_certificate(const X509* a, const X509* b) { return X509_cmp(a, b) == 0; }

bool contains(const X509Chain& set, const X509* cert) {
  for (const auto& c : set) {
    if (same_certificate(c.get(), cert)) return true;
  }
  return false;
}

Result<X509Chain> load_certificates(const std::string& path) {
  auto pem = read_file(path);
  if (!pem) return std::move(pem).error();
  auto certs = certificates_from_pem(*pem);
  if (!certs) return errorf(certs.error().kind, "{}: {}", path, certs.error().context);
  return certs;
}

}  // namespace

CertificateAuthority::CertificateAuthority(bssl::UniquePtr<X509> cert, bssl::UniquePtr<EVP_PKEY> key,
                                           X509Chain chain, X509Chain roots, std::string roots_pem)
    : cert_(std::move(cert)),
      key_(std::move(key)),
      chain_(std::move(chain)),
      roots_(std::move(roots)),
      roots_pem_(std::move(roots_pem)) {}

Result<CertificateAuthority> CertificateAuthority::create_self_signed(std::string_view trust_domain,
                                                                      std::chrono::seconds ttl) {
  if (trust_domain.empty()) return errorf(ErrorKind::InvalidArgument, "self-signed CA: empty trust domain");
  if (ttl <= std::chrono::seconds::zero())
    return errorf(ErrorKind::InvalidArgument, "self-signed CA: ttl must be positive, got {}s", ttl.count());
  auto key = generate_p256_key();
  if (!key) return std::move(key).error();
  const SystemTime now = std::chrono::system_clock::now();
  CertificateSpec spec;
  spec.organization = std::string(trust_domain);
  spec.is_ca = true;
  spec.not_before = now - kBackdate;
  spec.not_after = now + ttl;
  auto root = sign_certificate(spec, key->get(), nullptr, nullptr);
  if (!root) return std::move(root).error();
  auto root_pem = certificate_to_pem(root->get());
  if (!root_pem) return std::move(root_pem).error();
  X509Chain roots;
  roots.push_back(bssl::UpRef(*root));
  CertificateAuthority ca(std::move(root).value(), std::move(key).value(), {}, std::move(roots),
                          std::move(root_pem).value());
  return ca;
}

Result<CertificateAuthority> CertificateAuthority::load(const std::string& cert_pem_path,
                                                        const std::string& key_pem_path,
                                                        const std::string& cert_chain_path,
                                                        const std::string& root_cert_path) {
  auto cert_pem = read_file(cert_pem_path);
  if (!cert_pem) return std::move(cert_pem).error();
  auto cert = certificate_from_pem(*cert_pem);
  if (!cert) return errorf(cert.error().kind, "{}: {}", cert_pem_path, cert.error().context);
  auto key_pem = read_file(key_pem_path);
  if (!key_pem) return std::move(key_pem).error();
  auto key = private_key_from_pem(*key_pem);
  if (!key) return errorf(key.error().kind, "{}: {}", key_pem_path, key.error().context);
  if (!key_matches_certificate(cert->get(), key->get()))
    return errorf(ErrorKind::Certificate, "{} does not hold the private key of {}", key_pem_path, cert_pem_path);
  if (!is_ca_certificate(cert->get()))
    return errorf(ErrorKind::Certificate,
                  "{} is not a CA certificate (needs basicConstraints CA:TRUE and keyUsage keyCertSign)",
                  cert_pem_path);

  X509Chain file_chain;
  if (!cert_chain_path.empty()) {
    auto loaded = load_certificates(cert_chain_path);
    if (!loaded) return std::move(loaded).error();
    file_chain = std::move(loaded).value();
  }

  X509Chain roots;
  if (!root_cert_path.empty()) {
    auto loaded = load_certificates(root_cert_path);
    if (!loaded) return std::move(loaded).error();
    roots = std::move(loaded).value();
  } else if (!file_chain.empty() && is_self_signed(file_chain.back().get())) {
    roots.push_back(bssl::UpRef(file_chain.back()));
  } else if (is_self_signed(cert->get())) {
    roots.push_back(bssl::UpRef(*cert));
  } else {
    return errorf(ErrorKind::Certificate,
                  "{} is not self-signed and no root was given (root-cert.pem, or a self-signed last certificate "
                  "in cert-chain.pem)",
                  cert_pem_path);
  }

  // What goes between leaf and roots: the signing certificate, then cert-chain.pem minus any copy of the
  // signing certificate or of a root (istio's cert-chain.pem usually repeats both).
  X509Chain chain;
  if (!contains(roots, cert->get())) {
    chain.push_back(bssl::UpRef(*cert));
    for (const auto& c : file_chain) {
      if (same_certificate(c.get(), cert->get()) || contains(roots, c.get())) continue;
      chain.push_back(bssl::UpRef(c));
    }
  }
  if (auto verified = verify_chain(cert->get(), chain, roots); !verified)
    return errorf(ErrorKind::Certificate, "{} does not verify against the roots: {}", cert_pem_path,
                  verified.error().context);

  auto roots_pem = certificates_to_pem(roots);
  if (!roots_pem) return std::move(roots_pem).error();
  CertificateAuthority ca(std::move(cert).value(), std::move(key).value(), std::move(chain), std::move(roots),
                          std::move(roots_pem).value());
  for (const auto& c : ca.chain_) {
    auto pem = certificate_to_pem(c.get());
    if (!pem) return std::move(pem).error();
    ca.chain_pems_.push_back(std::move(pem).value());
  }
  return ca;
}

Result<CertificateAuthority> CertificateAuthority::load_cacerts_dir(const std::string& dir) {
  const std::string chain = dir + "/cert-chain.pem";
  const std::string root = dir + "/root-cert.pem";
  return load(dir + "/ca-cert.pem", dir + "/ca-key.pem", file_exists(chain) ? chain : std::string(),
              file_exists(root) ? root : std::string());
}

Result<std::vector<std::string>> CertificateAuthority::sign_csr(std::string_view csr_pem,
                                                                const std::optional<SpiffeId>& requested,
                                                                std::chrono::seconds ttl) const {
  if (ttl <= std::chrono::seconds::zero())
    return errorf(ErrorKind::InvalidArgument, "certificate ttl must be positive, got {}s", ttl.count());
  auto csr = verify_csr_pem(csr_pem);
  if (!csr) return std::move(csr).error();
  if (requested) {
    const std::string want = requested->to_string();
    if (csr->uri_san != want)
      return errorf(ErrorKind::InvalidArgument, "CSR URI SAN {} does not match the requested identity {}",
                    csr->uri_san, want);
  } else if (auto id = parse_spiffe(csr->uri_san); !id) {
    return errorf(ErrorKind::InvalidArgument, "CSR URI SAN is not a SPIFFE id: {}", id.error().context);
  }

  auto ca_not_after = not_after(cert_.get());
  if (!ca_not_after) return std::move(ca_not_after).error();
  const SystemTime now = clock_();
  CertificateSpec spec;
  spec.uri_sans = {csr->uri_san};
  spec.not_before = now - kBackdate;
  spec.not_after = std::min(now + ttl, *ca_not_after);  // a leaf never outlives its issuer
  if (spec.not_after <= spec.not_before)
    return errorf(ErrorKind::Certificate, "signing certificate (serial {}) has expired", serial_hex(cert_.get()));
  auto leaf = sign_certificate(spec, csr->public_key.get(), cert_.get(), key_.get());
  if (!leaf) return std::move(leaf).error();
  auto leaf_pem = certificate_to_pem(leaf->get());
  if (!leaf_pem) return std::move(leaf_pem).error();

  std::vector<std::string> response;
  response.reserve(chain_pems_.size() + 2);
  response.push_back(std::move(leaf_pem).value());
  response.insert(response.end(), chain_pems_.begin(), chain_pems_.end());
  response.push_back(roots_pem_);
  return response;
}

Result<CertifiedKey> CertificateAuthority::issue(const SpiffeId& id, std::chrono::seconds ttl) const {
  auto key = generate_p256_key();
  if (!key) return std::move(key).error();
  auto csr = make_csr_pem(key->get(), id);
  if (!csr) return std::move(csr).error();
  auto response = sign_csr(*csr, id, ttl);
  if (!response) return std::move(response).error();
  auto key_pem = private_key_to_pem(key->get());
  if (!key_pem) return std::move(key_pem).error();
  return CertifiedKey::from_ca_response(*key_pem, *response);
}

}  // namespace ambient::tls
