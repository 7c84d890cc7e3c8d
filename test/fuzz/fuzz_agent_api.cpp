// fuzz_agent_api: the bodies the node agent's API parses (cni/api/api_server.h), as its handlers do:
//   POST /cmdadd  pod_spec_from_cmdadd(body)                       (cni/api/cmdadd.h)
//   POST /enroll  parse_json(body) then pod_spec_from_json(doc, "")  (cni/api/pod_json.h)
// Both run on every input (a body either route could receive).
//
// Invariants:
//  - errors are Parse (JSON syntax) or InvalidArgument, with a context that is valid UTF-8 (it goes
//    back to the client inside the JSON reply {"error":..});
//  - an accepted spec passes validate_pod_spec;
//  - round trips: cmdadd_to_json of an accepted /cmdadd spec parses to the same spec, and
//    pod_spec_to_json of an accepted /enroll spec too.
#include <cstdint>

#include <boost/json/serialize.hpp>

#include "cni/api/cmdadd.h"
#include "cni/api/json_fields.h"
#include "cni/api/pod_json.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using namespace ambient::cni;

void check_body_error(const Error& e) {
  fuzz::check_error(e, {ErrorKind::Parse, ErrorKind::InvalidArgument});
  FUZZ_CHECK(fuzz::is_valid_utf8(e.context), "error context is not UTF-8: {}", e.context);
}

void fuzz_cmdadd(std::string_view body) {
  auto spec = pod_spec_from_cmdadd(body);
  if (!spec) return check_body_error(spec.error());
  FUZZ_CHECK(validate_pod_spec(*spec).has_value(), "/cmdadd accepted an invalid spec");
  FUZZ_CHECK(!spec->options.dns_capture.has_value(), "/cmdadd has no dnsCapture");
  const CmdAddRequest request{.netns = spec->netns,
                              .pod_name = spec->name,
                              .pod_namespace = spec->namespace_,
                              .pod_uid = spec->uid,
                              .service_account = spec->service_account,
                              .addresses = spec->ips};
  auto again = pod_spec_from_cmdadd(cmdadd_to_json(request));
  FUZZ_CHECK(again.has_value(), "re-encoded /cmdadd does not parse: {}", again.error().context);
  FUZZ_CHECK(*again == *spec, "/cmdadd round trip changed pod {}", spec->uid);
}

void fuzz_enroll(std::string_view body) {
  auto doc = parse_json(body, "body");
  if (!doc) return check_body_error(doc.error());
  auto spec = pod_spec_from_json(*doc, "");
  if (!spec) return check_body_error(spec.error());
  FUZZ_CHECK(validate_pod_spec(*spec).has_value(), "/enroll accepted an invalid spec");
  auto doc2 = parse_json(boost::json::serialize(pod_spec_to_json(*spec)), "again");
  FUZZ_CHECK(doc2.has_value(), "pod_spec_to_json is not JSON: {}", doc2.error().context);
  auto again = pod_spec_from_json(*doc2, "");
  FUZZ_CHECK(again.has_value(), "re-encoded /enroll does not parse: {}", again.error().context);
  FUZZ_CHECK(*again == *spec, "/enroll round trip changed pod {}", spec->uid);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const CmdAddRequest add{.netns = "/var/run/netns/cni-1234",
                          .pod_name = "web-0",
                          .pod_namespace = "default",
                          .pod_uid = "5f0c1b2e-8a1d-4c3e-9f00-123456789abc",
                          .service_account = "web",
                          .addresses = {"10.0.0.5/24", "fd00::5/64"}};
  PodSpec enroll{.uid = "5f0c1b2e-8a1d-4c3e-9f00-123456789abc",
                 .name = "web-0",
                 .namespace_ = "default",
                 .service_account = "web",
                 .netns = "/var/run/netns/cni-1234",
                 .ips = {"10.0.0.5", "fd00::5"},
                 .options = {.dns_capture = true}};
  fuzz::write_seeds_if_asked({
      {"cmdadd", cmdadd_to_json(add)},
      // As Istio's plugin sends it: Go's field names, the CNI result's lower-case "address", Go's net.IPNet.
      {"cmdadd_go",
       R"({"Netns":"/var/run/netns/cni-1","PodName":"web-0","PodNamespace":"default","PodUID":"u-1",)"
       R"("IPs":[{"Interface":0,"address":"10.0.0.5/24","Gateway":"10.0.0.1"},)"
       R"({"Address":{"IP":"fd00::5","Mask":"//////////8AAAAAAAAAAA=="}}],"IgnoreMe":null})"},
      {"enroll", boost::json::serialize(pod_spec_to_json(enroll))},
      {"enroll_minimal", R"({"uid":"u-1","name":"a","namespace":"b","netns":"/proc/1/ns/net"})"},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = fuzz::as_text(data, size);
  fuzz_cmdadd(body);
  fuzz_enroll(body);
  return 0;
}
