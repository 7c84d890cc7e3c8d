// bench-hbone-throughput: bulk throughput of one tunnel on loopback, every mode in one process and one run,
// so the figures are ratios between modes measured under the same machine load (DESIGN.md section 9).
//
// Modes (the sender writes --bytes in --chunk writes, half-closes; the receiver reads and discards, checks
// the total, then half-closes back so both sides end cleanly):
//   tls    TlsStream -> TlsStream: the crypto floor every mTLS tunnel pays (TLS 1.3, AES-GCM, P-256 SPIFFE
//          certificates from the built-in CA; the same contexts ztunnel uses).
//   hbone  TlsStream + h2 client Session + one CONNECT stream -> h2 server Session, the handler discards.
//          The same TLS plus HTTP/2 framing, flow control and the session's buffers: what HBONE adds.
//   h2c    the hbone path over plain TCP: isolates the HTTP/2 layer's cost from the crypto (diagnostic).
//   tcp    TcpStream -> TcpStream: the loopback copy limit of this machine.
//
// Each mode gets a fresh pair of io_contexts: the client's runs on one thread, the server's on another, as
// two processes on two cores would. Measured per run:
//   wall   from just before the sender's first write to the receiver holding the last byte (steady_clock);
//   CPU    each thread's CPU time over that same window (CLOCK_THREAD_CPUTIME_ID of both threads, sampled
//          at both ends), so connection setup and teardown are excluded.
// Modes are interleaved (tls, hbone, h2c, tcp, tls, ...) --repeat times and medians are reported, so slow
// drifts of the machine (other jobs, thermal) hit every mode alike.
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <latch>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/base/config.h"
#include "common/h2/session.h"
#include "common/net/tcp_stream.h"
#include "common/tls/ca.h"
#include "common/tls/tls_context.h"
#include "common/tls/tls_stream.h"

namespace {

using namespace ambient;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

enum class Mode { Tls, Hbone, H2c, Tcp };

std::string_view name(Mode m) {
  switch (m) {
    case Mode::Tls: return "tls";
    case Mode::Hbone: return "hbone";
    case Mode::H2c: return "h2c";
    case Mode::Tcp: return "tcp";
  }
  return "?";
}

std::optional<Mode> parse_mode(std::string_view s) {
  for (Mode m : {Mode::Tls, Mode::Hbone, Mode::H2c, Mode::Tcp})
    if (s == name(m)) return m;
  return std::nullopt;
}

struct Config {
  std::uint64_t bytes = 0;
  std::size_t chunk = 0;     // sender's write size (the h2 stream is written in these chunks too)
  std::size_t read_buf = 0;  // receiver's read size
  bool verify = false;       // receiver compares every byte with the payload (costs CPU: off for timing)
  int repeat = 0;
  std::vector<Mode> modes;
  std::string out;
  std::chrono::milliseconds run_timeout{0};
  h2::Settings h2;  // ztunnel's defaults (settings.h) unless --h2-write-batch / --h2-stream-window say otherwise
};

// The TLS identities and contexts, built once and shared read-only by both threads (tls_context.h).
struct Pki {
  bssl::UniquePtr<SSL_CTX> client_ctx, server_ctx;
  std::string server_san;
};

Result<Pki> make_pki() {
  auto ca = tls::CertificateAuthority::create_self_signed("cluster.local", 24h);
  if (!ca) return std::move(ca).error();
  const tls::SpiffeId client_id{"cluster.local", "bench", "client"}, server_id{"cluster.local", "bench", "server"};
  auto ck = ca->issue(client_id, 24h);
  if (!ck) return std::move(ck).error();
  auto sk = ca->issue(server_id, 24h);
  if (!sk) return std::move(sk).error();
  auto cctx = tls::make_client_context(*ck);
  if (!cctx) return std::move(cctx).error();
  auto sctx = tls::make_server_context(*sk);
  if (!sctx) return std::move(sctx).error();
  return Pki{std::move(*cctx), std::move(*sctx), server_id.to_string()};
}

double cpu_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// What one run records. Each field is written by one thread and read by main after both joined.
struct Probe {
  clockid_t client_clock{}, server_clock{};
  Clock::time_point t_start{}, t_end{};
  double client_cpu_start = 0, server_cpu_start = 0, client_cpu_end = 0, server_cpu_end = 0;
  std::uint64_t received = 0;
  std::string cipher;  // negotiated suite and key exchange group, from the server's SSL
  std::string client_error, server_error;

  void start() {  // sender thread, just before the first write
    client_cpu_start = cpu_seconds(client_clock);
    server_cpu_start = cpu_seconds(server_clock);
    t_start = Clock::now();
  }
  void end() {  // receiver thread, when the last expected byte arrived
    t_end = Clock::now();
    server_cpu_end = cpu_seconds(server_clock);
    client_cpu_end = cpu_seconds(client_clock);
  }
};

struct Sample {
  Mode mode = Mode::Tls;
  double wall_s = 0, client_cpu_s = 0, server_cpu_s = 0;
  std::string cipher;  // "TLSv1.3 TLS_AES_128_GCM_SHA256 X25519"; empty without TLS
};

// Sender: --bytes in --chunk writes, then FIN / END_STREAM; waits for the receiver's half-close so
// nothing is torn down under data still in flight.
template <typename S>
asio::awaitable<Result<void>> send_all(S& s, const Config& cfg, std::span<const std::uint8_t> chunk, Probe& p) {
  p.start();
  for (std::uint64_t left = cfg.bytes; left > 0;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk.size()));
    auto w = co_await s.write_all(chunk.first(n));
    if (!w) co_return w;
    left -= n;
  }
  auto sh = co_await s.shutdown_write();
  if (!sh) co_return sh;
  std::uint8_t byte = 0;
  auto r = co_await s.read_some(std::span<std::uint8_t>(&byte, 1));
  if (!r) co_return std::move(r).error();
  if (*r != 0) co_return make_error(ErrorKind::Parse, "receiver sent data; expected only its half-close");
  co_return ok();
}

// Receiver: reads and discards to EOF, stamps the end when the last expected byte arrives, checks the total
// (and with --verify every byte: the sender repeats `chunk`).
template <typename S>
asio::awaitable<Result<void>> receive_all(S& s, const Config& cfg, std::span<const std::uint8_t> chunk, Probe& p) {
  std::vector<std::uint8_t> buf(cfg.read_buf);
  for (;;) {
    auto r = co_await s.read_some(buf);
    if (!r) co_return std::move(r).error();
    if (*r == 0) break;
    if (cfg.verify) {
      for (std::size_t i = 0; i < *r;) {
        const std::size_t at = static_cast<std::size_t>((p.received + i) % chunk.size());
        const std::size_t n = std::min(*r - i, chunk.size() - at);
        if (std::memcmp(buf.data() + i, chunk.data() + at, n) != 0)
          co_return errorf(ErrorKind::Parse, "payload mismatch within bytes [{}, {})", p.received + i, p.received + i + n);
        i += n;
      }
    }
    p.received += *r;
    if (p.received == cfg.bytes) p.end();
  }
  if (p.received != cfg.bytes)
    co_return errorf(ErrorKind::Parse, "received {} bytes, expected {}", p.received, cfg.bytes);
  co_return co_await s.shutdown_write();
}

std::string negotiated(SSL* ssl) {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
  const char* group = SSL_get_curve_name(SSL_get_curve_id(ssl));
  return fmt::format("{} {} {}", SSL_get_version(ssl), c ? SSL_CIPHER_get_name(c) : "?", group ? group : "?");
}

// ---- client side (client io_context) ----

asio::awaitable<Result<void>> run_client(Mode mode, tcp::endpoint ep, const Config& cfg, const Pki& pki,
                                         std::span<const std::uint8_t> chunk, Probe& p) {
  auto c = co_await net::connect(ep, 5s);
  if (!c) co_return std::move(c).error();
  if (mode == Mode::Tcp) co_return co_await send_all(*c, cfg, chunk, p);

  auto ex = co_await asio::this_coro::executor;
  std::unique_ptr<h2::Transport> transport;
  if (mode == Mode::H2c) {
    transport = h2::make_transport(std::move(*c));
  } else {
    auto ssl = tls::new_client_ssl(pki.client_ctx.get(), {pki.server_san});
    if (!ssl) co_return std::move(ssl).error();
    tls::TlsStream t(std::move(c->socket()), std::move(*ssl));
    auto hs = co_await t.handshake(5s);
    if (!hs) co_return hs;
    if (mode == Mode::Tls) co_return co_await send_all(t, cfg, chunk, p);
    transport = h2::make_transport(std::move(t));
  }

  auto session = h2::Session::client(ex, std::move(transport), cfg.h2, "bench-server");
  if (!session) co_return std::move(session).error();
  auto s = *session;
  asio::co_spawn(ex, [s]() -> asio::awaitable<void> { (void)co_await s->run(); }, asio::detached);
  auto stream = co_await s->connect("10.0.0.1:8080", {}, 5s);
  if (!stream) {
    s->terminate(0);
    co_return std::move(stream).error();
  }
  auto r = co_await send_all(**stream, cfg, chunk, p);
  s->shutdown();  // GOAWAY: the session ends once the stream has finished in both directions
  co_return r;
}

// ---- server side (server io_context) ----

asio::awaitable<Result<void>> run_server(Mode mode, tcp::acceptor& acceptor, const Config& cfg, const Pki& pki,
                                         std::span<const std::uint8_t> chunk, Probe& p) {
  auto c = co_await net::accept(acceptor);
  if (!c) co_return std::move(c).error();
  if (mode == Mode::Tcp) co_return co_await receive_all(*c, cfg, chunk, p);

  auto ex = co_await asio::this_coro::executor;
  std::unique_ptr<h2::Transport> transport;
  if (mode == Mode::H2c) {
    transport = h2::make_transport(std::move(*c));
  } else {
    auto ssl = tls::new_server_ssl(pki.server_ctx.get());
    if (!ssl) co_return std::move(ssl).error();
    tls::TlsStream t(std::move(c->socket()), std::move(*ssl));
    auto hs = co_await t.handshake(5s);
    if (!hs) co_return hs;
    p.cipher = negotiated(t.ssl());
    if (mode == Mode::Tls) co_return co_await receive_all(t, cfg, chunk, p);
    transport = h2::make_transport(std::move(t));
  }

  // The handler may outlive this frame on error paths: its result lives in shared state. cfg, chunk and p
  // outlive the io_context's run.
  auto handler_error = std::make_shared<std::optional<Error>>();
  auto handler = [handler_error, &cfg, chunk, &p](std::shared_ptr<h2::Stream> st) -> asio::awaitable<void> {
    if (auto r = st->respond(200); !r) {
      *handler_error = r.error();
      co_return;
    }
    if (auto r = co_await receive_all(*st, cfg, chunk, p); !r) *handler_error = std::move(r).error();
  };
  auto session = h2::Session::server(ex, std::move(transport), cfg.h2, handler, "bench-client");
  if (!session) co_return std::move(session).error();
  auto r = co_await (*session)->run();
  if (*handler_error) co_return **handler_error;
  if (p.received != cfg.bytes) co_return r ? errorf(ErrorKind::Closed, "session ended before the stream") : r;
  co_return ok();  // the transfer completed; how the client's teardown looked does not matter here
}

// One run of one mode: fresh io_contexts, two threads, a watchdog per side.
Result<Sample> run_once(Mode mode, const Config& cfg, const Pki& pki, std::span<const std::uint8_t> chunk) {
  asio::io_context server_io(1), client_io(1);
  auto acceptor = net::listen(server_io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0});
  if (!acceptor) return std::move(acceptor).error();
  const tcp::endpoint ep = acceptor->local_endpoint();
  Probe p;

  // Each side's watchdog stops its io_context if the run hangs; the side's coroutine cancels it when done.
  asio::steady_timer server_dog(server_io, cfg.run_timeout), client_dog(client_io, cfg.run_timeout);
  server_dog.async_wait([&](boost::system::error_code ec) {
    if (!ec) {
      p.server_error = "timed out";
      server_io.stop();
    }
  });
  client_dog.async_wait([&](boost::system::error_code ec) {
    if (!ec) {
      p.client_error = "timed out";
      client_io.stop();
    }
  });
  asio::co_spawn(server_io, [&]() -> asio::awaitable<void> {
        auto r = co_await run_server(mode, *acceptor, cfg, pki, chunk, p);
        if (!r) p.server_error = r.error().message();
        boost::system::error_code ignored;
        acceptor->close(ignored);
        server_dog.cancel();
      }, asio::detached);
  asio::co_spawn(client_io, [&]() -> asio::awaitable<void> {
        auto r = co_await run_client(mode, ep, cfg, pki, chunk, p);
        if (!r) p.client_error = r.error().message();
        client_dog.cancel();
      }, asio::detached);

  // Threads wait on `go` until both CPU clocks are known, so either side may read the other's clock.
  std::latch go(1);
  std::thread server_thread([&] { go.wait(); server_io.run(); });
  std::thread client_thread([&] { go.wait(); client_io.run(); });
  pthread_getcpuclockid(server_thread.native_handle(), &p.server_clock);
  pthread_getcpuclockid(client_thread.native_handle(), &p.client_clock);
  go.count_down();
  client_thread.join();
  server_thread.join();

  if (!p.server_error.empty() || !p.client_error.empty())
    return errorf(ErrorKind::Internal, "{} run failed: server: {}; client: {}", name(mode),
                  p.server_error.empty() ? "ok" : p.server_error, p.client_error.empty() ? "ok" : p.client_error);
  if (p.t_end <= p.t_start) return errorf(ErrorKind::Internal, "{} run: no end time recorded", name(mode));
  Sample s;
  s.mode = mode;
  s.wall_s = std::chrono::duration<double>(p.t_end - p.t_start).count();
  s.client_cpu_s = p.client_cpu_end - p.client_cpu_start;
  s.server_cpu_s = p.server_cpu_end - p.server_cpu_start;
  s.cipher = p.cipher;
  return s;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Summary {
  std::vector<double> gbps, client_cpu, server_cpu;
  std::string cipher;
  double med_gbps() const { return median(gbps); }
  double med_client() const { return median(client_cpu); }
  double med_server() const { return median(server_cpu); }
};

std::string json_list(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{:.4f}", i ? ", " : "", v[i]);
  return s + "]";
}

Result<Config> parse_args(int argc, char** argv) {
  config::Options o;
  o.add({"bytes", "", "1Gi", "bytes sent per run (1Gi, 256Mi, ...)"});
  o.add({"chunk", "", "256Ki", "sender's write size"});
  o.add({"read-buffer", "", "256Ki", "receiver's read size"});
  o.add({"repeat", "", "3", "runs per mode, interleaved; medians are reported"});
  o.add({"modes", "", "tls,hbone,h2c,tcp", "comma-separated subset of tls,hbone,h2c,tcp"});
  o.add({"out", "", "", "write results as JSON to this path"});
  o.add({"timeout", "", "120s", "a run taking longer fails"});
  o.add({"verify", "", "false", "receiver checks every byte (slower: for correctness, not timing)", true});
  o.add({"h2-write-batch", "", "", "h2 Settings::write_batch (default: settings.h)"});
  o.add({"h2-stream-window", "", "", "h2 Settings::stream_window (default: settings.h)"});
  AMBIENT_TRY(o.parse(argc, argv));
  if (o.help_requested()) {
    fmt::print("{}", o.usage("bench-hbone-throughput"));
    std::exit(0);
  }
  Config c;
  auto bytes = o.size("bytes");
  if (!bytes) return std::move(bytes).error();
  auto chunk = o.size("chunk");
  if (!chunk) return std::move(chunk).error();
  auto rb = o.size("read-buffer");
  if (!rb) return std::move(rb).error();
  auto rep = o.integer("repeat", 1, 1000);
  if (!rep) return std::move(rep).error();
  auto to = o.duration("timeout");
  if (!to) return std::move(to).error();
  if (*bytes == 0 || *chunk == 0 || *rb == 0 || *chunk > (1u << 30) || *rb > (1u << 30))
    return errorf(ErrorKind::InvalidArgument, "--bytes, --chunk and --read-buffer must be in (0, 1Gi]");
  c.bytes = *bytes;
  c.chunk = static_cast<std::size_t>(*chunk);
  c.read_buf = static_cast<std::size_t>(*rb);
  c.repeat = static_cast<int>(*rep);
  c.run_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*to);
  c.out = o.get("out");
  auto verify = o.boolean("verify");
  if (!verify) return std::move(verify).error();
  c.verify = *verify;
  if (!o.get("h2-write-batch").empty()) {
    auto v = o.size("h2-write-batch");
    if (!v || *v == 0 || *v > (64u << 20)) return errorf(ErrorKind::InvalidArgument, "--h2-write-batch: want (0, 64Mi]");
    c.h2.write_batch = static_cast<std::uint32_t>(*v);
  }
  if (!o.get("h2-stream-window").empty()) {
    auto v = o.size("h2-stream-window");
    if (!v || *v < 65535 || *v > 0x7fffffff)
      return errorf(ErrorKind::InvalidArgument, "--h2-stream-window: want [65535, 2^31-1]");
    c.h2.stream_window = static_cast<std::uint32_t>(*v);
  }
  std::string_view list = o.get("modes");
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto item = list.substr(0, comma);
    auto m = parse_mode(item);
    if (!m) return errorf(ErrorKind::InvalidArgument, "--modes: unknown mode '{}'", item);
    c.modes.push_back(*m);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  if (c.modes.empty()) return errorf(ErrorKind::InvalidArgument, "--modes is empty");
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  auto cfg = parse_args(argc, argv);
  if (!cfg) {
    fmt::print(stderr, "bench-hbone-throughput: {}\n", cfg.error().message());
    return 2;
  }
  auto pki = make_pki();
  if (!pki) {
    fmt::print(stderr, "bench-hbone-throughput: certificates: {}\n", pki.error().message());
    return 1;
  }
  // Non-constant payload, so nothing along the way could get a free ride from zero pages.
  std::vector<std::uint8_t> chunk(cfg->chunk);
  std::uint32_t x = 2463534242u;
  for (auto& b : chunk) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    b = static_cast<std::uint8_t>(x);
  }

  std::map<Mode, Summary> sum;
  for (int rep = 0; rep < cfg->repeat; ++rep) {
    for (Mode m : cfg->modes) {
      auto s = run_once(m, *cfg, *pki, chunk);
      if (!s) {
        fmt::print(stderr, "bench-hbone-throughput: {}\n", s.error().message());
        return 1;
      }
      const double gbps = static_cast<double>(cfg->bytes) * 8 / s->wall_s / 1e9;
      fmt::print(stderr, "# run {} {:<5} {:7.2f} Gbps  wall {:.3f} s  cpu client {:.3f} s server {:.3f} s\n", rep + 1,
                 name(m), gbps, s->wall_s, s->client_cpu_s, s->server_cpu_s);
      auto& su = sum[m];
      su.gbps.push_back(gbps);
      su.client_cpu.push_back(s->client_cpu_s);
      su.server_cpu.push_back(s->server_cpu_s);
      if (su.cipher.empty()) su.cipher = s->cipher;
    }
  }

  const double gib = static_cast<double>(cfg->bytes) / double(1u << 30);
  fmt::print("bytes per run: {} ({:.2f} GiB), chunk {} B, read buffer {} B, runs per mode: {} (median shown){}\n",
             cfg->bytes, gib, cfg->chunk, cfg->read_buf, cfg->repeat, cfg->verify ? ", every byte verified" : "");
  fmt::print("{:<6} {:>8} {:>8} {:>8} {:>13} {:>13} {:>11}\n", "mode", "Gbps", "min", "max", "client_cpu_s",
             "server_cpu_s", "cpu_s/GiB");
  for (Mode m : cfg->modes) {
    const auto& su = sum[m];
    if (su.gbps.empty()) continue;
    fmt::print("{:<6} {:>8.2f} {:>8.2f} {:>8.2f} {:>13.3f} {:>13.3f} {:>11.3f}\n", name(m), su.med_gbps(),
               *std::min_element(su.gbps.begin(), su.gbps.end()), *std::max_element(su.gbps.begin(), su.gbps.end()),
               su.med_client(), su.med_server(), (su.med_client() + su.med_server()) / gib);
  }
  for (Mode m : cfg->modes)
    if (!sum[m].cipher.empty()) fmt::print("{} negotiated: {}\n", name(m), sum[m].cipher);
  // Ratios of medians against plain TLS (throughput: higher is better; CPU: lower is better).
  std::vector<std::pair<std::string, double>> ratios;
  auto have = [&](Mode m) { return sum.count(m) && !sum[m].gbps.empty(); };
  auto ratio = [&](Mode a, Mode b) {
    const std::string key = fmt::format("{}_vs_{}", name(a), name(b));
    ratios.emplace_back(key + "_gbps", sum[a].med_gbps() / sum[b].med_gbps());
    ratios.emplace_back(key + "_cpu", (sum[a].med_client() + sum[a].med_server()) /
                                          (sum[b].med_client() + sum[b].med_server()));
  };
  if (have(Mode::Hbone) && have(Mode::Tls)) ratio(Mode::Hbone, Mode::Tls);
  if (have(Mode::Hbone) && have(Mode::Tcp)) ratio(Mode::Hbone, Mode::Tcp);
  if (have(Mode::Tls) && have(Mode::Tcp)) ratio(Mode::Tls, Mode::Tcp);
  if (have(Mode::H2c) && have(Mode::Tcp)) ratio(Mode::H2c, Mode::Tcp);
  for (const auto& [k, v] : ratios) fmt::print("ratio {:<22} {:.3f}\n", k, v);

  if (!cfg->out.empty()) {
    std::string j = "{\n";
    j += fmt::format("  \"bytes\": {},\n  \"chunk\": {},\n  \"read_buffer\": {},\n  \"repeat\": {},\n", cfg->bytes,
                     cfg->chunk, cfg->read_buf, cfg->repeat);
    j += "  \"modes\": {\n";
    bool first = true;
    for (Mode m : cfg->modes) {
      if (!have(m)) continue;
      const auto& su = sum[m];
      j += fmt::format(
          "{}    \"{}\": {{\"gbps\": {:.4f}, \"client_cpu_s\": {:.4f}, \"server_cpu_s\": {:.4f}, "
          "\"runs_gbps\": {}, \"runs_client_cpu_s\": {}, \"runs_server_cpu_s\": {}, \"tls\": \"{}\"}}",
          first ? "" : ",\n", name(m), su.med_gbps(), su.med_client(), su.med_server(), json_list(su.gbps),
          json_list(su.client_cpu), json_list(su.server_cpu), su.cipher);
      first = false;
    }
    j += "\n  },\n  \"ratios\": {";
    for (std::size_t i = 0; i < ratios.size(); ++i)
      j += fmt::format("{}\"{}\": {:.4f}", i ? ", " : "", ratios[i].first, ratios[i].second);
    j += "}\n}\n";
    std::ofstream f(cfg->out);
    f << j;
    if (!f) {
      fmt::print(stderr, "bench-hbone-throughput: cannot write {}\n", cfg->out);
      return 1;
    }
  }
  return 0;
}
