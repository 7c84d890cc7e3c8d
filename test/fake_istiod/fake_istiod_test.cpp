// test/fake_istiod: fake-istiod (grpc++ over OpenSSL, a child process) driven by our own gRPC client
// (common/grpc over BoringSSL): Delta ADS pushes and deltas, ACK/NACK accounting, token checks, the CA,
// and each fault.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/state/resource.h"
#include "common/tls/pki.h"
#include "proto/authorization.pb.h"
#include "proto/ca.pb.h"
#include "proto/workload.pb.h"
#include "test/support/fake_istiod.h"

using namespace ambient;
using namespace ambient::test::istiod;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;

namespace {

constexpr const char* kWorkloadA = "cluster1//v1/Pod/default/a";
constexpr const char* kWorkloadB = "cluster1//v1/Pod/default/b";
constexpr const char* kService = "default/svc.default.svc.cluster.local";
constexpr const char* kPolicy = "default/allow-all";

std::string workload_yaml(const char* uid, const char* name, const char* ip, const char* sa = "default") {
  return std::string("- uid: ") + uid + "\n  name: " + name + "\n  namespace: default\n  serviceAccount: " + sa +
         "\n  workloadIps: [\"" + ip + "\"]\n  protocol: HBONE\n";
}

// Two workloads, a service, a policy: split over two files (the union is served).
void write_base_config(const IstiodEnv& env, const char* sa_of_a = "default") {
  env.write_config("workloads.yaml", "workloads:\n" + workload_yaml(kWorkloadA, "a", "10.0.0.1", sa_of_a) +
                                         workload_yaml(kWorkloadB, "b", "10.0.0.2"));
  env.write_config("mesh.yaml",
                   "services:\n"
                   "- name: svc\n  namespace: default\n  hostname: svc.default.svc.cluster.local\n"
                   "  vips: [\"/10.96.0.1\"]\n  ports: {80: 8080}\n"
                   "policies:\n"
                   "- name: allow-all\n  namespace: default\n  scope: Namespace\n  action: Allow\n"
                   "  rules: [[[{notDestinationPorts: [9999]}]]]\n");
}

std::set<std::string> names(const DeltaDiscoveryResponse& r) {
  std::set<std::string> out;
  for (const auto& res : r.resources()) out.insert(res.name());
  return out;
}

std::set<std::string> removed(const DeltaDiscoveryResponse& r) {
  return {r.removed_resources().begin(), r.removed_resources().end()};
}

std::map<std::string, std::string> versions(const DeltaDiscoveryResponse& r) {
  std::map<std::string, std::string> out;
  for (const auto& res : r.resources()) out[res.name()] = res.version();
  return out;
}

// What one ADS exchange saw, collected inside the coroutine and checked outside it.
struct Seen {
  std::vector<DeltaDiscoveryResponse> responses;
  grpc::Status end;        // final status when the stream ended
  std::string failure;     // a client-side failure (dial, send, recv), else empty
};

asio::awaitable<Result<DeltaDiscoveryResponse>> next(grpc::Call& call) {
  auto m = co_await grpc::recv_message<DeltaDiscoveryResponse>(call);
  if (!m) co_return m.error();
  if (!*m) co_return make_error(ErrorKind::Closed, "stream ended without a response");
  co_return std::move(**m);
}

// Opens a stream, subscribes to Address then Authorization (with `initial` versions for Address),
// returns the two initial responses in that order.
asio::awaitable<Result<std::pair<grpc::Call, std::vector<DeltaDiscoveryResponse>>>> open_ads(
    std::shared_ptr<h2::Session> s, std::map<std::string, std::string> initial = {}, std::string token = "") {
  auto call = co_await grpc::start_call(s, kAds, call_options(token));
  if (!call) co_return call.error();
  std::vector<DeltaDiscoveryResponse> out;
  for (const std::string type : {kAddressType, kAuthorizationType}) {
    // Built outside the co_await expression: GCC 12 mishandles temporaries there (see grpc::CallOptions).
    const auto request = type == kAddressType ? subscribe(type, initial) : subscribe(type);
    if (auto w = co_await grpc::send_message(*call, request); !w) {
      auto end = co_await call->recv();  // the server may have ended the call first: its status says why
      if (!end) co_return end.error();
      co_return w.error();
    }
    auto r = co_await next(*call);
    if (!r) co_return r.error();
    const auto acked = ack(type, r->nonce());
    if (auto w = co_await grpc::send_message(*call, acked); !w) co_return w.error();
    out.push_back(std::move(*r));
  }
  co_return std::pair{std::move(*call), std::move(out)};
}

istio::v1::auth::IstioCertificateRequest csr_request(const tls::SpiffeId& id, std::int64_t validity_s = 0) {
  auto key = tls::generate_p256_key();
  REQUIRE(key);
  auto csr = tls::make_csr_pem(key->get(), id);
  REQUIRE(csr);
  istio::v1::auth::IstioCertificateRequest req;
  req.set_csr(*csr);
  req.set_validity_duration(validity_s);
  return req;
}

const tls::SpiffeId kIdentity{"cluster.local", "default", "a"};

asio::awaitable<Result<istio::v1::auth::IstioCertificateResponse>> create_certificate(
    const IstiodEnv& env, istio::v1::auth::IstioCertificateRequest req, std::string token = "") {
  auto s = co_await env.dial();
  if (!s) co_return s.error();
  co_return co_await grpc::unary_message<istio::v1::auth::IstioCertificateResponse>(*s, kCa, req, call_options(token));
}

}  // namespace

TEST_SUITE("test/fake_istiod") {
  TEST_CASE("initial pushes hold exactly the YAML's resources; edits push deltas; removals; NACK counted") {
    IstiodEnv env;
    write_base_config(env);
    REQUIRE_MESSAGE(env.start(), env.error());

    Seen seen;
    std::string nonce_of_invalid;
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await env.dial();
      if (!s) { seen.failure = s.error().message(); co_return; }
      auto opened = co_await open_ads(*s);
      if (!opened) { seen.failure = opened.error().message(); co_return; }
      auto& [call, initial] = *opened;
      seen.responses = initial;

      // Edit: workload a changes its service account; only a is pushed.
      write_base_config(env, "sa-changed");
      auto delta = co_await next(call);
      if (!delta) { seen.failure = delta.error().message(); co_return; }
      seen.responses.push_back(*delta);
      const auto ack_delta = ack(kAddressType, delta->nonce());
      (void)co_await grpc::send_message(call, ack_delta);

      // Removal: workload b leaves the YAML.
      env.write_config("workloads.yaml", "workloads:\n" + workload_yaml(kWorkloadA, "a", "10.0.0.1", "sa-changed"));
      auto gone = co_await next(call);
      if (!gone) { seen.failure = gone.error().message(); co_return; }
      seen.responses.push_back(*gone);

      // NACK: counted and its message kept in /status.
      const auto nack = ack(kAddressType, gone->nonce(), "cluster1//v1/Pod/default/b: test nack");
      (void)co_await grpc::send_message(call, nack);
      if (!co_await wait_until([&] { return env.status_value("nacks") == 1; }))
        seen.failure = "nack not counted: " + env.admin("GET", "/status").body;
      call.cancel();
    });
    REQUIRE_MESSAGE(seen.failure.empty(), seen.failure, "\n", env.log());
    REQUIRE(seen.responses.size() == 4);

    const auto& addr = seen.responses[0];
    CHECK(addr.type_url() == kAddressType);
    CHECK(names(addr) == std::set<std::string>{kWorkloadA, kWorkloadB, kService});
    CHECK(addr.removed_resources_size() == 0);
    CHECK_FALSE(addr.nonce().empty());
    CHECK_FALSE(addr.system_version_info().empty());
    for (const auto& res : addr.resources()) {
      CHECK(res.resource().type_url() == kAddressType);
      CHECK(res.version().size() == 16);
      istio::workload::Address a;
      REQUIRE(a.ParseFromString(res.resource().value()));
      CHECK(res.name() == (a.has_workload() ? a.workload().uid() : state::service_key(a.service())));
    }
    const auto& authz = seen.responses[1];
    CHECK(authz.type_url() == kAuthorizationType);
    CHECK(names(authz) == std::set<std::string>{kPolicy});
    istio::security::Authorization policy;
    REQUIRE(policy.ParseFromString(authz.resources(0).resource().value()));
    CHECK(policy.name() == "allow-all");
    CHECK(authz.nonce() != addr.nonce());

    const auto& edit = seen.responses[2];
    CHECK(edit.type_url() == kAddressType);
    CHECK(names(edit) == std::set<std::string>{kWorkloadA});
    CHECK(edit.removed_resources_size() == 0);
    CHECK(versions(edit)[kWorkloadA] != versions(addr)[kWorkloadA]);
    istio::workload::Address edited;
    REQUIRE(edited.ParseFromString(edit.resources(0).resource().value()));
    CHECK(edited.workload().service_account() == "sa-changed");

    const auto& removal = seen.responses[3];
    CHECK(removal.resources_size() == 0);
    CHECK(removed(removal) == std::set<std::string>{kWorkloadB});

    const auto status = env.admin("GET", "/status").body;
    CHECK(status.find("test nack") != std::string::npos);
    CHECK(json_int(status, "acks") >= 3);
    CHECK(env.log().find("NACK type=type.googleapis.com/istio.workload.Address nonce=" + seen.responses[3].nonce() +
                         ": cluster1//v1/Pod/default/b: test nack") != std::string::npos);
  }

  TEST_CASE("initial_resource_versions suppresses unchanged resources and lists vanished ones") {
    IstiodEnv env;
    write_base_config(env);
    REQUIRE_MESSAGE(env.start(), env.error());
    Seen first, second;
    std::map<std::string, std::string> held;
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await env.dial();
      if (!s) { first.failure = s.error().message(); co_return; }
      auto a = co_await open_ads(*s);
      if (!a) { first.failure = a.error().message(); co_return; }
      first.responses = a->second;
      a->first.cancel();
      // A new stream that holds a's current version, a stale b, and a workload that no longer exists.
      held = versions(first.responses[0]);
      held[kWorkloadB] = "stale";
      held["cluster1//v1/Pod/default/gone"] = "0000000000000000";
      held.erase(kService);
      auto b = co_await open_ads(*s, held);
      if (!b) { second.failure = b.error().message(); co_return; }
      second.responses = b->second;
      b->first.cancel();
    });
    REQUIRE_MESSAGE(first.failure.empty(), first.failure);
    REQUIRE_MESSAGE(second.failure.empty(), second.failure);
    const auto& r = second.responses[0];
    CHECK(names(r) == std::set<std::string>{kWorkloadB, kService});
    CHECK(removed(r) == std::set<std::string>{"cluster1//v1/Pod/default/gone"});
    CHECK(names(second.responses[1]) == std::set<std::string>{kPolicy});  // no versions held for this type
  }

  TEST_CASE("token: missing or wrong -> UNAUTHENTICATED with a message, right -> served") {
    IstiodEnv env;
    write_base_config(env);
    REQUIRE_MESSAGE(env.start({"--token", "s3cret"}), env.error());
    struct Outcome { Result<void> missing_ads = ok(), wrong_ads = ok(), right_ads = ok(); int missing_ca = 0; std::string missing_ca_msg; };
    Outcome out;
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await env.dial();
      if (!s) { out.right_ads = s.error(); co_return; }
      auto missing = co_await open_ads(*s);
      if (!missing) out.missing_ads = missing.error();
      std::map<std::string, std::string> none;
      auto wrong = co_await open_ads(*s, none, "nope");
      if (!wrong) out.wrong_ads = wrong.error();
      auto right = co_await open_ads(*s, none, "s3cret");
      if (!right) out.right_ads = right.error();
      else right->first.cancel();
      const auto csr = csr_request(kIdentity);
      auto ca = co_await grpc::unary_message<istio::v1::auth::IstioCertificateResponse>(*s, kCa, csr, call_options());
      if (!ca) { out.missing_ca = ca.error().code; out.missing_ca_msg = ca.error().context; }
    });
    REQUIRE_FALSE(out.missing_ads.has_value());
    CHECK(out.missing_ads.error().code == 16);
    CHECK(out.missing_ads.error().context.find("missing") != std::string::npos);
    REQUIRE_FALSE(out.wrong_ads.has_value());
    CHECK(out.wrong_ads.error().code == 16);
    CHECK(out.wrong_ads.error().context.find("wrong") != std::string::npos);
    CHECK_MESSAGE(out.right_ads.has_value(), (out.right_ads ? "" : out.right_ads.error().message()));
    CHECK(out.missing_ca == 16);
    CHECK(out.missing_ca_msg.find("missing") != std::string::npos);
    CHECK(env.status_value("unauthenticated") == 3);
  }

  TEST_CASE("CreateCertificate: chain verifies, URI SAN, validity; impersonation; refuse-csr and cert-ttl-s") {
    IstiodEnv env;
    REQUIRE_MESSAGE(env.start(), env.error());
    auto roots = tls::certificates_from_pem(read_text(env.file("ca.pem")));
    REQUIRE(roots);

    SUBCASE("signs the CSR with the requested validity") {
      auto resp = run_test([&](asio::io_context&) { return create_certificate(env, csr_request(kIdentity, 3600)); });
      REQUIRE_MESSAGE(resp, (resp ? "" : resp.error().message()));
      REQUIRE(resp->cert_chain_size() == 2);
      auto leaf = tls::certificate_from_pem(resp->cert_chain(0));
      REQUIRE(leaf);
      CHECK(tls::uri_sans(leaf->get()) == std::vector<std::string>{kIdentity.to_string()});
      CHECK(tls::verify_chain(leaf->get(), {}, *roots).has_value());
      CHECK(resp->cert_chain(1) == read_text(env.file("ca.pem")));
      const auto nb = tls::not_before(leaf->get()), na = tls::not_after(leaf->get());
      REQUIRE(nb);
      REQUIRE(na);
      CHECK(std::chrono::duration_cast<std::chrono::seconds>(*na - *nb).count() == 3600 + 60);  // backdated 1 min
      CHECK(env.status_value("csrs_signed") == 1);
    }
    SUBCASE("default validity is 24 h") {
      auto resp = run_test([&](asio::io_context&) { return create_certificate(env, csr_request(kIdentity)); });
      REQUIRE(resp);
      auto leaf = tls::certificate_from_pem(resp->cert_chain(0));
      REQUIRE(leaf);
      CHECK(std::chrono::duration_cast<std::chrono::seconds>(*tls::not_after(leaf->get()) - *tls::not_before(leaf->get()))
                .count() == 24 * 3600 + 60);
    }
    SUBCASE("ImpersonatedIdentity: matching is issued, mismatch is INVALID_ARGUMENT naming both") {
      auto req = csr_request(kIdentity);
      (*req.mutable_metadata()->mutable_fields())["ImpersonatedIdentity"].set_string_value(kIdentity.to_string());
      auto good = run_test([&](asio::io_context&) { return create_certificate(env, req); });
      CHECK_MESSAGE(good, (good ? "" : good.error().message()));
      const std::string other = "spiffe://cluster.local/ns/other/sa/b";
      (*req.mutable_metadata()->mutable_fields())["ImpersonatedIdentity"].set_string_value(other);
      auto bad = run_test([&](asio::io_context&) { return create_certificate(env, req); });
      REQUIRE_FALSE(bad);
      CHECK(bad.error().code == 3);
      CHECK(bad.error().context.find(other) != std::string::npos);
      CHECK(bad.error().context.find(kIdentity.to_string()) != std::string::npos);
    }
    SUBCASE("malformed CSR is INVALID_ARGUMENT") {
      istio::v1::auth::IstioCertificateRequest req;
      req.set_csr("-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n");
      auto bad = run_test([&](asio::io_context&) { return create_certificate(env, req); });
      REQUIRE_FALSE(bad);
      CHECK(bad.error().code == 3);
    }
    SUBCASE("refuse-csr, then cert-ttl-s caps the validity") {
      REQUIRE(env.admin("POST", "/fault?refuse-csr=1").status == 200);
      auto refused = run_test([&](asio::io_context&) { return create_certificate(env, csr_request(kIdentity)); });
      REQUIRE_FALSE(refused);
      CHECK(refused.error().code == 14);
      CHECK(refused.error().context.find("CA refusing CSRs (fault injection)") != std::string::npos);
      CHECK(env.status_value("csrs_refused") == 1);

      REQUIRE(env.admin("POST", "/fault?refuse-csr=0&cert-ttl-s=120").status == 200);
      auto capped = run_test([&](asio::io_context&) { return create_certificate(env, csr_request(kIdentity, 3600)); });
      REQUIRE(capped);
      auto leaf = tls::certificate_from_pem(capped->cert_chain(0));
      REQUIRE(leaf);
      CHECK(std::chrono::duration_cast<std::chrono::seconds>(*tls::not_after(leaf->get()) - *tls::not_before(leaf->get()))
                .count() == 120 + 60);
    }
  }

  TEST_CASE("faults: invalid-resource adds invalid/bad-workload; drop-streams ends streams with UNAVAILABLE") {
    IstiodEnv env;
    write_base_config(env);
    REQUIRE_MESSAGE(env.start({"--push-delay-ms", "20"}), env.error());
    Seen seen;
    run_test([&](asio::io_context&) -> asio::awaitable<void> {
      auto s = co_await env.dial();
      if (!s) { seen.failure = s.error().message(); co_return; }
      auto opened = co_await open_ads(*s);
      if (!opened) { seen.failure = opened.error().message(); co_return; }
      auto& call = opened->first;
      if (env.admin("POST", "/fault?invalid-resource=1").status != 200) { seen.failure = "admin"; co_return; }
      auto bad = co_await next(call);
      if (!bad) { seen.failure = bad.error().message(); co_return; }
      seen.responses.push_back(*bad);
      if (env.admin("POST", "/fault?invalid-resource=0").status != 200) { seen.failure = "admin"; co_return; }
      auto cleared = co_await next(call);
      if (!cleared) { seen.failure = cleared.error().message(); co_return; }
      seen.responses.push_back(*cleared);

      if (!co_await wait_until([&] { return env.status_value("streams_connected") == 1; })) seen.failure = "not connected";
      env.admin("POST", "/fault?drop-streams");
      auto end = co_await call.recv();
      if (end) seen.failure = "stream still open after drop-streams";
      else seen.end = grpc::Status{end.error().code, end.error().context};
      if (!co_await wait_until([&] { return env.status_value("streams_connected") == 0; }))
        seen.failure = "stream still counted after drop";
    });
    REQUIRE_MESSAGE(seen.failure.empty(), seen.failure, "\n", env.log());
    REQUIRE(seen.responses.size() == 2);
    CHECK(names(seen.responses[0]) == std::set<std::string>{"invalid/bad-workload"});
    istio::workload::Address a;
    REQUIRE(a.ParseFromString(seen.responses[0].resources(0).resource().value()));
    REQUIRE(a.workload().addresses_size() == 1);
    CHECK(a.workload().addresses(0).size() == 3);
    CHECK_FALSE(state::validate(a.workload()).has_value());
    CHECK(removed(seen.responses[1]) == std::set<std::string>{"invalid/bad-workload"});
    CHECK(seen.end.code == 14);
    CHECK(seen.end.message.find("drop-streams") != std::string::npos);
  }

  TEST_CASE("bad config edit keeps the previous state; bad flags exit 2; admin errors") {
    IstiodEnv env;
    write_base_config(env);
    REQUIRE_MESSAGE(env.start(), env.error());
    env.write_config("broken.yaml", "workloads:\n- uid: x\n  namespace: default\n  workloadIps: [\"10.0.0.300\"]\n");
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (env.status_value("config_errors") < 1 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(10ms);
    const auto status = env.admin("GET", "/status").body;
    CHECK(json_int(status, "config_errors") == 1);
    CHECK(json_int(status, "config_generation") == 1);
    CHECK(status.find("10.0.0.300") != std::string::npos);

    CHECK(env.admin("POST", "/fault?no-such-fault=1").status == 400);
    CHECK(env.admin("POST", "/fault?push-delay-ms=abc").status == 400);
    CHECK(env.admin("GET", "/fault?refuse-csr=1").status == 405);
    CHECK(env.admin("GET", "/nope").status == 404);

    const std::string exe = test::binary_dir() + "/test/fake_istiod/fake-istiod";
    CHECK(WEXITSTATUS(std::system((exe + " --bogus 2>/dev/null").c_str())) == 2);
    CHECK(WEXITSTATUS(std::system((exe + " --listen 127.0.0.1:0 2>/dev/null").c_str())) == 2);  // no certificates
    CHECK(WEXITSTATUS(std::system((exe + " --serving-cert a --serving-key b --ca-cert c --ca-key d --cert-ttl-s x "
                                          "2>/dev/null").c_str())) == 2);
  }
}
