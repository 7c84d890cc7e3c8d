// Golden bytes for proto/ca.proto (istio.v1.auth): the CSR request ztunnel sends must be
// byte-identical to what istiod decodes; istiod's response must land where ztunnel reads it.
#include <doctest/doctest.h>
#include <google/protobuf/descriptor.h>

#include <string>

#include "proto/ca.pb.h"
#include "test/proto/wire.h"

using wire::len;
using wire::num;

TEST_SUITE("proto/ca") {
  TEST_CASE("IstioCertificateRequest{csr = 1, validity_duration = 3, metadata = 4}") {
    istio::v1::auth::IstioCertificateRequest req;
    req.set_csr("-----BEGIN CERTIFICATE REQUEST-----\n...\n");
    req.set_validity_duration(86400);
    (*req.mutable_metadata()->mutable_fields())["ImpersonatedIdentity"].set_string_value(
        "spiffe://cluster.local/ns/ns1/sa/sa-a");

    // Struct{fields = 1: map entry{key = 1, value = 2: Value{string_value = 3}}}
    const std::string metadata =
        len(1, len(1, "ImpersonatedIdentity") +
                   len(2, len(3, "spiffe://cluster.local/ns/ns1/sa/sa-a")));
    const std::string expected =
        len(1, "-----BEGIN CERTIFICATE REQUEST-----\n...\n") + num(3, 86400) + len(4, metadata);
    CHECK(wire::serialize(req) == expected);
  }

  TEST_CASE("IstioCertificateResponse{cert_chain = 1, root_cert = 2}") {
    istio::v1::auth::IstioCertificateResponse resp;
    const std::string bytes = len(1, "LEAF") + len(1, "INTERMEDIATE") + len(1, "ROOT1ROOT2") +
                              len(2, len(1, "ROOT1") + len(1, "ROOT2"));  // Roots{ca_cert = 1}
    REQUIRE(resp.ParseFromString(bytes));
    CHECK(resp.GetReflection()->GetUnknownFields(resp).empty());
    REQUIRE(resp.cert_chain_size() == 3);
    CHECK(resp.cert_chain(0) == "LEAF");
    CHECK(resp.cert_chain(1) == "INTERMEDIATE");
    CHECK(resp.cert_chain(2) == "ROOT1ROOT2");
    REQUIRE(resp.root_cert().ca_cert_size() == 2);
    CHECK(resp.root_cert().ca_cert(0) == "ROOT1");
    CHECK(resp.root_cert().ca_cert(1) == "ROOT2");

    REQUIRE(resp.ParseFromString(len(1, "LEAF")));
    CHECK_FALSE(resp.has_root_cert());
  }

  TEST_CASE("gRPC method path") {
    const auto* svc =
        istio::v1::auth::IstioCertificateRequest::descriptor()->file()->FindServiceByName(
            "IstioCertificateService");
    REQUIRE(svc != nullptr);
    const auto* m = svc->FindMethodByName("CreateCertificate");
    REQUIRE(m != nullptr);
    CHECK("/" + svc->full_name() + "/" + m->name() ==
          "/istio.v1.auth.IstioCertificateService/CreateCertificate");
    CHECK_FALSE(m->client_streaming());
    CHECK_FALSE(m->server_streaming());
  }
}
