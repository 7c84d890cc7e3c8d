#include "common/identity/istio_ca_client.h"

#include <algorithm>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/chrono.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "common/grpc/channel.h"
#include "common/grpc/client.h"
#include "common/grpc/target.h"
#include "common/tls/pki.h"

namespace ambient::identity {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// ---- pure parts -------------------------------------------------------------------------------------------

istio::v1::auth::IstioCertificateRequest build_certificate_request(std::string csr_pem, const tls::SpiffeId& id,
                                                                   std::chrono::seconds ttl, bool impersonate) {
  istio::v1::auth::IstioCertificateRequest req;
  req.set_csr(std::move(csr_pem));
  req.set_validity_duration(ttl.count());
  if (impersonate)
    (*req.mutable_metadata()->mutable_fields())[std::string(kImpersonatedIdentityKey)].set_string_value(id.to_string());
  return req;
}

namespace {

std::string utc(tls::SystemTime t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(t));
}

}  // namespace

Result<tls::CertifiedKey> check_certificate_response(const istio::v1::auth::IstioCertificateResponse& response,
                                                     bssl::UniquePtr<EVP_PKEY> key, const tls::SpiffeId& requested,
                                                     tls::SystemTime now) {
  const auto& elems = response.cert_chain();
  const bool separate_roots = response.has_root_cert() && response.root_cert().ca_cert_size() > 0;
  if (elems.empty()) return errorf(ErrorKind::InvalidArgument, "response has an empty cert_chain (no leaf certificate)");
  if (!separate_roots && elems.size() < 2)
    return errorf(ErrorKind::InvalidArgument,
                  "response cert_chain has 1 element and no root_cert: need the leaf, then the root(s) last");
  const int chain_end = separate_roots ? elems.size() : elems.size() - 1;  // [0, chain_end) = leaf + intermediates
  tls::X509Chain chain, roots;
  for (int i = 0; i < chain_end; ++i) {
    auto certs = tls::certificates_from_pem(elems[i]);
    if (!certs) return errorf(ErrorKind::Parse, "response cert_chain[{}]{}: {}", i, i == 0 ? " (leaf)" : "", certs.error().context);
    for (auto& c : *certs) chain.push_back(std::move(c));
  }
  auto add_roots = [&](std::string_view pem, std::string_view where) -> Result<void> {
    auto certs = tls::certificates_from_pem(pem);
    if (!certs) return errorf(ErrorKind::Parse, "response {} (roots): {}", where, certs.error().context);
    for (auto& c : *certs) roots.push_back(std::move(c));
    return ok();
  };
  if (separate_roots) {
    for (int i = 0; i < response.root_cert().ca_cert_size(); ++i)
      AMBIENT_TRY(add_roots(response.root_cert().ca_cert(i), fmt::format("root_cert.ca_cert[{}]", i)));
  } else {
    AMBIENT_TRY(add_roots(elems[elems.size() - 1], fmt::format("cert_chain[{}]", elems.size() - 1)));
  }

  X509* leaf = chain.front().get();
  const auto id = tls::spiffe_identity(leaf);
  if (!id || !(*id == requested))
    return errorf(ErrorKind::Certificate, "leaf certificate (serial {}) is for [{}], not the requested {}",
                  tls::serial_hex(leaf), fmt::join(tls::uri_sans(leaf), ", "), requested.to_string());
  if (!tls::key_matches_certificate(leaf, key.get()))
    return errorf(ErrorKind::Certificate, "leaf certificate (serial {}) does not certify the key of our CSR",
                  tls::serial_hex(leaf));
  auto nb = tls::not_before(leaf);
  auto na = tls::not_after(leaf);
  if (!nb || !na) return errorf(ErrorKind::Certificate, "leaf certificate (serial {}) has no readable validity period", tls::serial_hex(leaf));
  tls::X509Chain intermediates;
  for (std::size_t i = 1; i < chain.size(); ++i) intermediates.push_back(bssl::UpRef(chain[i]));
  if (auto v = tls::verify_chain(leaf, intermediates, roots, std::max(now, *nb)); !v)
    return errorf(ErrorKind::Certificate, "chain of leaf {} (valid {} to {}) does not verify to the {} root(s) of the response: {}",
                  tls::serial_hex(leaf), utc(*nb), utc(*na), roots.size(), v.error().context);
  return tls::CertifiedKey{std::move(key), std::move(chain), std::move(roots)};
}

// ---- the client ---------------------------------------------------------------------------------------

IstioCaClient::IstioCaClient(asio::any_io_executor ex, IstioCaOptions options)
    : ex_(ex),
      options_(std::move(options)),
      server_name_(options_.server_name.empty() ? options_.host : options_.server_name),
      dial_done_(ex, asio::steady_timer::time_point::max()) {}

IstioCaClient::~IstioCaClient() {
  *alive_ = false;
  close();
}

void IstioCaClient::close() {
  if (session_) session_->shutdown();
  session_.reset();
}

asio::awaitable<Result<tls::CertifiedKey>> IstioCaClient::fetch(tls::SpiffeId id, std::chrono::seconds ttl) {
  auto alive = alive_;
  auto r = co_await fetch_once(std::move(id), ttl);
  if (!*alive) co_return make_error(ErrorKind::Cancelled, "CA client stopped");
  if (!r) {
    ++stats_.failures;
    Error e = std::move(r).error();
    e.context = fmt::format("CA {}:{}: {}", options_.host, options_.port, e.context);
    co_return e;  // kind and code (gRPC status, errno) kept
  }
  co_return r;
}

asio::awaitable<Result<std::shared_ptr<h2::Session>>> IstioCaClient::connection() {
  auto alive = alive_;
  if (session_ && session_->alive()) co_return session_;
  if (dialing_) {
    const auto generation = dial_generation_;
    while (dialing_ && generation == dial_generation_) {
      co_await dial_done_.async_wait(asio::as_tuple(asio::use_awaitable));
      if (!*alive) co_return make_error(ErrorKind::Cancelled, "CA client stopped");
    }
    if (session_ && session_->alive()) co_return session_;
    if (!last_dial_) co_return last_dial_.error();
    co_return make_error(ErrorKind::Closed, "the connection closed right after it was made");
  }
  if (session_) {
    session_->shutdown();
    session_.reset();
  }
  dialing_ = true;
  ++stats_.dials;
  auto finish = [&](Result<void> outcome) {
    dialing_ = false;
    ++dial_generation_;
    last_dial_ = std::move(outcome);
    dial_done_.cancel();
  };
  if (!options_.tls) {
    finish(make_error(ErrorKind::InvalidArgument, "no TLS roots configured (CA_ROOT_CA)"));
    co_return last_dial_.error();
  }
  asio::ip::tcp::resolver resolver(ex_);
  auto [ec, results] = co_await resolver.async_resolve(options_.host, std::to_string(options_.port),
                                                       asio::as_tuple(asio::use_awaitable));
  if (!*alive) co_return make_error(ErrorKind::Cancelled, "CA client stopped");
  if (ec || results.empty()) {
    finish(errorf(ErrorKind::Io, "resolve {}: {}", options_.host, ec ? ec.message() : "no addresses"));
    co_return last_dial_.error();
  }
  grpc::DialOptions dial;
  dial.connect_timeout = options_.connect_timeout;
  dial.settings.ping_interval = 30s;
  dial.settings.ping_timeout = 10s;
  auto session = co_await grpc::dial(results.begin()->endpoint(), options_.tls.get(), server_name_, dial);
  if (!*alive) co_return make_error(ErrorKind::Cancelled, "CA client stopped");
  if (!session) {
    finish(std::move(session).error());
    co_return last_dial_.error();
  }
  session_ = *session;
  finish(ok());
  spdlog::info("identity: connected to the CA at {}:{} ({})", options_.host, options_.port, session_->peer());
  co_return session_;
}

asio::awaitable<Result<tls::CertifiedKey>> IstioCaClient::fetch_once(tls::SpiffeId id, std::chrono::seconds ttl) {
  auto alive = alive_;
  auto key = tls::generate_p256_key();
  if (!key) co_return std::move(key).error();
  auto csr = tls::make_csr_pem(key->get(), id);
  if (!csr) co_return std::move(csr).error();
  auto md = grpc::control_plane_metadata(options_.token_path, options_.cluster_id, options_.headers);
  if (!md) co_return std::move(md).error();
  const auto request = build_certificate_request(std::move(*csr), id, ttl, options_.impersonate);

  auto session = co_await connection();
  if (!*alive) co_return make_error(ErrorKind::Cancelled, "CA client stopped");
  if (!session) co_return std::move(session).error();

  grpc::CallOptions call;
  call.authority = fmt::format("{}:{}", server_name_, options_.port);
  call.metadata = std::move(*md);
  call.timeout = options_.call_timeout;
  ++stats_.calls;
  auto response = co_await grpc::unary_message<istio::v1::auth::IstioCertificateResponse>(
      *session, std::string(kCreateCertificatePath), request, std::move(call));
  if (!*alive) co_return make_error(ErrorKind::Cancelled, "CA client stopped");
  if (!response) co_return std::move(response).error();
  auto checked = check_certificate_response(*response, std::move(*key), id, std::chrono::system_clock::now());
  if (!checked) co_return errorf(checked.error().kind, "CreateCertificate for {}: {}", id.to_string(), checked.error().context);
  co_return checked;
}

}  // namespace ambient::identity
