#include "cni/kube/kube_tls.h"

#include <fstream>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/tls/pki.h"

namespace ambient::cni::kube {

namespace asio = boost::asio;

namespace {

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

Result<std::string> read_ca_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errorf(ErrorKind::InvalidArgument, "API server CA file {}: cannot open", path);
  std::string pem(kMaxCaFileBytes + 1, '\0');
  in.read(pem.data(), static_cast<std::streamsize>(pem.size()));
  pem.resize(static_cast<std::size_t>(in.gcount()));
  if (pem.size() > kMaxCaFileBytes) {
    return errorf(ErrorKind::InvalidArgument, "API server CA file {}: larger than {} bytes", path, kMaxCaFileBytes);
  }
  return pem;
}

// Why the handshake failed, in words: the chain verification result when verification ran and failed,
// else BoringSSL's error queue.
std::string handshake_failure(SSL* ssl, int ret) {
  const long verify = SSL_get_verify_result(ssl);
  std::string lib = tls::drain_ssl_errors();
  if (verify != X509_V_OK) {
    return fmt::format("server certificate not accepted: {} ({})", X509_verify_cert_error_string(verify), lib);
  }
  if (!lib.empty()) return lib;
  const int err = SSL_get_error(ssl, ret);
  if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) return "connection closed during the handshake";
  return fmt::format("SSL error {}", err);
}

}  // namespace

Result<bssl::UniquePtr<SSL_CTX>> make_api_client_context(const std::string& ca_file) {
  auto pem = read_ca_file(ca_file);
  if (!pem) return std::move(pem).error();
  auto roots = tls::certificates_from_pem(*pem);
  if (!roots) {
    return errorf(ErrorKind::InvalidArgument, "API server CA file {}: {}", ca_file, roots.error().context);
  }
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return tls::ssl_error(ErrorKind::Internal, "SSL_CTX_new");
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1) {
    return tls::ssl_error(ErrorKind::Internal, "SSL_CTX_set_{min,max}_proto_version");
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  for (const auto& root : *roots) {
    if (X509_STORE_add_cert(store, root.get()) != 1) {
      return tls::ssl_error(ErrorKind::InvalidArgument, fmt::format("API server CA file {}: X509_STORE_add_cert", ca_file));
    }
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnHttp11, sizeof kAlpnHttp11) != 0) {  // 0 is success here
    return tls::ssl_error(ErrorKind::Internal, "SSL_CTX_set_alpn_protos");
  }
  return ctx;
}

Result<bssl::UniquePtr<SSL>> new_api_client_ssl(SSL_CTX* ctx, const std::string& verified_name) {
  if (verified_name.empty()) return errorf(ErrorKind::InvalidArgument, "API server TLS: no name to verify");
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx));
  if (!ssl) return tls::ssl_error(ErrorKind::Internal, "SSL_new");
  SSL_set_connect_state(ssl.get());
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(verified_name, ec);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (!ec) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, ip.to_string().c_str()) != 1) {
      return tls::ssl_error(ErrorKind::InvalidArgument, fmt::format("API server TLS: IP {}", verified_name));
    }
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl.get(), verified_name.c_str()) != 1 ||
        SSL_set_tlsext_host_name(ssl.get(), verified_name.c_str()) != 1) {
      return tls::ssl_error(ErrorKind::InvalidArgument, fmt::format("API server TLS: name {}", verified_name));
    }
  }
  return ssl;
}

asio::awaitable<Result<void>> run_handshake(tls::TlsStream& stream, std::chrono::milliseconds timeout,
                                            std::string peer) {
  asio::steady_timer deadline(stream.get_executor());
  bool timed_out = false;
  deadline.expires_after(timeout);
  // The frame owns the timer; when it is destroyed the handler runs with an error and touches nothing.
  deadline.async_wait([&stream, &timed_out](boost::system::error_code ec) {
    if (ec) return;
    timed_out = true;
    boost::system::error_code ignored;
    stream.socket().cancel(ignored);
  });
  SSL* ssl = stream.ssl();
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl);
    if (r == 1) break;
    const int err = SSL_get_error(ssl, r);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
      std::string why = handshake_failure(ssl, r);
      stream.close();
      co_return errorf(ErrorKind::TlsHandshake, "TLS handshake with {}: {}", peer, why);
    }
    const auto wait = err == SSL_ERROR_WANT_WRITE ? asio::ip::tcp::socket::wait_write : asio::ip::tcp::socket::wait_read;
    auto [ec] = co_await stream.socket().async_wait(wait, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      stream.close();
      if (timed_out) co_return errorf(ErrorKind::Timeout, "TLS handshake with {}: no answer within {} ms", peer, timeout.count());
      if (ec == asio::error::operation_aborted) co_return errorf(ErrorKind::Cancelled, "TLS handshake with {}: cancelled", peer);
      co_return errorf(ErrorKind::Io, "TLS handshake with {}: {}", peer, ec.message());
    }
  }
  deadline.cancel();
  co_return ok();
}

}  // namespace ambient::cni::kube
