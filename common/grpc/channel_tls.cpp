#include "common/grpc/channel_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <iterator>

#include "common/net/tcp_stream.h"
#include "common/tls/pki.h"

namespace ambient::grpc {

namespace asio = boost::asio;

namespace {

constexpr std::uint8_t kAlpnH2Wire[] = {2, 'h', '2'};

Result<std::string> read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errorf(ErrorKind::NotFound, "{} {}: cannot open", what, path);
  std::string data(std::istreambuf_iterator<char>(in), {});
  if (in.bad()) return errorf(ErrorKind::Io, "{} {}: read failed", what, path);
  return data;
}

// "[::1]" → "::1"; an IP literal is verified against IP SANs, anything else against DNS SANs.
std::string_view strip_brackets(std::string_view name) {
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') return name.substr(1, name.size() - 2);
  return name;
}

bool is_ip_literal(std::string_view name) {
  const std::string s(name);
  std::uint8_t buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

asio::awaitable<Result<tls::TlsStream>> connect_and_handshake(bssl::UniquePtr<SSL> ssl, asio::ip::tcp::endpoint ep,
                                                              std::string server_name,
                                                              std::chrono::milliseconds timeout) {
  auto tcp = co_await net::connect(ep, timeout);
  if (!tcp) co_return std::move(tcp).error();
  tls::TlsStream stream(std::move(tcp->socket()), std::move(ssl));
  auto hs = co_await stream.handshake(timeout);
  if (!hs) {
    Error e = std::move(hs).error();
    const long verify = SSL_get_verify_result(stream.ssl());
    if (verify != X509_V_OK)
      e.context += fmt::format(" (certificate verify: {}; expected server name \"{}\")",
                               X509_verify_cert_error_string(verify), server_name);
    co_return e;
  }
  co_return stream;
}

}  // namespace

Result<ChannelTls> ChannelTls::create(const ChannelTlsOptions& options) {
  auto roots = tls::certificates_from_pem(options.roots_pem);
  if (!roots) return make_error(ErrorKind::InvalidArgument, "gRPC TLS roots: " + roots.error().context);
  if (options.client_chain_pem.empty() != options.client_key_pem.empty())
    return make_error(ErrorKind::InvalidArgument, "gRPC TLS client certificate and key go together");

  ERR_clear_error();
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return tls::ssl_error(ErrorKind::Internal, "SSL_CTX_new");
  if (!SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION))
    return tls::ssl_error(ErrorKind::Internal, "gRPC TLS protocol versions");
  // BoringSSL returns 0 on success here (unlike most of its API).
  if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnH2Wire, sizeof kAlpnH2Wire) != 0)
    return tls::ssl_error(ErrorKind::Internal, "gRPC TLS ALPN");
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);

  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());  // borrowed
  for (const auto& root : *roots)
    if (!X509_STORE_add_cert(store, root.get())) return tls::ssl_error(ErrorKind::InvalidArgument, "gRPC TLS roots");
  // Chain verification against the store; the purpose (serverAuth) is set by BoringSSL for clients.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);

  if (!options.client_chain_pem.empty()) {
    auto chain = tls::certificates_from_pem(options.client_chain_pem);
    if (!chain) return make_error(ErrorKind::InvalidArgument, "gRPC TLS client chain: " + chain.error().context);
    auto key = tls::private_key_from_pem(options.client_key_pem);
    if (!key) return make_error(ErrorKind::InvalidArgument, "gRPC TLS client key: " + key.error().context);
    if (!tls::key_matches_certificate(chain->front().get(), key->get()))
      return make_error(ErrorKind::InvalidArgument, "gRPC TLS client key does not match its certificate");
    if (!SSL_CTX_use_certificate(ctx.get(), chain->front().get()))
      return tls::ssl_error(ErrorKind::Certificate, "gRPC TLS client certificate");
    for (std::size_t i = 1; i < chain->size(); ++i)
      if (!SSL_CTX_add1_chain_cert(ctx.get(), (*chain)[i].get()))
        return tls::ssl_error(ErrorKind::Certificate, "gRPC TLS client chain");
    if (!SSL_CTX_use_PrivateKey(ctx.get(), key->get()))
      return tls::ssl_error(ErrorKind::Certificate, "gRPC TLS client key");
  }
  return ChannelTls(std::move(ctx));
}

Result<ChannelTls> ChannelTls::from_files(const std::string& roots_path, const std::string& client_chain_path,
                                          const std::string& client_key_path) {
  ChannelTlsOptions o;
  auto roots = read_file(roots_path, "gRPC TLS roots");
  if (!roots) return std::move(roots).error();
  o.roots_pem = std::move(*roots);
  if (!client_chain_path.empty()) {
    auto chain = read_file(client_chain_path, "gRPC TLS client chain");
    if (!chain) return std::move(chain).error();
    o.client_chain_pem = std::move(*chain);
  }
  if (!client_key_path.empty()) {
    auto key = read_file(client_key_path, "gRPC TLS client key");
    if (!key) return std::move(key).error();
    o.client_key_pem = std::move(*key);
  }
  return create(o);
}

Result<bssl::UniquePtr<SSL>> ChannelTls::new_ssl(std::string_view server_name) const {
  const std::string_view name = strip_brackets(server_name);
  if (name.empty()) return make_error(ErrorKind::InvalidArgument, "gRPC TLS: a server name to verify is required");
  ERR_clear_error();
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
  if (!ssl) return tls::ssl_error(ErrorKind::Internal, "SSL_new");
  SSL_set_connect_state(ssl.get());
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());  // borrowed
  const std::string name_z(name);
  if (is_ip_literal(name)) {
    if (!X509_VERIFY_PARAM_set1_ip_asc(param, name_z.c_str()))
      return tls::ssl_error(ErrorKind::InvalidArgument, fmt::format("gRPC TLS server IP {}", name));
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (!X509_VERIFY_PARAM_set1_host(param, name_z.data(), name_z.size()))
      return tls::ssl_error(ErrorKind::InvalidArgument, fmt::format("gRPC TLS server name {}", name));
    if (!SSL_set_tlsext_host_name(ssl.get(), name_z.c_str()))
      return tls::ssl_error(ErrorKind::InvalidArgument, fmt::format("gRPC TLS SNI {}", name));
  }
  return ssl;
}

asio::awaitable<Result<tls::TlsStream>> connect_tls(const ChannelTls& tls, asio::ip::tcp::endpoint endpoint,
                                                    std::string server_name, std::chrono::milliseconds timeout) {
  // Not a coroutine itself: the SSL is made now, so `tls` need not outlive the returned awaitable.
  auto ssl = tls.new_ssl(server_name);
  if (!ssl) {
    return [](Error e) -> asio::awaitable<Result<tls::TlsStream>> { co_return e; }(std::move(ssl).error());
  }
  return connect_and_handshake(std::move(*ssl), endpoint, std::move(server_name), timeout);
}

}  // namespace ambient::grpc
