// fuzz_kube_objects: a Pod or Namespace object as the API server sends it (JSON), read by the node agent's
// kube_pod_from_json / kube_namespace_from_json (cni/agent/kube_objects.h), then decided on with Istio's
// default enablement terms (cni/agent/enablement.h).
//
// Invariants:
//  - errors are InvalidArgument or ResourceExhausted (too many labels), with a UTF-8 context that names the object;
//  - an accepted pod has non-empty uid, name and namespace, at most kMaxPodIps distinct canonical IPs (each
//    parses back to itself), at most kMaxLabels labels and annotations;
//  - the decision is total and stable: the same pod and labels decide the same way twice, and hostNetwork
//    pods and excluded namespaces are never enrolled.
#include <cstdint>
#include <string>

#include "cni/agent/enablement.h"
#include "cni/agent/kube_objects.h"
#include "cni/api/json_fields.h"
#include "cni/api/pod.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using namespace ambient::cni;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ambient::fuzz::write_seeds_if_asked({
      {"pod", R"({"metadata":{"name":"web-0","namespace":"shop","uid":"8dbc1f65-8b5e-4dd4-a0c1-8a2b4cd1e0f3",)"
              R"("labels":{"istio.io/dataplane-mode":"ambient"},"annotations":{"ambient.istio.io/redirection":"enabled"}},)"
              R"("spec":{"nodeName":"n1","serviceAccountName":"web","hostNetwork":false},)"
              R"("status":{"phase":"Running","podIP":"10.0.0.7","podIPs":[{"ip":"10.0.0.7"},{"ip":"fd00::7"}]}})"},
      {"namespace", R"({"metadata":{"name":"shop","labels":{"istio.io/dataplane-mode":"ambient"}}})"},
      {"terminating", R"({"metadata":{"name":"a","namespace":"kube-system","uid":"u","deletionTimestamp":"x"},"status":{"phase":"Failed"}})"},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto doc = parse_json(ambient::fuzz::as_text(data, size), "object");
  if (!doc || !doc->is_object()) return 0;
  const auto& object = doc->as_object();

  auto ns = kube_namespace_from_json(object);
  if (!ns) {
    ambient::fuzz::check_error(ns.error(), {ErrorKind::InvalidArgument, ErrorKind::ResourceExhausted});
    FUZZ_CHECK(ns.error().context.starts_with("namespace "), "namespace error without the object: {}", ns.error().context);
  } else {
    FUZZ_CHECK(!ns->name.empty(), "namespace without a name accepted");
    FUZZ_CHECK(ns->labels.size() <= kMaxLabels, "too many namespace labels kept");
  }

  auto pod = kube_pod_from_json(object);
  if (!pod) {
    ambient::fuzz::check_error(pod.error(), {ErrorKind::InvalidArgument, ErrorKind::ResourceExhausted});
    FUZZ_CHECK(pod.error().context.starts_with("pod "), "pod error without the object: {}", pod.error().context);
    return 0;
  }
  FUZZ_CHECK(!pod->uid.empty() && !pod->name.empty() && !pod->namespace_.empty(), "pod without uid/name/namespace accepted");
  FUZZ_CHECK(pod->ips.size() <= kMaxPodIps, "{} pod IPs kept", pod->ips.size());
  for (std::size_t i = 0; i < pod->ips.size(); ++i) {
    auto again = canonical_ip(pod->ips[i]);
    FUZZ_CHECK(again && *again == pod->ips[i], "pod IP {} is not canonical", pod->ips[i]);
    for (std::size_t j = 0; j < i; ++j) FUZZ_CHECK(pod->ips[i] != pod->ips[j], "duplicate pod IP {}", pod->ips[i]);
  }
  FUZZ_CHECK(pod->labels.size() <= kMaxLabels && pod->annotations.size() <= kMaxLabels, "too many labels kept");

  const EnablementPolicy policy;
  const Labels ns_labels = ns ? ns->labels : Labels{};
  const PodLabelsView view{pod->namespace_, pod->labels, pod->annotations, pod->host_network};
  const auto first = decide_enablement(view, ns_labels, policy);
  FUZZ_CHECK(first == decide_enablement(view, ns_labels, policy), "the decision is not stable");
  FUZZ_CHECK(!first.reason.empty(), "a decision without a reason");
  if (pod->host_network || pod->namespace_ == "kube-system") FUZZ_CHECK(!first.enroll, "hostNetwork or excluded pod enrolled");
  return 0;
}
