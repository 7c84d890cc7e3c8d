// apply_delta as a table: what a push does to the state, the versions and the ACK/NACK.
#include "common/xds/delta_applier.h"

#include <doctest/doctest.h>

#include <string>

namespace {

using namespace ambient;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using xds::kAddressType;
using xds::kAuthorizationType;

istio::workload::Address workload(const std::string& uid, std::string ip_bytes = std::string("\x0a\x00\x00\x01", 4)) {
  istio::workload::Address a;
  auto* w = a.mutable_workload();
  w->set_uid(uid);
  w->set_name(uid);
  w->set_namespace_("ns");
  w->add_addresses(ip_bytes);
  return a;
}

istio::workload::Address service(const std::string& host) {
  istio::workload::Address a;
  auto* s = a.mutable_service();
  s->set_name(host);
  s->set_namespace_("ns");
  s->set_hostname(host);
  return a;
}

istio::security::Authorization policy(const std::string& name) {
  istio::security::Authorization p;
  p.set_name(name);
  p.set_namespace_("ns");
  p.set_scope(istio::security::NAMESPACE);
  p.set_action(istio::security::DENY);
  return p;
}

template <typename M>
void add(DeltaDiscoveryResponse& r, const std::string& name, const std::string& version, const M& m,
         std::string type_url = {}) {
  auto* res = r.add_resources();
  res->set_name(name);
  res->set_version(version);
  res->mutable_resource()->set_type_url(type_url.empty() ? r.type_url() : type_url);
  m.SerializeToString(res->mutable_resource()->mutable_value());
}

DeltaDiscoveryResponse response(std::string_view type, const std::string& nonce) {
  DeltaDiscoveryResponse r;
  r.set_type_url(std::string(type));
  r.set_nonce(nonce);
  return r;
}

std::string first_address(state::SnapshotBuilder& b, const std::string& uid) {
  auto snap = b.build();
  auto it = snap->workloads().find(uid);
  if (it == snap->workloads().end()) return "<none>";
  return it->second->addresses(0);
}

}  // namespace

TEST_CASE("apply_delta: a good push is applied, versions recorded, ACK echoes the nonce") {
  state::SnapshotBuilder b;
  xds::Versions v;
  auto r = response(kAddressType, "n1");
  add(r, "w1", "v1", workload("w1"));
  add(r, "w2", "v1", workload("w2"));
  add(r, "ns/svc.example", "v7", service("svc.example"));
  auto out = xds::apply_delta(r, b, v);
  CHECK(out.applied == 3);
  CHECK(out.changed());
  CHECK_FALSE(out.nack());
  CHECK(out.reply.response_nonce() == "n1");
  CHECK(out.reply.type_url() == kAddressType);
  CHECK_FALSE(out.reply.has_error_detail());
  CHECK(b.workload_count() == 2);
  CHECK(b.service_count() == 1);
  CHECK(v.at("w1") == "v1");
  CHECK(v.at("ns/svc.example") == "v7");
}

TEST_CASE("apply_delta: bad resources are NACKed by name, the good ones of the same push apply") {
  struct Row {
    const char* what;
    std::function<void(DeltaDiscoveryResponse&)> add_bad;
    const char* reason_part;
  };
  const Row rows[] = {
      {"3-byte address", [](auto& r) { add(r, "bad", "v1", workload("bad", std::string("\x01\x02\x03", 3))); }, "3 bytes"},
      {"name is not the key", [](auto& r) { add(r, "bad", "v1", workload("other")); }, "does not match its key \"other\""},
      {"payload of another type", [](auto& r) { add(r, "bad", "v1", policy("bad"), std::string(kAuthorizationType)); },
       "payload type type.googleapis.com/istio.security.Authorization"},
      {"bytes that do not parse",
       [](auto& r) {
         auto* res = r.add_resources();
         res->set_name("bad");
         res->mutable_resource()->set_type_url(std::string(kAddressType));
         res->mutable_resource()->set_value(std::string("\xff\xff\xff", 3));
       },
       "does not parse"},
      {"no payload", [](auto& r) { r.add_resources()->set_name("bad"); }, "no resource payload"},
      {"empty Address", [](auto& r) { add(r, "bad", "v1", istio::workload::Address{}); }, "neither a workload nor a service"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.what);
    state::SnapshotBuilder b;
    xds::Versions v;
    auto r = response(kAddressType, "n2");
    add(r, "good1", "v1", workload("good1"));
    row.add_bad(r);
    add(r, "good2", "v1", workload("good2"));
    auto out = xds::apply_delta(r, b, v);
    CHECK(out.applied == 2);
    REQUIRE(out.rejected.size() == 1);
    CHECK(out.nack());
    CHECK(out.reply.response_nonce() == "n2");
    CHECK(out.reply.error_detail().code() == 3);
    const std::string msg = out.reply.error_detail().message();
    CHECK(msg.starts_with("bad: "));
    CHECK(msg.find(row.reason_part) != std::string::npos);
    CHECK(b.workload_count() == 2);
    CHECK(v.count("bad") == 0);
    CHECK(v.count("good1") == 1);
  }
}

TEST_CASE("apply_delta: a rejected update keeps the previous version of that resource") {
  state::SnapshotBuilder b;
  xds::Versions v;
  auto r1 = response(kAddressType, "n1");
  add(r1, "w1", "v1", workload("w1"));
  REQUIRE(xds::apply_delta(r1, b, v).applied == 1);
  auto r2 = response(kAddressType, "n2");
  add(r2, "w1", "v2", workload("w1", std::string("\x01\x02\x03", 3)));
  auto out = xds::apply_delta(r2, b, v);
  CHECK(out.nack());
  CHECK_FALSE(out.changed());
  CHECK(v.at("w1") == "v1");
  CHECK(first_address(b, "w1") == std::string("\x0a\x00\x00\x01", 4));
}

TEST_CASE("apply_delta: removed_resources drop workloads, services and policies; unknown names are ignored") {
  state::SnapshotBuilder b;
  xds::Versions va, vp;
  auto r1 = response(kAddressType, "n1");
  add(r1, "w1", "v1", workload("w1"));
  add(r1, "ns/svc.example", "v1", service("svc.example"));
  xds::apply_delta(r1, b, va);
  auto p1 = response(kAuthorizationType, "p1");
  add(p1, "ns/deny-all", "v1", policy("deny-all"));
  CHECK(xds::apply_delta(p1, b, vp).applied == 1);
  CHECK(b.policy_count() == 1);

  auto r2 = response(kAddressType, "n2");
  r2.add_removed_resources("w1");
  r2.add_removed_resources("ns/svc.example");
  r2.add_removed_resources("never-seen");
  auto out = xds::apply_delta(r2, b, va);
  CHECK(out.removed == 2);
  CHECK_FALSE(out.nack());
  CHECK(b.workload_count() == 0);
  CHECK(b.service_count() == 0);
  CHECK(va.empty());

  auto p2 = response(kAuthorizationType, "p2");
  p2.add_removed_resources("ns/deny-all");
  CHECK(xds::apply_delta(p2, b, vp).removed == 1);
  CHECK(b.policy_count() == 0);
  CHECK(vp.empty());
}

TEST_CASE("apply_delta: a type the client did not subscribe to is NACKed whole") {
  state::SnapshotBuilder b;
  xds::Versions v;
  auto r = response("type.googleapis.com/envoy.config.cluster.v3.Cluster", "n9");
  add(r, "w1", "v1", workload("w1"));
  auto out = xds::apply_delta(r, b, v);
  CHECK(out.nack());
  CHECK(out.applied == 0);
  CHECK(b.workload_count() == 0);
  CHECK(out.reply.error_detail().message().find("not a type this client subscribes to") != std::string::npos);
}

TEST_CASE("apply_delta: the NACK message is bounded and says how many reasons it left out") {
  state::SnapshotBuilder b;
  xds::Versions v;
  auto r = response(kAddressType, "n1");
  for (int i = 0; i < 1000; ++i) add(r, "bad-" + std::to_string(i), "v1", workload("other"));
  auto out = xds::apply_delta(r, b, v);
  CHECK(out.rejected.size() == 1000);
  const std::string msg = out.reply.error_detail().message();
  CHECK(msg.size() <= xds::kMaxNackMessage + 32);
  CHECK(msg.find("more)") != std::string::npos);
}
