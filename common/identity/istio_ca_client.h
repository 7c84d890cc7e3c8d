#pragma once
// IstioCaClient: workload certificates from istiod's CA (reference ztunnel.md section 5), over our own
// gRPC client and BoringSSL (DESIGN.md section 2: no grpc++ in this process).
//
// One fetch = one unary call /istio.v1.auth.IstioCertificateService/CreateCertificate:
//   - a fresh ECDSA P-256 key; a CSR with an empty subject and one critical URI SAN = the SPIFFE id;
//   - IstioCertificateRequest{csr, validity_duration = ttl in seconds, metadata}; metadata is
//     {"ImpersonatedIdentity": "<spiffe id>"} when `impersonate` (shared/in-pod mode: ztunnel
//     authenticates as itself and asks for a workload's identity), else empty;
//   - call metadata: authorization "Bearer <token>" (AUTH_TOKEN file re-read per call), clusterid,
//     CA_HEADER_*; :authority = "<server_name>:<port>";
//   - the response is checked (check_certificate_response) before it is returned.
//
// Connection: one HTTP/2 connection, shared by concurrent calls (one stream each) and reused while
// alive; when it is dead (server closed it, keepalive PING timeout, GOAWAY) the next call re-dials.
// Concurrent calls that find no connection wait for one dial and share its result.
//
// Threads: everything on the control executor `ex`; no locks.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <openssl/evp.h>

#include "common/base/result.h"
#include "common/grpc/channel_tls.h"
#include "common/h2/headers.h"
#include "common/h2/session.h"
#include "common/identity/certificate_source.h"
#include "proto/ca.pb.h"

namespace ambient::identity {

inline constexpr std::string_view kCreateCertificatePath = "/istio.v1.auth.IstioCertificateService/CreateCertificate";
inline constexpr std::string_view kImpersonatedIdentityKey = "ImpersonatedIdentity";

struct IstioCaOptions {
  IstioCaOptions() = default;  // not an aggregate (GCC 12 and aggregate temporaries in co_await)

  std::string host;             // CA_ADDRESS host (DNS name or IP literal)
  std::uint16_t port = 15012;
  std::string server_name;      // ALT_CA_HOSTNAME: verified in the CA's certificate; empty = host
  std::shared_ptr<const grpc::ChannelTls> tls;  // required: CA_ROOT_CA
  std::string token_path;       // AUTH_TOKEN: re-read on every call; empty = no bearer token
  std::string cluster_id;       // `clusterid` header; empty = not sent
  h2::Headers headers;          // CA_HEADER_<name>=value
  bool impersonate = false;     // send ImpersonatedIdentity (shared mode)
  std::chrono::milliseconds connect_timeout{5'000};  // TCP connect and TLS handshake, each
  std::chrono::milliseconds call_timeout{10'000};    // one CreateCertificate (grpc-timeout and local deadline)
};

// ---- pure parts (table-tested) ------------------------------------------------------------------------

// The request for `csr_pem` (from tls::make_csr_pem for `id`).
istio::v1::auth::IstioCertificateRequest build_certificate_request(std::string csr_pem, const tls::SpiffeId& id,
                                                                   std::chrono::seconds ttl, bool impersonate);

// Checks a CreateCertificate response for a CSR of `key` asking for `requested`, and assembles it.
// Shape: cert_chain = [leaf, intermediates..., root(s)] (the last element may hold several PEMs), or,
// when root_cert.ca_cert is set (newer CAs), cert_chain = [leaf, intermediates...] and roots apart.
// Refused, each with its own error (ErrorKind::Certificate unless said otherwise):
//   - no leaf or no root (fewer than two elements without root_cert)          InvalidArgument
//   - an element that is not PEM certificates (the element's index is named)  Parse
//   - a leaf whose SPIFFE URI SAN is not `requested` (its URI SANs are listed)
//   - a leaf that does not certify `key`
//   - a chain that does not verify to the roots of the response at `now` (or at the leaf's notBefore
//     when that is later: a CA whose clock runs a little ahead is not refused for it)
Result<tls::CertifiedKey> check_certificate_response(const istio::v1::auth::IstioCertificateResponse& response,
                                                     bssl::UniquePtr<EVP_PKEY> key, const tls::SpiffeId& requested,
                                                     tls::SystemTime now);

// ---- the client ---------------------------------------------------------------------------------------

struct IstioCaStats {
  std::uint64_t dials = 0;      // connections attempted
  std::uint64_t calls = 0;      // CreateCertificate calls sent
  std::uint64_t failures = 0;   // fetches that returned an error
};

class IstioCaClient final : public CertificateSource {
 public:
  IstioCaClient(boost::asio::any_io_executor ex, IstioCaOptions options);
  ~IstioCaClient() override;

  // CertificateSource. Errors are prefixed "CA <host>:<port>: " (then what failed: resolve, connect,
  // TLS, the gRPC status, or the response check).
  boost::asio::awaitable<Result<tls::CertifiedKey>> fetch(tls::SpiffeId id, std::chrono::seconds ttl) override;

  // Closes the connection; later fetches dial again. On ex.
  void close();
  const IstioCaStats& stats() const noexcept { return stats_; }
  const IstioCaOptions& options() const noexcept { return options_; }

 private:
  boost::asio::awaitable<Result<tls::CertifiedKey>> fetch_once(tls::SpiffeId id, std::chrono::seconds ttl);
  boost::asio::awaitable<Result<std::shared_ptr<h2::Session>>> connection();

  boost::asio::any_io_executor ex_;
  IstioCaOptions options_;
  std::string server_name_;  // options_.server_name or options_.host
  IstioCaStats stats_;
  std::shared_ptr<h2::Session> session_;
  bool dialing_ = false;
  std::uint64_t dial_generation_ = 0;  // bumped when a dial ends; waiters compare it
  Result<void> last_dial_ = ok();      // outcome of the last dial, for the calls that waited on it
  boost::asio::steady_timer dial_done_;  // never expires; cancel() wakes the calls waiting for a dial
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ambient::identity
