// hbone-demo: the foundation's end-to-end demo, two processes talking HBONE (HTTP/2 CONNECT inside mutual
// TLS 1.3 with SPIFFE identities), until the ztunnel issue replaces it with the embedded-default ztunnel.
//
//   hbone-demo ca     --out DIR                  a self-signed root in istiod's cacerts layout
//   hbone-demo server --cacerts DIR ...          inbound side: HBONE listener + a TCP echo "app"
//   hbone-demo client --cacerts DIR ...          outbound side: tunnels to the app, verifies every byte
//
// Both sides get their workload certificate from the CA loaded from DIR (the CA-from-files mode a user
// also needs to interoperate with any HBONE peer that trusts the same root).
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include "common/base/config.h"
#include "common/base/log.h"
#include "common/hbone/tunnel.h"
#include "common/net/copy.h"
#include "common/net/endpoint.h"
#include "common/net/tcp_stream.h"
#include "common/tls/ca.h"
#include "common/tls/pki.h"
#include "common/tls/tls_context.h"

namespace asio = boost::asio;
using namespace ambient;
using namespace std::chrono_literals;

namespace {

Result<asio::ip::tcp::endpoint> parse_endpoint(const std::string& text) { return net::parse_endpoint(text); }

std::string human(std::uint64_t bytes) {
  if (bytes >= (1u << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  if (bytes >= (1u << 10)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / (1 << 10));
  return fmt::format("{} B", bytes);
}

template <typename T>
T or_exit(Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "hbone-demo: %s: %s\n", what, r.error().message().c_str());
    std::exit(2);
  }
  return std::move(r).value();
}

Result<tls::CertifiedKey> workload_cert(const std::string& cacerts, const std::string& identity) {
  auto ca = tls::CertificateAuthority::load_cacerts_dir(cacerts);
  if (!ca) return std::move(ca).error();
  auto id = tls::parse_spiffe(identity);
  if (!id) return std::move(id).error();
  return ca->issue(*id, std::chrono::hours(24));
}

// ---- ca ---------------------------------------------------------------------------------------------------

int run_ca(const config::Options& o) {
  const std::string dir = o.get("out");
  std::filesystem::create_directories(dir);
  auto key = or_exit(tls::generate_p256_key(), "root key");
  tls::CertificateSpec spec;
  spec.organization = o.get("trust-domain");
  spec.is_ca = true;
  spec.not_before = std::chrono::system_clock::now() - 1min;
  spec.not_after = std::chrono::system_clock::now() + std::chrono::hours(24 * 365);
  auto root = or_exit(tls::sign_certificate(spec, key.get(), nullptr, nullptr), "root certificate");
  auto cert_pem = or_exit(tls::certificate_to_pem(root.get()), "root PEM");
  auto key_pem = or_exit(tls::private_key_to_pem(key.get()), "key PEM");
  std::ofstream(dir + "/ca-cert.pem") << cert_pem;
  std::ofstream(dir + "/root-cert.pem") << cert_pem;
  std::ofstream(dir + "/ca-key.pem") << key_pem;
  std::filesystem::permissions(dir + "/ca-key.pem", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::printf("wrote a self-signed P-256 root for trust domain %s to %s (ca-cert.pem, ca-key.pem, root-cert.pem)\n",
              spec.organization.c_str(), dir.c_str());
  return 0;
}

// ---- server -----------------------------------------------------------------------------------------------

asio::awaitable<void> echo_app(asio::ip::tcp::acceptor acceptor) {
  for (;;) {
    auto c = co_await net::accept(acceptor);
    if (!c) co_return;
    asio::co_spawn(acceptor.get_executor(), [s = std::move(*c)]() mutable -> asio::awaitable<void> {
          std::vector<std::uint8_t> buf(64 << 10);
          for (;;) {
            auto n = co_await s.read_some(buf);
            if (!n || *n == 0) break;
            if (!co_await s.write_all(std::span<const std::uint8_t>(buf.data(), *n))) co_return;
          }
          (void)co_await s.shutdown_write();
        }, asio::detached);
  }
}

// One inbound tunnel: connect to the CONNECT authority (loopback only in this demo), 200, copy both ways.
asio::awaitable<void> inbound_stream(std::shared_ptr<const hbone::PeerInfo> peer, std::shared_ptr<h2::Stream> stream) {
  const std::string authority(h2::find_header(stream->request_headers(), ":authority").value_or(""));
  const std::string method(h2::find_header(stream->request_headers(), ":method").value_or(""));
  auto target = parse_endpoint(authority);
  if (method != "CONNECT" || !target) {
    spdlog::warn("inbound from {} ({}): refused {} {} with 400", peer->identity.to_string(), peer->address, method, authority);
    (void)stream->respond(400, {}, true);
    co_return;
  }
  if (!target->address().is_loopback()) {
    spdlog::warn("inbound from {}: {} is not a loopback address (demo only forwards to this machine): 503",
                 peer->identity.to_string(), authority);
    (void)stream->respond(503, {}, true);
    co_return;
  }
  auto app = co_await net::connect(*target, 5s);
  if (!app) {
    spdlog::warn("inbound from {}: upstream {}: {}: 503", peer->identity.to_string(), authority, app.error());
    (void)stream->respond(503, {}, true);
    co_return;
  }
  if (!stream->respond(200)) co_return;
  const auto started = std::chrono::steady_clock::now();
  net::CopyStats stats;
  auto r = co_await net::copy_bidirectional(*stream, *app, stats);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("inbound tunnel complete: src.identity={} src.addr={} dst.hbone_addr={} bytes_recv={} bytes_sent={} "
               "duration={:.0f}ms{}",
               peer->identity.to_string(), peer->address, authority, stats.a_to_b.bytes, stats.b_to_a.bytes, ms,
               r ? "" : " error=" + r.error().message());
}

int run_server(const config::Options& o) {
  auto listen_ep = or_exit(parse_endpoint(o.get("listen")), "--listen");
  auto app_ep = or_exit(parse_endpoint(o.get("app")), "--app");
  auto cert = or_exit(workload_cert(o.get("cacerts"), o.get("identity")), "workload certificate");
  auto ctx = or_exit(tls::make_server_context(cert), "TLS server context");
  asio::io_context io(1);
  auto acceptor = or_exit(net::listen(io.get_executor(), listen_ep), "HBONE listener");
  auto app = or_exit(net::listen(io.get_executor(), app_ep), "app listener");
  spdlog::info("HBONE server {} listening on {} (mTLS 1.3, ALPN h2); app echo on {}", o.get("identity"),
               o.get("listen"), o.get("app"));
  asio::co_spawn(io, echo_app(std::move(app)), asio::detached);
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        for (;;) {
          auto c = co_await net::accept(acceptor);
          if (!c) co_return;
          asio::co_spawn(io, [&, c = std::move(*c)]() mutable -> asio::awaitable<void> {
                auto r = co_await hbone::serve_connection(std::move(c), ctx.get(), inbound_stream);
                if (!r && r.error().kind != ErrorKind::Closed) spdlog::info("HBONE connection refused or failed: {}", r.error());
              }, asio::detached);
        }
      }, asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) { io.stop(); });
  std::printf("ready\n");
  std::fflush(stdout);
  io.run();
  spdlog::info("HBONE server stopped");
  return 0;
}

// ---- client -----------------------------------------------------------------------------------------------

std::vector<std::uint8_t> pattern(std::size_t n, std::uint32_t seed) {
  std::vector<std::uint8_t> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    b = static_cast<std::uint8_t>(x);
  }
  return v;
}

int run_client(const config::Options& o) {
  auto server_ep = or_exit(parse_endpoint(o.get("connect")), "--connect");
  auto cert = or_exit(workload_cert(o.get("cacerts"), o.get("identity")), "workload certificate");
  auto ctx = or_exit(tls::make_client_context(cert), "TLS client context");
  std::vector<std::uint64_t> sizes;
  std::string list = o.get("sizes");
  for (std::size_t pos = 0; pos <= list.size();) {
    auto comma = list.find(',', pos);
    auto item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    sizes.push_back(or_exit(config::parse_size(item), "--sizes"));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  asio::io_context io(1);
  int failures = 0;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        std::vector<std::string> sans{o.get("server-identity")};
        auto session = co_await hbone::dial(server_ep, ctx.get(), sans);
        if (!session) {
          std::printf("HBONE connection to %s failed: %s\n", o.get("connect").c_str(), session.error().message().c_str());
          ++failures;
          co_return;
        }
        std::printf("HBONE connection %s -> %s established: TLS 1.3, ALPN h2, mutual SPIFFE identities\n",
                    o.get("identity").c_str(), o.get("server-identity").c_str());
        std::vector<std::vector<std::uint8_t>> payloads;
        for (std::size_t i = 0; i < sizes.size(); ++i) payloads.push_back(pattern(sizes[i], static_cast<std::uint32_t>(i + 1)));
        int remaining = static_cast<int>(sizes.size());
        asio::steady_timer done(io, asio::steady_timer::time_point::max());
        for (std::size_t i = 0; i < sizes.size(); ++i) {
          asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
                using namespace asio::experimental::awaitable_operators;
                const auto size = sizes[i];
                const auto& data = payloads[i];
                const auto started = std::chrono::steady_clock::now();
                auto st = co_await (*session)->connect(o.get("target"), {}, 10s);
                if (!st) {
                  std::printf("  tunnel %zu: CONNECT %s failed: %s\n", i + 1, o.get("target").c_str(), st.error().message().c_str());
                  ++failures;
                } else {
                  std::uint64_t received = 0;
                  bool same = true;
                  auto writer = [&]() -> asio::awaitable<void> {
                    for (std::size_t off = 0; off < data.size(); off += 256 << 10)
                      if (!co_await (*st)->write_all(std::span<const std::uint8_t>(data).subspan(off, std::min<std::size_t>(256 << 10, data.size() - off))))
                        co_return;
                    (void)co_await (*st)->shutdown_write();
                  };
                  auto reader = [&]() -> asio::awaitable<void> {
                    std::vector<std::uint8_t> buf(64 << 10);
                    for (;;) {
                      auto n = co_await (*st)->read_some(buf);
                      if (!n || *n == 0) co_return;
                      if (received + *n > data.size() || std::memcmp(buf.data(), data.data() + received, *n) != 0) same = false;
                      received += *n;
                    }
                  };
                  co_await (writer() && reader());
                  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
                  const bool good = same && received == size;
                  if (!good) ++failures;
                  std::printf("  tunnel %zu: CONNECT %s -> 200, sent %s, echoed %s, %s in %.0f ms (%.2f Gbit/s each way)\n",
                              i + 1, o.get("target").c_str(), human(size).c_str(), human(received).c_str(),
                              good ? "byte-exact" : "MISMATCH", secs * 1000,
                              secs > 0 ? static_cast<double>(size) * 8 / secs / 1e9 : 0.0);
                }
                if (--remaining == 0) done.cancel();
              }, asio::detached);
        }
        co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
        std::printf("HBONE connection carried %zu tunnels: %s written, %s read on the wire (TLS records + HTTP/2 frames)\n",
                    sizes.size(), human((*session)->bytes_written()).c_str(), human((*session)->bytes_read()).c_str());
        (*session)->shutdown();
      }, asio::detached);
  io.run();
  std::printf("%s\n", failures == 0 ? "RESULT: ok, every tunnel byte-exact" : "RESULT: FAILED");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (std::string(argv[1]) != "ca" && std::string(argv[1]) != "server" && std::string(argv[1]) != "client")) {
    std::fprintf(stderr, "usage: hbone-demo ca|server|client [flags]   (hbone-demo <mode> --help for flags)\n");
    return 2;
  }
  const std::string mode = argv[1];
  config::Options o;
  o.add({"log-level", "LOG_LEVEL", "info", "trace|debug|info|warn|error"});
  if (mode == "ca") {
    o.add({"out", "", "", "directory for ca-cert.pem, ca-key.pem, root-cert.pem"})
        .add({"trust-domain", "TRUST_DOMAIN", "cluster.local", "organization of the root"});
  } else {
    o.add({"cacerts", "", "", "directory with ca-cert.pem and ca-key.pem (istiod's cacerts layout)"});
    if (mode == "server") {
      o.add({"listen", "", "127.0.0.1:15008", "HBONE listener"})
          .add({"app", "", "127.0.0.1:18080", "the TCP echo app the tunnels lead to"})
          .add({"identity", "", "spiffe://cluster.local/ns/demo/sa/server", "this side's SPIFFE identity"});
    } else {
      o.add({"connect", "", "127.0.0.1:15008", "HBONE server address"})
          .add({"identity", "", "spiffe://cluster.local/ns/demo/sa/client", "this side's SPIFFE identity"})
          .add({"server-identity", "", "spiffe://cluster.local/ns/demo/sa/server", "the identity the server must hold"})
          .add({"target", "", "127.0.0.1:18080", "CONNECT authority (the app behind the server)"})
          .add({"sizes", "", "1Ki,1Mi,64Mi", "one concurrent tunnel per size"});
    }
  }
  if (auto r = o.parse(argc - 1, argv + 1); !r) {
    std::fprintf(stderr, "hbone-demo %s: %s\n", mode.c_str(), r.error().message().c_str());
    return 2;
  }
  if (o.help_requested()) {
    std::printf("%s", o.usage("hbone-demo " + mode).c_str());
    return 0;
  }
  if (auto r = log::init(o.get("log-level")); !r) {
    std::fprintf(stderr, "hbone-demo: %s\n", r.error().message().c_str());
    return 2;
  }
  const char* required = mode == "ca" ? "out" : "cacerts";
  if (o.get(required).empty()) {
    std::fprintf(stderr, "hbone-demo %s: --%s is required\n", mode.c_str(), required);
    return 2;
  }
  if (mode == "ca") return run_ca(o);
  if (mode == "server") return run_server(o);
  return run_client(o);
}
