// IstioCaClient: the request it builds and the response checks as tables (pure), then the I/O failures
// that can be produced without an Istio CA: connection refused, TLS verification, a gRPC server that does
// not serve the CA (grpc-test-server), connection reuse and one dial shared by concurrent fetches.
// The end-to-end test against fake-istiod's CA lives with fake-istiod.
#include "common/identity/istio_ca_client.h"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/identity/local_ca_source.h"
#include "common/tls/ca.h"
#include "common/tls/pki.h"
#include "test/common/grpc/grpc_fixture.h"

using namespace ambient;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using istio::v1::auth::IstioCertificateResponse;

namespace {

const tls::SpiffeId kId{"cluster.local", "demo", "a"};
const tls::SpiffeId kOther{"cluster.local", "demo", "b"};

template <typename T>
T must(Result<T> r) {
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message()));
  return std::move(r).value();
}

IstioCertificateResponse response_of(std::vector<std::string> chain) {
  IstioCertificateResponse r;
  for (auto& c : chain) r.add_cert_chain(std::move(c));
  return r;
}

// A root -> intermediate -> leaf chain made with sign_certificate (the built-in CA has no intermediates).
struct ThreeLevel {
  bssl::UniquePtr<EVP_PKEY> root_key, int_key;
  bssl::UniquePtr<X509> root, intermediate;
  explicit ThreeLevel() {
    const auto now = std::chrono::system_clock::now();
    root_key = must(tls::generate_p256_key());
    int_key = must(tls::generate_p256_key());
    tls::CertificateSpec ca;
    ca.is_ca = true;
    ca.organization = "root";
    ca.not_before = now - 1h;
    ca.not_after = now + 24h;
    root = must(tls::sign_certificate(ca, root_key.get(), nullptr, nullptr));
    ca.organization = "intermediate";
    intermediate = must(tls::sign_certificate(ca, int_key.get(), root.get(), root_key.get()));
  }
  std::string leaf_pem(EVP_PKEY* key, const tls::SpiffeId& id) const {
    tls::CertificateSpec spec;
    spec.uri_sans = {id.to_string()};
    spec.not_before = std::chrono::system_clock::now() - 1min;
    spec.not_after = std::chrono::system_clock::now() + 1h;
    return must(tls::certificate_to_pem(must(tls::sign_certificate(spec, key, intermediate.get(), int_key.get())).get()));
  }
};

}  // namespace

TEST_SUITE("common/identity/istio_ca_client") {
  TEST_CASE("build_certificate_request") {
    struct Row {
      const char* name;
      bool impersonate;
      std::int64_t ttl;
    };
    const Row rows[] = {{"dedicated: no metadata", false, 86400}, {"shared: ImpersonatedIdentity", true, 3600}};
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto req = identity::build_certificate_request("CSR PEM", kId, std::chrono::seconds(row.ttl), row.impersonate);
      CHECK(req.csr() == "CSR PEM");
      CHECK(req.validity_duration() == row.ttl);
      if (row.impersonate) {
        REQUIRE(req.metadata().fields().size() == 1);
        const auto& v = req.metadata().fields().at("ImpersonatedIdentity");
        CHECK(v.string_value() == "spiffe://cluster.local/ns/demo/sa/a");
      } else {
        CHECK_FALSE(req.has_metadata());
      }
      // Wire facts (reference ztunnel.md 5): csr = 1, validity_duration = 3, metadata = 4.
      std::string bytes;
      REQUIRE(req.SerializeToString(&bytes));
      CHECK(static_cast<unsigned char>(bytes[0]) == ((1 << 3) | 2));
    }
  }

  TEST_CASE("the CSR a fetch sends: one URI SAN, our key") {
    auto key = must(tls::generate_p256_key());
    auto csr = must(tls::make_csr_pem(key.get(), kId));
    auto verified = must(tls::verify_csr_pem(csr));
    CHECK(verified.uri_san == kId.to_string());
    CHECK(EVP_PKEY_cmp(verified.public_key.get(), key.get()) == 1);
  }

  TEST_CASE("check_certificate_response") {
    auto ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h));
    auto other_ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h));
    auto expired_ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h));
    expired_ca.set_clock([] { return std::chrono::system_clock::now() - 48h; });
    const ThreeLevel three;

    struct Row {
      std::string name;
      IstioCertificateResponse response;
      bssl::UniquePtr<EVP_PKEY> key;  // the key "our CSR" had
      const char* error_part;         // nullptr = accepted
      std::size_t chain_len = 1, roots_len = 1;
    };
    std::vector<Row> rows;
    auto signed_for = [&](const tls::CertificateAuthority& signer, const tls::SpiffeId& csr_id, EVP_PKEY* key) {
      return must(signer.sign_csr(must(tls::make_csr_pem(key, csr_id)), std::nullopt, 3600s));
    };
    {
      auto key = must(tls::generate_p256_key());
      auto chain = signed_for(ca, kId, key.get());
      rows.push_back({"good: leaf + root", response_of(chain), std::move(key), nullptr});
    }
    {
      auto key = must(tls::generate_p256_key());
      auto leaf = three.leaf_pem(key.get(), kId);
      rows.push_back({"good: leaf + intermediate + root",
                      response_of({leaf, must(tls::certificate_to_pem(three.intermediate.get())),
                                   must(tls::certificate_to_pem(three.root.get()))}),
                      std::move(key), nullptr, 2, 1});
    }
    {
      auto key = must(tls::generate_p256_key());
      auto chain = signed_for(ca, kId, key.get());
      auto resp = response_of({chain[0]});
      resp.mutable_root_cert()->add_ca_cert(chain[1]);
      resp.mutable_root_cert()->add_ca_cert(other_ca.root_pem());
      rows.push_back({"good: roots in root_cert (two)", std::move(resp), std::move(key), nullptr, 1, 2});
    }
    {
      auto key = must(tls::generate_p256_key());
      auto chain = signed_for(ca, kId, key.get());
      chain.back() += other_ca.root_pem();  // several roots in the last element
      rows.push_back({"good: two roots concatenated in the last element", response_of(chain), std::move(key), nullptr, 1, 2});
    }
    {
      auto key = must(tls::generate_p256_key());
      rows.push_back({"wrong SAN", response_of(signed_for(ca, kOther, key.get())), std::move(key),
                      "is for [spiffe://cluster.local/ns/demo/sa/b], not the requested spiffe://cluster.local/ns/demo/sa/a"});
    }
    {
      auto key = must(tls::generate_p256_key());
      auto chain = signed_for(ca, kId, key.get());
      rows.push_back({"key mismatch", response_of(chain), must(tls::generate_p256_key()), "does not certify the key of our CSR"});
    }
    {
      auto key = must(tls::generate_p256_key());
      auto chain = signed_for(ca, kId, key.get());
      chain.back() = other_ca.root_pem();
      rows.push_back({"chain does not verify to the response's roots", response_of(chain), std::move(key),
                      "does not verify to the 1 root(s) of the response"});
    }
    {
      auto key = must(tls::generate_p256_key());
      auto leaf = three.leaf_pem(key.get(), kId);
      rows.push_back({"intermediate missing", response_of({leaf, must(tls::certificate_to_pem(three.root.get()))}),
                      std::move(key), "does not verify"});
    }
    {
      auto key = must(tls::generate_p256_key());
      rows.push_back({"expired leaf", response_of(signed_for(expired_ca, kId, key.get())), std::move(key), "does not verify"});
    }
    rows.push_back({"empty chain", response_of({}), must(tls::generate_p256_key()), "empty cert_chain"});
    {
      auto key = must(tls::generate_p256_key());
      auto chain = signed_for(ca, kId, key.get());
      rows.push_back({"leaf only, no root", response_of({chain[0]}), std::move(key), "need the leaf, then the root(s) last"});
    }
    {
      auto key = must(tls::generate_p256_key());
      auto chain = signed_for(ca, kId, key.get());
      rows.push_back({"unparsable leaf", response_of({"not a certificate", chain[1]}), std::move(key), "cert_chain[0] (leaf)"});
    }
    {
      auto key = must(tls::generate_p256_key());
      auto chain = signed_for(ca, kId, key.get());
      rows.push_back({"unparsable root", response_of({chain[0], "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
                      std::move(key), "cert_chain[1] (roots)"});
    }

    for (auto& row : rows) {
      CAPTURE(row.name);
      auto r = identity::check_certificate_response(row.response, std::move(row.key), kId, std::chrono::system_clock::now());
      if (row.error_part == nullptr) {
        REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message()));
        CHECK(r->identity()->to_string() == kId.to_string());
        CHECK(r->chain.size() == row.chain_len);
        CHECK(r->roots.size() == row.roots_len);
        CHECK(tls::key_matches_certificate(r->leaf(), r->key.get()));
      } else {
        REQUIRE_FALSE(r.has_value());
        CHECK_MESSAGE(r.error().context.find(row.error_part) != std::string::npos, r.error().context);
      }
    }
  }

  TEST_CASE("LocalCaSource issues synchronously and asynchronously") {
    identity::LocalCaSource source(must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h)));
    auto now = source.fetch_now(kId, 3600s);
    REQUIRE(now.has_value());
    auto key = must(std::move(*now));
    CHECK(key.identity()->to_string() == kId.to_string());
    asio::io_context io(1);
    auto later = must(test::run_coro(io, source.fetch(kId, 3600s)));
    CHECK(later.identity()->to_string() == kId.to_string());
  }
}

// ---- I/O ------------------------------------------------------------------------------------------------

namespace {

std::shared_ptr<const grpc::ChannelTls> roots_from(const std::string& pem) {
  grpc::ChannelTlsOptions o;
  o.roots_pem = pem;
  return std::make_shared<const grpc::ChannelTls>(must(grpc::ChannelTls::create(o)));
}

identity::IstioCaOptions options_for(std::uint16_t port, std::shared_ptr<const grpc::ChannelTls> tls) {
  identity::IstioCaOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.tls = std::move(tls);
  o.connect_timeout = 2s;
  o.call_timeout = 5s;
  return o;
}

}  // namespace

TEST_SUITE("common/identity/istio_ca_client") {
  TEST_CASE("connection refused: a clear error naming the CA") {
    asio::io_context io(1);
    std::uint16_t port = 0;
    {
      asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
      port = a.local_endpoint().port();
    }  // closed: nothing listens there now
    auto ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h));
    identity::IstioCaClient client(io.get_executor(), options_for(port, roots_from(ca.root_pem())));
    auto r = test::run_coro(io, client.fetch(kId, 3600s));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == ErrorKind::ConnectRefused);
    CHECK_MESSAGE(r.error().context.find(fmt::format("CA 127.0.0.1:{}: ", port)) == 0, r.error().context);
    CHECK(client.stats().dials == 1);
    CHECK(client.stats().calls == 0);
    CHECK(client.stats().failures == 1);
    // The next fetch dials again (no connection was kept).
    auto again = test::run_coro(io, client.fetch(kId, 3600s));
    REQUIRE_FALSE(again.has_value());
    CHECK(client.stats().dials == 2);
  }

  TEST_CASE("no roots, unreadable token: refused before any connection") {
    asio::io_context io(1);
    identity::IstioCaClient no_tls(io.get_executor(), options_for(1, nullptr));
    auto r = test::run_coro(io, no_tls.fetch(kId, 3600s));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().context.find("CA_ROOT_CA") != std::string::npos);

    auto ca = must(tls::CertificateAuthority::create_self_signed("cluster.local", 24h));
    auto o = options_for(1, roots_from(ca.root_pem()));
    o.token_path = "/nonexistent/istio-token";
    identity::IstioCaClient no_token(io.get_executor(), std::move(o));
    auto t = test::run_coro(io, no_token.fetch(kId, 3600s));
    REQUIRE_FALSE(t.has_value());
    CHECK(t.error().kind == ErrorKind::NotFound);
    CHECK(t.error().context.find("AUTH_TOKEN file /nonexistent/istio-token") != std::string::npos);
    CHECK(no_token.stats().dials == 0);
  }

  TEST_CASE("against a TLS gRPC server: verification failure; UNIMPLEMENTED over one reused connection") {
    test::ScratchDir dir;
    REQUIRE(!dir.path().empty());
    REQUIRE_MESSAGE(test::make_test_certs(dir).empty(), "openssl CLI failed");
    test::GrpcTestServer server(dir, {"--tls-cert", dir.file("server.pem"), "--tls-key", dir.file("server.key")});
    REQUIRE_MESSAGE(server.started(), server.error());
    asio::io_context io(1);

    SUBCASE("server certificate from another CA: TLS verification error") {
      identity::IstioCaClient client(io.get_executor(), options_for(server.port(), roots_from(test::read_text(dir.file("other-ca.pem")))));
      auto r = test::run_coro(io, client.fetch(kId, 3600s));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().kind == ErrorKind::TlsHandshake);
      CHECK_MESSAGE(r.error().context.find("unable to get local issuer certificate") != std::string::npos, r.error().context);
      CHECK(r.error().context.find(fmt::format("CA 127.0.0.1:{}", server.port())) == 0);
    }

    SUBCASE("ALT_CA_HOSTNAME not in the certificate: TLS verification error") {
      auto o = options_for(server.port(), roots_from(test::read_text(dir.file("ca.pem"))));
      o.server_name = "istiod.istio-system.svc";
      identity::IstioCaClient client(io.get_executor(), std::move(o));
      auto r = test::run_coro(io, client.fetch(kId, 3600s));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().kind == ErrorKind::TlsHandshake);
      CHECK_MESSAGE(r.error().context.find("istiod.istio-system.svc") != std::string::npos, r.error().context);
    }

    SUBCASE("verified server without the CA service: gRPC UNIMPLEMENTED; the connection is reused and shared") {
      auto o = options_for(server.port(), roots_from(test::read_text(dir.file("ca.pem"))));
      const std::string token = dir.file("token");
      std::ofstream(token) << "the-jwt\n";
      o.token_path = token;
      o.cluster_id = "Kubernetes";
      o.headers.push_back({"x-extra", "1"});
      identity::IstioCaClient client(io.get_executor(), std::move(o));
      auto r = test::run_coro(io, client.fetch(kId, 3600s));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().kind == ErrorKind::GrpcStatus);
      CHECK(r.error().code == 12);  // UNIMPLEMENTED: the request reached the server as a gRPC call
      CHECK_MESSAGE(r.error().context.find("IstioCertificateService/CreateCertificate") != std::string::npos, r.error().context);
      CHECK(client.stats().dials == 1);
      // Three concurrent fetches: the live connection serves all of them, no new dial.
      int done = 0;
      for (int i = 0; i < 3; ++i)
        asio::co_spawn(io, [](identity::IstioCaClient& c, int& n) -> asio::awaitable<void> {
          auto x = co_await c.fetch(kId, 3600s);
          CHECK_FALSE(x.has_value());
          ++n;
        }(client, done), asio::detached);
      for (int i = 0; i < 500 && done < 3; ++i) io.run_for(10ms);
      CHECK(done == 3);
      CHECK(client.stats().dials == 1);
      CHECK(client.stats().calls == 4);
      // A closed connection is re-dialed once, however many fetches wait for it.
      client.close();
      done = 0;
      for (int i = 0; i < 3; ++i)
        asio::co_spawn(io, [](identity::IstioCaClient& c, int& n) -> asio::awaitable<void> {
          auto x = co_await c.fetch(kId, 3600s);
          CHECK_FALSE(x.has_value());
          ++n;
        }(client, done), asio::detached);
      for (int i = 0; i < 500 && done < 3; ++i) io.run_for(10ms);
      CHECK(done == 3);
      CHECK(client.stats().dials == 2);
    }
  }
}
