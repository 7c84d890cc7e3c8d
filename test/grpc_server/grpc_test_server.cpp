// grpc-test-server: a real grpc++ server (service ambient.test.Echo, see echo.proto) in its own process,
// used to test our own gRPC client (common/grpc) against grpc++'s HTTP/2 and gRPC behaviour.
// It links grpc++ and therefore OpenSSL 3: never link it, or anything from here, beside BoringSSL.
//
//   grpc-test-server --listen 127.0.0.1:0 [--tls-cert PEM --tls-key PEM [--client-ca PEM]]
//                    [--require-token TOKEN]
//
// stdout: exactly one line "listening on <ip>:<port>" once serving; stderr: one log line per call.
// SIGTERM / SIGINT: graceful shutdown (1 s grace for calls in flight), exit code 0.
#include "test/grpc_server/echo.grpc.pb.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace {

using namespace std::chrono_literals;
using ambient::test::EchoReply;
using ambient::test::EchoRequest;
using Clock = std::chrono::system_clock;

struct Options {
  std::string listen = "127.0.0.1:0";  // host:port to bind; port 0 picks a free port
  std::string tls_cert;                // server certificate chain (PEM); empty: plaintext h2c
  std::string tls_key;                 // server private key (PEM)
  std::string client_ca;               // if set: require and verify client certificates against it
  std::optional<std::string> token;    // if set: every call needs "authorization: Bearer <token>"
};

void usage(std::FILE* f) {
  std::fputs(
      "usage: grpc-test-server [--listen HOST:PORT] [--tls-cert PEM --tls-key PEM [--client-ca PEM]]\n"
      "                        [--require-token TOKEN]\n"
      "  --listen HOST:PORT     address to bind (default 127.0.0.1:0; port 0 = any free port)\n"
      "  --tls-cert/--tls-key   serve TLS (ALPN h2) with this chain and key; else plaintext h2c\n"
      "  --client-ca PEM        require client certificates signed by this CA (mTLS)\n"
      "  --require-token TOKEN  reject calls without 'authorization: Bearer TOKEN' (UNAUTHENTICATED)\n",
      f);
}

std::optional<Options> parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= argc) return false;
      dst = argv[++i];
      return true;
    };
    bool ok = true;
    if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--listen") {
      ok = value(o.listen);
    } else if (a == "--tls-cert") {
      ok = value(o.tls_cert);
    } else if (a == "--tls-key") {
      ok = value(o.tls_key);
    } else if (a == "--client-ca") {
      ok = value(o.client_ca);
    } else if (a == "--require-token") {
      ok = value(o.token.emplace());
    } else {
      std::fprintf(stderr, "grpc-test-server: unknown argument %s\n", a.c_str());
      return std::nullopt;
    }
    if (!ok) {
      std::fprintf(stderr, "grpc-test-server: %s needs a value\n", a.c_str());
      return std::nullopt;
    }
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    std::fprintf(stderr, "grpc-test-server: --tls-cert and --tls-key go together\n");
    return std::nullopt;
  }
  if (!o.client_ca.empty() && o.tls_cert.empty()) {
    std::fprintf(stderr, "grpc-test-server: --client-ca needs --tls-cert/--tls-key\n");
    return std::nullopt;
  }
  return o;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(n >> s) & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t n = uint8_t(in[i]) << 16 | (rest == 2 ? uint8_t(in[i + 1]) << 8 : 0);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string str(grpc::string_ref r) { return std::string(r.data(), r.size()); }

// One log line per call on stderr (a single fprintf, so lines from worker threads do not interleave).
void log_call(const grpc::ServerContext& ctx, const char* method, const grpc::Status& st, int64_t replies) {
  std::string keys;
  for (const auto& [k, v] : ctx.client_metadata()) keys += (keys.empty() ? "" : ",") + str(k);
  std::fprintf(stderr, "grpc-test-server: /ambient.test.Echo/%s md=[%s] replies=%lld -> %d %s%s%s\n", method,
               keys.c_str(), static_cast<long long>(replies), static_cast<int>(st.error_code()),
               st.ok() ? "OK" : "error", st.error_message().empty() ? "" : ": ", st.error_message().c_str());
}

class EchoService final : public ambient::test::Echo::Service {
 public:
  explicit EchoService(std::optional<std::string> token) : token_(std::move(token)) {}

  grpc::Status Unary(grpc::ServerContext* ctx, const EchoRequest* req, EchoReply* reply) override {
    auto st = [&] {
      if (auto bad = check_token(*ctx)) return *bad;
      if (auto bad = delay(*ctx, req->delay_ms())) return *bad;
      if (req->fail_code() != 0) return fail(*req);
      fill(*ctx, "Unary", *req, 1, *reply);
      ctx->AddInitialMetadata("x-echo-initial", "yes");
      return grpc::Status::OK;
    }();
    return finish(*ctx, "Unary", st, st.ok() ? 1 : 0);
  }

  grpc::Status BidiStream(grpc::ServerContext* ctx,
                          grpc::ServerReaderWriter<EchoReply, EchoRequest>* stream) override {
    int64_t seq = 0;
    auto st = [&] {
      if (auto bad = check_token(*ctx)) return *bad;
      EchoRequest req;
      int last_fail = 0;
      std::string last_fail_message;
      while (stream->Read(&req)) {  // false once the client half-closes (or the call dies)
        if (auto bad = delay(*ctx, req.delay_ms())) return *bad;
        if (seq == 0) ctx->AddInitialMetadata("x-echo-initial", "yes");
        EchoReply reply;
        fill(*ctx, "BidiStream", req, ++seq, reply);
        if (!stream->Write(reply)) return grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
        last_fail = req.fail_code();
        last_fail_message = req.fail_message();
      }
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by client");
      if (last_fail != 0) return grpc::Status(static_cast<grpc::StatusCode>(last_fail), last_fail_message);
      return grpc::Status::OK;
    }();
    return finish(*ctx, "BidiStream", st, seq);
  }

  grpc::Status ServerStream(grpc::ServerContext* ctx, const EchoRequest* req,
                            grpc::ServerWriter<EchoReply>* writer) override {
    int64_t seq = 0;
    auto st = [&] {
      if (auto bad = check_token(*ctx)) return *bad;
      for (int i = 0; i < req->repeat(); ++i) {
        if (auto bad = delay(*ctx, req->delay_ms())) return *bad;  // before each reply
        if (seq == 0) ctx->AddInitialMetadata("x-echo-initial", "yes");
        EchoReply reply;
        fill(*ctx, "ServerStream", *req, ++seq, reply);
        if (!writer->Write(reply)) return grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
      }
      if (req->fail_code() != 0) return fail(*req);  // after the replies: messages, then an error
      return grpc::Status::OK;
    }();
    return finish(*ctx, "ServerStream", st, seq);
  }

 private:
  // --require-token: the exact header value "Bearer <token>", else UNAUTHENTICATED.
  std::optional<grpc::Status> check_token(const grpc::ServerContext& ctx) const {
    if (!token_) return std::nullopt;
    auto [b, e] = ctx.client_metadata().equal_range("authorization");
    for (auto it = b; it != e; ++it)
      if (str(it->second) == "Bearer " + *token_) return std::nullopt;
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, b == e ? "missing bearer token" : "bad bearer token");
  }

  // delay_ms: sleep in short slices so a client cancel or an expired deadline ends the call promptly.
  static std::optional<grpc::Status> delay(const grpc::ServerContext& ctx, int ms) {
    auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < until) {
      if (Clock::now() >= ctx.deadline())
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline passed during delay_ms");
      if (ctx.IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled during delay_ms");
      std::this_thread::sleep_for(std::min<Clock::duration>(5ms, until - Clock::now()));
    }
    return std::nullopt;
  }

  static grpc::Status fail(const EchoRequest& req) {
    return grpc::Status(static_cast<grpc::StatusCode>(req.fail_code()), req.fail_message());
  }

  // The reply: message + payload echoed; the request metadata in the first reply of a call only.
  static void fill(const grpc::ServerContext& ctx, const char* method, const EchoRequest& req, int64_t seq,
                   EchoReply& reply) {
    reply.set_message(req.message());
    reply.set_payload(req.payload());
    reply.set_sequence(seq);
    if (seq != 1) return;
    auto& md = *reply.mutable_metadata();
    for (const auto& [k, v] : ctx.client_metadata()) {
      std::string key = str(k);
      // grpc++ hands over "-bin" values decoded; base64 keeps the proto3 string valid UTF-8.
      std::string value = key.ends_with("-bin") ? base64(str(v)) : str(v);
      auto [it, fresh] = md.try_emplace(key, value);
      if (!fresh) it->second += "," + value;  // repeated keys: joined as HTTP does
    }
    md[":authority"] = str(ctx.ExperimentalGetAuthority());
    md[":path"] = std::string("/ambient.test.Echo/") + method;
    md[":peer"] = ctx.peer();
    if (ctx.deadline() != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline() - Clock::now());
      md[":deadline-ms"] = std::to_string(left.count());
    }
    if (auto auth = ctx.auth_context(); auth && auth->IsPeerAuthenticated()) {
      auto join = [&](const char* prop) {
        std::string out;
        for (const auto& v : auth->FindPropertyValues(prop)) out += (out.empty() ? "" : ",") + str(v);
        return out;
      };
      if (auto s = join(GRPC_PEER_URI_PROPERTY_NAME); !s.empty()) md[":peer-uri-san"] = s;
      if (auto s = join(GRPC_PEER_DNS_PROPERTY_NAME); !s.empty()) md[":peer-dns-san"] = s;
    }
  }

  // Every call, whatever its status, ends with these trailers (a text one and a binary one, for the
  // client's base64 decoding). Calls that never sent a reply carry no initial metadata, so grpc++ answers
  // them Trailers-Only (one HEADERS frame with END_STREAM) - the shape real servers use for errors.
  static grpc::Status finish(grpc::ServerContext& ctx, const char* method, grpc::Status st, int64_t replies) {
    ctx.AddTrailingMetadata("x-echo-trailer", "done");
    ctx.AddTrailingMetadata("x-echo-trailer-bin", std::string("\x00\x01\xfe\xff", 4));
    log_call(ctx, method, st, replies);
    return st;
  }

  std::optional<std::string> token_;
};

}  // namespace

int main(int argc, char** argv) {
  auto opts = parse_args(argc, argv);
  if (!opts) {
    usage(stderr);
    return 2;
  }

  // Block the stop signals before grpc starts its threads; one thread below waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::shared_ptr<grpc::ServerCredentials> creds;
  if (opts->tls_cert.empty()) {
    creds = grpc::InsecureServerCredentials();  // plaintext HTTP/2 with prior knowledge (h2c)
  } else {
    auto cert = read_file(opts->tls_cert), key = read_file(opts->tls_key);
    if (!cert || !key) {
      std::fprintf(stderr, "grpc-test-server: cannot read %s or %s\n", opts->tls_cert.c_str(), opts->tls_key.c_str());
      return 1;
    }
    // grpc's TLS always offers ALPN "h2" and refuses peers that negotiate anything else.
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    if (!opts->client_ca.empty()) {
      auto ca = read_file(opts->client_ca);
      if (!ca) {
        std::fprintf(stderr, "grpc-test-server: cannot read %s\n", opts->client_ca.c_str());
        return 1;
      }
      ssl.pem_root_certs = *ca;
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(ssl);
  }

  EchoService service(opts->token);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(opts->listen, creds, &port);
  builder.RegisterService(&service);  // HTTP/2 settings, keepalive, message limits: grpc defaults
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "grpc-test-server: cannot listen on %s\n", opts->listen.c_str());
    return 1;
  }

  // The one stdout line tests wait for: the host as given ("[::1]" stays bracketed), the real port.
  std::string host = opts->listen.substr(0, opts->listen.rfind(':'));
  std::printf("listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);
  std::fprintf(stderr, "grpc-test-server: serving %s on %s:%d%s\n",
               opts->tls_cert.empty() ? "plaintext" : (opts->client_ca.empty() ? "TLS" : "mTLS"), host.c_str(),
               port, opts->token ? ", token required" : "");

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "grpc-test-server: signal %d, shutting down\n", sig);
    server->Shutdown(Clock::now() + 1s);  // calls still running after 1 s are cancelled
  });
  server->Wait();  // returns once Shutdown has finished
  stopper.join();
  return 0;
}
