#include "common/tls/certified_key.h"

#include <fmt/format.h>

namespace ambient::tls {
namespace {

Result<CertifiedKey> assemble(std::string_view key_pem, X509Chain chain, X509Chain roots) {
  auto key = private_key_from_pem(key_pem);
  if (!key) return std::move(key).error();
  if (chain.empty()) return errorf(ErrorKind::InvalidArgument, "certificate chain is empty");
  if (roots.empty()) return errorf(ErrorKind::InvalidArgument, "no root certificate");
  if (!key_matches_certificate(chain.front().get(), key->get()))
    return errorf(ErrorKind::Certificate, "private key does not match the leaf certificate (serial {})",
                  serial_hex(chain.front().get()));
  return CertifiedKey{std::move(key).value(), std::move(chain), std::move(roots)};
}

}  // namespace

Result<CertifiedKey> CertifiedKey::from_pem(std::string_view key_pem, std::string_view chain_pem,
                                            std::string_view roots_pem) {
  auto chain = certificates_from_pem(chain_pem);
  if (!chain) return errorf(ErrorKind::InvalidArgument, "certificate chain: {}", chain.error().context);
  auto roots = certificates_from_pem(roots_pem);
  if (!roots) return errorf(ErrorKind::InvalidArgument, "roots: {}", roots.error().context);
  return assemble(key_pem, std::move(chain).value(), std::move(roots).value());
}

Result<CertifiedKey> CertifiedKey::from_ca_response(std::string_view key_pem,
                                                    const std::vector<std::string>& cert_chain) {
  if (cert_chain.size() < 2)
    return errorf(ErrorKind::InvalidArgument, "CA response has {} element(s); need the leaf and the root(s)",
                  cert_chain.size());
  X509Chain chain;
  for (std::size_t i = 0; i + 1 < cert_chain.size(); ++i) {
    auto certs = certificates_from_pem(cert_chain[i]);
    if (!certs) return errorf(ErrorKind::InvalidArgument, "CA response element {}: {}", i, certs.error().context);
    for (auto& c : *certs) chain.push_back(std::move(c));
  }
  auto roots = certificates_from_pem(cert_chain.back());
  if (!roots)
    return errorf(ErrorKind::InvalidArgument, "CA response element {} (roots): {}", cert_chain.size() - 1,
                  roots.error().context);
  return assemble(key_pem, std::move(chain), std::move(roots).value());
}

Result<SpiffeId> CertifiedKey::identity() const {
  if (!leaf()) return errorf(ErrorKind::Certificate, "no leaf certificate");
  if (auto id = spiffe_identity(leaf())) return std::move(*id);
  const auto sans = uri_sans(leaf());
  return errorf(ErrorKind::Certificate, "leaf certificate has no SPIFFE URI SAN (URI SANs: [{}])",
                fmt::join(sans, ", "));
}

Result<SystemTime> CertifiedKey::not_before() const {
  if (!leaf()) return errorf(ErrorKind::Certificate, "no leaf certificate");
  return tls::not_before(leaf());
}

Result<SystemTime> CertifiedKey::not_after() const {
  if (!leaf()) return errorf(ErrorKind::Certificate, "no leaf certificate");
  return tls::not_after(leaf());
}

CertifiedKey CertifiedKey::share() const {
  return CertifiedKey{key ? bssl::UpRef(key) : nullptr, tls::share(chain), tls::share(roots)};
}

Result<std::string> CertifiedKey::chain_pem() const { return certificates_to_pem(chain); }
Result<std::string> CertifiedKey::roots_pem() const { return certificates_to_pem(roots); }

}  // namespace ambient::tls
