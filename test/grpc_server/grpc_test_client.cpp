// grpc_test_client: manual check of grpc-test-server with grpc++'s own client (not a doctest suite, not
// run by ctest). Links grpc++ (OpenSSL), like the server.
//
//   grpc_test_client --target HOST:PORT [--ca PEM [--cert PEM --key PEM] [--authority NAME]]
//                    [--token TOKEN] suite|unary
//
// "suite" runs every check below and prints PASS/FAIL lines (exit 1 on any FAIL); "unary" makes one
// call and prints its status, reply and metadata (for checks that are expected to fail, e.g. mTLS).
#include "test/grpc_server/echo.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

namespace {

using namespace std::chrono_literals;
using ambient::test::EchoReply;
using ambient::test::EchoRequest;

struct Options {
  std::string target;     // server address
  std::string ca;         // TLS: trust this CA (PEM); empty: plaintext
  std::string cert, key;  // TLS: client certificate (mTLS)
  std::string authority;  // TLS: expected server name (SAN) instead of the target host
  std::string token;      // send "authorization: Bearer TOKEN"; suite also checks that it is enforced
  std::string mode = "suite";
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::exit(2);
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string str(grpc::string_ref r) { return std::string(r.data(), r.size()); }

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string md_string(const std::multimap<grpc::string_ref, grpc::string_ref>& md) {
  std::string out;
  for (const auto& [k, v] : md) out += (out.empty() ? "" : " ") + str(k) + "=" + printable(str(v));
  return out;
}

std::string md_get(const std::multimap<grpc::string_ref, grpc::string_ref>& md, const std::string& key) {
  auto it = md.find(key);
  return it == md.end() ? std::string("<absent>") : str(it->second);
}

class Checks {
 public:
  Checks(const Options& o, std::shared_ptr<grpc::Channel> ch) : opts_(o), stub_(ambient::test::Echo::NewStub(ch)) {}

  void context(grpc::ClientContext& ctx, bool with_token = true) const {
    if (with_token && !opts_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + opts_.token);
  }

  void expect(bool ok, const std::string& name, const std::string& detail) {
    std::printf("%s %s: %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
    failures_ += ok ? 0 : 1;
  }

  static std::string status(const grpc::Status& st) {
    return std::to_string(st.error_code()) + (st.error_message().empty() ? "" : " '" + st.error_message() + "'");
  }

  int run_one() {
    grpc::ClientContext ctx;
    context(ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    EchoRequest req;
    req.set_message("hello");
    EchoReply reply;
    auto st = stub_->Unary(&ctx, req, &reply);
    std::printf("status %s\n", status(st).c_str());
    if (st.ok()) {  // lite messages have no DebugString
      std::string md;
      for (const auto& [k, v] : reply.metadata()) md += " " + k + "=" + printable(v);
      std::printf("reply message '%s' sequence %lld payload %zu bytes metadata {%s }\n", reply.message().c_str(),
                  static_cast<long long>(reply.sequence()), reply.payload().size(), md.c_str());
    }
    std::printf("initial %s\ntrailing %s\n", md_string(ctx.GetServerInitialMetadata()).c_str(),
                md_string(ctx.GetServerTrailingMetadata()).c_str());
    return st.ok() ? 0 : 1;
  }

  int run_suite() {
    unary();
    large_unary();
    bidi();
    bidi_fail_last();
    server_stream();
    fail_code();
    deadline();
    if (!opts_.token.empty()) token();
    std::printf("%d failure(s)\n", failures_);
    return failures_ == 0 ? 0 : 1;
  }

 private:
  void unary() {
    grpc::ClientContext ctx;
    context(ctx);
    ctx.AddMetadata("clusterid", "Kubernetes");
    ctx.AddMetadata("x-custom", "abc");
    ctx.AddMetadata("x-raw-bin", std::string("\x00\xff", 2));
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    EchoRequest req;
    req.set_message("hello");
    req.set_payload(std::string("\x00\x01\x02", 3));
    EchoReply reply;
    auto st = stub_->Unary(&ctx, req, &reply);
    const auto& md = reply.metadata();
    auto get = [&](const char* k) { return md.count(k) ? md.at(k) : std::string("<absent>"); };
    bool ok = st.ok() && reply.message() == "hello" && reply.payload() == req.payload() && reply.sequence() == 1 &&
              get("clusterid") == "Kubernetes" && get("x-custom") == "abc" && get("x-raw-bin") == "AP8=" &&
              md_get(ctx.GetServerInitialMetadata(), "x-echo-initial") == "yes" &&
              md_get(ctx.GetServerTrailingMetadata(), "x-echo-trailer") == "done" &&
              md_get(ctx.GetServerTrailingMetadata(), "x-echo-trailer-bin") == std::string("\x00\x01\xfe\xff", 4);
    std::string seen;
    for (const auto& [k, v] : std::map<std::string, std::string>(md.begin(), md.end()))
      seen += (seen.empty() ? "" : " ") + k + "=" + v;
    expect(ok, "unary", "status " + status(st) + "; reply.metadata {" + seen + "}; initial {" +
                            md_string(ctx.GetServerInitialMetadata()) + "}; trailing {" +
                            md_string(ctx.GetServerTrailingMetadata()) + "}");
  }

  void large_unary() {  // 1 MiB each way: several HTTP/2 windows, so flow control must work both ways
    grpc::ClientContext ctx;
    context(ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    EchoRequest req;
    req.set_payload(std::string(1 << 20, 'x'));
    EchoReply reply;
    auto st = stub_->Unary(&ctx, req, &reply);
    expect(st.ok() && reply.payload() == req.payload(), "unary 1 MiB",
           "status " + status(st) + ", " + std::to_string(reply.payload().size()) + " bytes back");
  }

  void bidi() {
    grpc::ClientContext ctx;
    context(ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    auto stream = stub_->BidiStream(&ctx);
    std::string got;
    bool ok = true;
    for (int i = 1; i <= 3; ++i) {  // ping-pong: each reply arrives before the next request is sent
      EchoRequest req;
      req.set_message("m" + std::to_string(i));
      EchoReply reply;
      ok = ok && stream->Write(req) && stream->Read(&reply) && reply.sequence() == i && reply.message() == req.message();
      got += " " + reply.message() + "#" + std::to_string(reply.sequence());
    }
    stream->WritesDone();  // half-close: the server answers with its status
    EchoReply extra;
    ok = ok && !stream->Read(&extra);
    auto st = stream->Finish();
    expect(ok && st.ok() && md_get(ctx.GetServerTrailingMetadata(), "x-echo-trailer") == "done", "bidi 3 messages",
           "replies" + got + "; status " + status(st) + "; initial {" + md_string(ctx.GetServerInitialMetadata()) +
               "}; trailing {" + md_string(ctx.GetServerTrailingMetadata()) + "}");
  }

  void bidi_fail_last() {
    grpc::ClientContext ctx;
    context(ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    auto stream = stub_->BidiStream(&ctx);
    EchoRequest a, b;
    a.set_message("first");
    b.set_message("last");
    b.set_fail_code(grpc::StatusCode::FAILED_PRECONDITION);
    b.set_fail_message("ends with 9");
    stream->Write(a);
    stream->Write(b);
    stream->WritesDone();
    int n = 0;
    for (EchoReply r; stream->Read(&r);) ++n;
    auto st = stream->Finish();
    expect(n == 2 && st.error_code() == grpc::StatusCode::FAILED_PRECONDITION && st.error_message() == "ends with 9",
           "bidi fail_code on last message", std::to_string(n) + " replies, status " + status(st));
  }

  void server_stream() {
    for (int fail : {0, 14}) {
      grpc::ClientContext ctx;
      context(ctx);
      ctx.set_deadline(std::chrono::system_clock::now() + 5s);
      EchoRequest req;
      req.set_message("s");
      req.set_repeat(3);
      req.set_fail_code(fail);
      auto reader = stub_->ServerStream(&ctx, req);
      std::string seqs;
      for (EchoReply r; reader->Read(&r);) seqs += " " + std::to_string(r.sequence());
      auto st = reader->Finish();
      expect(seqs == " 1 2 3" && st.error_code() == fail,
             fail ? "server stream repeat=3 then fail_code=14" : "server stream repeat=3",
             "sequences" + seqs + ", status " + status(st));
    }
  }

  void fail_code() {
    grpc::ClientContext ctx;
    context(ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    EchoRequest req;
    req.set_fail_code(7);
    req.set_fail_message("denied by test");
    EchoReply reply;
    auto st = stub_->Unary(&ctx, req, &reply);
    expect(st.error_code() == grpc::StatusCode::PERMISSION_DENIED && st.error_message() == "denied by test" &&
               md_get(ctx.GetServerTrailingMetadata(), "x-echo-trailer") == "done",
           "fail_code=7", "status " + status(st) + "; initial {" + md_string(ctx.GetServerInitialMetadata()) +
                              "}; trailing {" + md_string(ctx.GetServerTrailingMetadata()) + "}");
  }

  void deadline() {
    {
      grpc::ClientContext ctx;
      context(ctx);
      ctx.set_deadline(std::chrono::system_clock::now() + 100ms);
      EchoRequest req;
      req.set_delay_ms(500);
      EchoReply reply;
      auto t0 = std::chrono::steady_clock::now();
      auto st = stub_->Unary(&ctx, req, &reply);
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      expect(st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && ms < 400, "delay_ms=500, deadline 100 ms",
             "status " + status(st) + " after " + std::to_string(ms) + " ms");
    }
    {
      grpc::ClientContext ctx;
      context(ctx);
      ctx.set_deadline(std::chrono::system_clock::now() + 2s);
      EchoRequest req;
      req.set_delay_ms(100);
      EchoReply reply;
      auto st = stub_->Unary(&ctx, req, &reply);
      auto it = reply.metadata().find(":deadline-ms");
      std::string left = it == reply.metadata().end() ? "<absent>" : it->second;
      expect(st.ok() && left != "<absent>", "delay_ms=100, deadline 2 s",
             "status " + status(st) + ", server saw :deadline-ms=" + left);
    }
  }

  void token() {
    for (const char* bad : {"", "wrong"}) {
      grpc::ClientContext ctx;
      if (*bad) ctx.AddMetadata("authorization", std::string("Bearer ") + bad);
      ctx.set_deadline(std::chrono::system_clock::now() + 5s);
      EchoRequest req;
      EchoReply reply;
      auto st = stub_->Unary(&ctx, req, &reply);
      expect(st.error_code() == grpc::StatusCode::UNAUTHENTICATED,
             *bad ? "token: wrong token rejected" : "token: missing token rejected", "status " + status(st));
    }
  }

  const Options& opts_;
  std::unique_ptr<ambient::test::Echo::Stub> stub_;
  int failures_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--target") o.target = next();
    else if (a == "--ca") o.ca = next();
    else if (a == "--cert") o.cert = next();
    else if (a == "--key") o.key = next();
    else if (a == "--authority") o.authority = next();
    else if (a == "--token") o.token = next();
    else if (a == "suite" || a == "unary") o.mode = a;
    else {
      std::fprintf(stderr,
                   "usage: grpc_test_client --target HOST:PORT [--ca PEM [--cert PEM --key PEM] "
                   "[--authority NAME]] [--token TOKEN] suite|unary\n");
      return 2;
    }
  }
  if (o.target.empty()) {
    std::fprintf(stderr, "--target is required\n");
    return 2;
  }

  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  if (o.ca.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = read_file(o.ca);
    if (!o.cert.empty()) {
      ssl.pem_cert_chain = read_file(o.cert);
      ssl.pem_private_key = read_file(o.key);
    }
    creds = grpc::SslCredentials(ssl);
    if (!o.authority.empty()) args.SetSslTargetNameOverride(o.authority);
  }
  Checks checks(o, grpc::CreateCustomChannel(o.target, creds, args));
  return o.mode == "unary" ? checks.run_one() : checks.run_suite();
}
