#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <openssl/aead.h>
#include <openssl/ssl.h>

#include "common/tls/ca.h"
#include "common/tls/tls_context.h"
#include "test/common/tls/handshake_driver.h"
#include "test/common/tls/test_pki.h"

using namespace ambient;
using namespace ambient::tls;
using ambient::tls::testing::must;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

const SpiffeId kClient{"cluster.local", "client-ns", "client-sa"};
const SpiffeId kServer{"cluster.local", "server-ns", "server-sa"};

using Tweak = std::function<void(SSL*)>;

// One connection attempt: contexts built from the two CertifiedKeys, the client expecting `expected`.
struct Run {
  bssl::UniquePtr<SSL_CTX> client_ctx;
  bssl::UniquePtr<SSL_CTX> server_ctx;
  bssl::UniquePtr<SSL> client;
  bssl::UniquePtr<SSL> server;
  testing::HandshakeOutcome outcome;
};

Run connect(const CertifiedKey& client_key, const CertifiedKey& server_key, std::vector<std::string> expected,
            const Tweak& tweak_client = {}, TlsOptions client_options = {}, TlsOptions server_options = {}) {
  Run run;
  run.client_ctx = must(make_client_context(client_key, client_options));
  run.server_ctx = must(make_server_context(server_key, server_options));
  run.client = must(new_client_ssl(run.client_ctx.get(), std::move(expected)));
  run.server = must(new_server_ssl(run.server_ctx.get()));
  if (tweak_client) tweak_client(run.client.get());
  run.outcome = testing::drive_handshake(run.client.get(), run.server.get());
  return run;
}

// The certificates of one test world: a CA for cluster.local, a second unrelated CA for the same trust
// domain, and the two workloads.
struct World {
  CertificateAuthority ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h));
  CertificateAuthority other_ca = must(CertificateAuthority::create_self_signed("cluster.local", 24h));
  CertifiedKey client = must(ca.issue(kClient, 1h));
  CertifiedKey server = must(ca.issue(kServer, 1h));

  CertifiedKey expired(const SpiffeId& id) {
    const auto two_hours_ago = std::chrono::system_clock::now() - 2h;
    ca.set_clock([two_hours_ago] { return two_hours_ago; });
    auto out = must(ca.issue(id, 1h));
    ca.set_clock([] { return std::chrono::system_clock::now(); });
    return out;
  }
  // A workload certificate from `other_ca` that still trusts `ca` (so only the peer's check can fail).
  CertifiedKey from_other_ca(const SpiffeId& id) {
    auto out = must(other_ca.issue(id, 1h));
    out.roots = share(ca.roots());
    return out;
  }
  // A leaf from the hand-made CA `raw` (only `raw` trusted), with chosen URI SAN and EKUs.
  CertifiedKey raw_leaf(const std::string& uri, bool server_auth = true, bool client_auth = true) {
    return testing::make_leaf(raw, uri, server_auth, client_auth, {}, testing::chain_of(raw.cert));
  }
  testing::RawCa raw = testing::make_raw_ca("cluster.local");
};

void check_good(const Run& run, const SpiffeId& client_id, const SpiffeId& server_id, int version) {
  INFO(run.outcome.describe());
  REQUIRE(run.outcome.ok());
  CHECK(run.outcome.client.reason.empty());
  CHECK(run.outcome.server.reason.empty());
  CHECK(verify_failure_kind(run.client.get()) == ErrorKind::TlsHandshake);
  const auto seen_by_client = peer_identity(run.client.get());
  const auto seen_by_server = peer_identity(run.server.get());
  REQUIRE(seen_by_client);
  REQUIRE(seen_by_server);
  CHECK(*seen_by_client == server_id);
  CHECK(*seen_by_server == client_id);
  CHECK(negotiated_alpn(run.client.get()) == "h2");
  CHECK(negotiated_alpn(run.server.get()) == "h2");
  CHECK(SSL_version(run.client.get()) == version);
  CHECK(SSL_version(run.server.get()) == version);
  const SSL_CIPHER* cipher = SSL_get_current_cipher(run.client.get());
  CAPTURE(SSL_CIPHER_standard_name(cipher));
  CHECK(is_allowed_cipher(cipher));
  CHECK(SSL_get_current_cipher(run.server.get()) == cipher);
  CHECK(SSL_get_servername(run.server.get(), TLSEXT_NAMETYPE_host_name) == nullptr);  // no SNI
  CHECK_FALSE(SSL_session_reused(run.client.get()));
}

}  // namespace

TEST_SUITE("common/tls/tls_context") {
  TEST_CASE("cipher policy: AES-GCM only") {
    struct Row {
      uint16_t value;
      bool allowed;
    };
    const std::vector<Row> rows = {
        {0x1301, true},    // TLS_AES_128_GCM_SHA256
        {0x1302, true},    // TLS_AES_256_GCM_SHA384
        {0x1303, false},   // TLS_CHACHA20_POLY1305_SHA256
        {0xc02b, true},    // ECDHE-ECDSA-AES128-GCM-SHA256
        {0xc030, true},    // ECDHE-RSA-AES256-GCM-SHA384
        {0xcca9, false},   // ECDHE-ECDSA-CHACHA20-POLY1305
        {0xc009, false},   // ECDHE-ECDSA-AES128-SHA (CBC)
    };
    for (const auto& row : rows) {
      const SSL_CIPHER* cipher = SSL_get_cipher_by_value(row.value);
      REQUIRE(cipher);
      CAPTURE(SSL_CIPHER_standard_name(cipher));
      CHECK(is_allowed_cipher(cipher) == row.allowed);
    }
    CHECK_FALSE(is_allowed_cipher(nullptr));
  }

  TEST_CASE("context configuration: TLS 1.3 only, no tickets, no session cache") {
    World w;
    auto client_ctx = must(make_client_context(w.client));
    auto server_ctx = must(make_server_context(w.server));
    for (SSL_CTX* ctx : {client_ctx.get(), server_ctx.get()}) {
      CHECK(SSL_CTX_get_min_proto_version(ctx) == TLS1_3_VERSION);
      CHECK(SSL_CTX_get_max_proto_version(ctx) == TLS1_3_VERSION);
      CHECK((SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET) != 0);
      CHECK(SSL_CTX_get_session_cache_mode(ctx) == SSL_SESS_CACHE_OFF);
    }
    CHECK(SSL_CTX_get_verify_mode(client_ctx.get()) == SSL_VERIFY_PEER);
    CHECK(SSL_CTX_get_verify_mode(server_ctx.get()) == (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT));
    auto tls12 = must(make_client_context(w.client, TlsOptions{.allow_tls12 = true}));
    CHECK(SSL_CTX_get_min_proto_version(tls12.get()) == TLS1_2_VERSION);
  }

  TEST_CASE("factory refusals") {
    World w;
    auto ctx = must(make_client_context(w.client));
    auto no_sans = new_client_ssl(ctx.get(), {});
    REQUIRE_FALSE(no_sans);
    CHECK(no_sans.error().kind == ErrorKind::InvalidArgument);

    auto empty = make_client_context(CertifiedKey{});
    REQUIRE_FALSE(empty);
    CHECK(contains(empty.error().context, "needs a key, a certificate chain and roots"));

    auto server = make_server_context(w.raw_leaf("https://example.org/x"));
    REQUIRE_FALSE(server);
    CHECK(contains(server.error().context, "no SPIFFE URI SAN"));
  }

  TEST_CASE("good mTLS: identities, ALPN h2, TLS 1.3, AES-GCM, no SNI, no resumption") {
    World w;
    SUBCASE("one expected SAN") {
      auto run = connect(w.client, w.server, {kServer.to_string()});
      check_good(run, kClient, kServer, TLS1_3_VERSION);
    }
    SUBCASE("the matching SAN is not the first expected one") {
      auto run = connect(w.client, w.server, {"spiffe://cluster.local/ns/x/sa/y", kServer.to_string()});
      check_good(run, kClient, kServer, TLS1_3_VERSION);
    }
    SUBCASE("both sides through an intermediate CA") {
      auto inter = testing::make_raw_ca("intermediate", &w.raw);
      const auto inters = testing::chain_of(inter.cert);
      const auto roots = testing::chain_of(w.raw.cert);
      auto client = testing::make_leaf(inter, kClient.to_string(), true, true, inters, roots);
      auto server = testing::make_leaf(inter, kServer.to_string(), true, true, inters, roots);
      auto run = connect(client, server, {kServer.to_string()});
      check_good(run, kClient, kServer, TLS1_3_VERSION);
    }
    SUBCASE("TLS 1.2 when both allow it (TLS12_ENABLED), AES-GCM suite") {
      const TlsOptions tls12{.allow_tls12 = true};
      auto run = connect(
          w.client, w.server, {kServer.to_string()},
          [](SSL* ssl) { REQUIRE(SSL_set_max_proto_version(ssl, TLS1_2_VERSION)); }, tls12, tls12);
      check_good(run, kClient, kServer, TLS1_2_VERSION);
    }
  }

  TEST_CASE("handshake matrix: refusals name the failed check") {
    World w;
    struct Row {
      std::string name;
      Run run;
      // Which side refuses, and the reasons each side records.
      bool client_refuses;
      std::string client_reason;
      std::string server_reason;
      ErrorKind kind = ErrorKind::TlsHandshake;  // verify_failure_kind of the refusing side
    };
    const std::string server_uri = kServer.to_string();
    std::vector<Row> rows;
    rows.push_back({"server certificate from another CA",
                    connect(w.client, must(w.other_ca.issue(kServer, 1h)), {server_uri}), true,
                    "certificate chain: unable to get local issuer certificate (depth 0, " + server_uri + ")",
                    "peer sent fatal alert: unknown CA"});
    rows.push_back({"client certificate from another CA", connect(w.from_other_ca(kClient), w.server, {server_uri}),
                    false, "peer sent fatal alert: unknown CA",
                    "certificate chain: unable to get local issuer certificate (depth 0, " + kClient.to_string() + ")"});
    rows.push_back({"expired server certificate", connect(w.client, w.expired(kServer), {server_uri}), true,
                    "certificate chain: certificate has expired (depth 0, " + server_uri + ")",
                    "peer sent fatal alert: certificate expired"});
    rows.push_back({"expired client certificate", connect(w.expired(kClient), w.server, {server_uri}), false,
                    "peer sent fatal alert: certificate expired",
                    "certificate chain: certificate has expired (depth 0, " + kClient.to_string() + ")"});
    rows.push_back({"wrong server SAN",
                    connect(w.client, w.server, {"spiffe://cluster.local/ns/server-ns/sa/other"}), true,
                    "peer URI SAN " + server_uri +
                        " is not one of the expected [spiffe://cluster.local/ns/server-ns/sa/other]",
                    "peer sent fatal alert: handshake failure", ErrorKind::PeerIdentity});
    rows.push_back({"no client certificate",
                    connect(w.client, w.server, {server_uri}, [](SSL* ssl) { SSL_certs_clear(ssl); }), false,
                    "peer sent fatal alert: ", "no client certificate"});
    rows.push_back({"client offers only TLS 1.2",
                    connect(
                        w.client, w.server, {server_uri},
                        [](SSL* ssl) { REQUIRE(SSL_set_max_proto_version(ssl, TLS1_2_VERSION)); },
                        TlsOptions{.allow_tls12 = true}),
                    false, "peer sent fatal alert: protocol version",
                    "TLS version: no protocol version in common (TLS 1.3 required)"});
    rows.push_back({"client offers no ALPN",
                    connect(w.client, w.server, {server_uri},
                            [](SSL* ssl) { REQUIRE(SSL_set_alpn_protos(ssl, nullptr, 0) == 0); }),
                    false, "peer sent fatal alert: handshake failure",
                    "ALPN: client offered no protocols; h2 required"});
    rows.push_back({"client offers only http/1.1",
                    connect(w.client, w.server, {server_uri},
                            [](SSL* ssl) {
                              static const uint8_t http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
                              REQUIRE(SSL_set_alpn_protos(ssl, http11, sizeof http11) == 0);
                            }),
                    false, "peer sent fatal alert: no application protocol",
                    "ALPN: client offered [http/1.1]; h2 required"});
    rows.push_back({"client certificate in another trust domain",
                    connect(must(w.ca.issue(SpiffeId{"evil.org", "client-ns", "client-sa"}, 1h)), w.server,
                            {server_uri}),
                    false, "peer sent fatal alert: handshake failure", "trust domain evil.org != cluster.local",
                    ErrorKind::PeerIdentity});
    rows.push_back({"client certificate without a SPIFFE SAN",
                    connect(w.raw_leaf("https://example.org/x"), w.raw_leaf(server_uri), {server_uri}),
                    false, "peer sent fatal alert: handshake failure",
                    "client certificate has no SPIFFE URI SAN (URI SANs: [https://example.org/x])",
                    ErrorKind::PeerIdentity});
    rows.push_back({"server certificate without EKU serverAuth",
                    connect(w.raw_leaf(kClient.to_string()),
                            w.raw_leaf(server_uri, /*server_auth=*/false, /*client_auth=*/true), {server_uri}),
                    true, "certificate chain: unsupported certificate purpose (depth 0, " + server_uri + ")",
                    "peer sent fatal alert: unsupported certificate"});
    rows.push_back({"client certificate without EKU clientAuth",
                    connect(w.raw_leaf(kClient.to_string(), /*server_auth=*/true, /*client_auth=*/false),
                            w.raw_leaf(server_uri), {server_uri}),
                    false, "peer sent fatal alert: unsupported certificate",
                    "certificate chain: unsupported certificate purpose (depth 0, " + kClient.to_string() + ")"});

    for (const auto& row : rows) {
      CAPTURE(row.name);
      const auto& out = row.run.outcome;
      INFO(out.describe());
      CHECK_FALSE(out.client.exchange_ok);
      CHECK_FALSE(out.server.exchange_ok);
      if (row.client_refuses) {
        // The client judges the server before sending its own Finished: neither handshake completes.
        CHECK_FALSE(out.client.handshake_ok);
        CHECK_FALSE(out.server.handshake_ok);
      } else {
        CHECK_FALSE(out.server.handshake_ok);
      }
      CHECK(contains(out.client.reason, row.client_reason));
      CHECK(contains(out.server.reason, row.server_reason));
      CHECK(verify_failure_kind(row.client_refuses ? row.run.client.get() : row.run.server.get()) == row.kind);
    }
  }
}

// BoringSSL offers and prefers CHACHA20-POLY1305 first when the CPU has no AES instructions, and its TLS 1.3
// suites cannot be configured. This case only runs on such a CPU (or with AES-NI masked, see the next case):
// two of our peers then negotiate ChaCha20 and the server's policy check must refuse it.
TEST_SUITE("common/tls/tls_context") {
  TEST_CASE("ChaCha20 negotiation is refused (host without AES hardware)" *
            doctest::skip(EVP_has_aes_hardware() != 0)) {
    World w;
    auto run = connect(w.client, w.server, {kServer.to_string()});
    INFO(run.outcome.describe());
    CHECK_FALSE(run.outcome.server.handshake_ok);
    CHECK(run.outcome.server.reason == "cipher TLS_CHACHA20_POLY1305_SHA256 is not allowed (AES-GCM only)");
    CHECK(contains(run.outcome.client.reason, "peer sent fatal alert: "));
  }

  TEST_CASE("ChaCha20 refusal, re-run with AES-NI masked (OPENSSL_ia32cap) in a child process" *
            doctest::skip(EVP_has_aes_hardware() == 0)) {
    // Bit 57 of OPENSSL_ia32cap is CPUID.1:ECX.AESNI; BoringSSL reads the mask once at start-up.
    char self[4096] = {};
    REQUIRE(readlink("/proc/self/exe", self, sizeof self - 1) > 0);
    const std::string cmd = fmt::format(
        "OPENSSL_ia32cap='~0x200000000000000' '{}' --no-version "
        "--test-case='ChaCha20 negotiation is refused (host without AES hardware)' 2>&1",
        self);
    FILE* child = popen(cmd.c_str(), "r");
    REQUIRE(child != nullptr);
    std::string output;
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof buf, child)) output.append(buf, n);
    const int status = pclose(child);
    INFO(output);
    CHECK(status == 0);
    // Ran (not skipped: AES-NI really was masked) and passed. doctest pads its counters with spaces.
    std::string compact = output;
    compact.erase(std::remove(compact.begin(), compact.end(), ' '), compact.end());
    CHECK(contains(compact, "testcases:1|1passed|0failed|"));
  }
}
