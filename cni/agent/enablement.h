#pragma once
// Which pods the node agent enrolls: Istio's enablement selectors and exclusions (reference cni-charts.md
// section 1, istio cni/pkg/util/enablement_selector.go). Pure: labels in, a decision with its reason out.
//
// A pod is enrolled when no exclusion holds and at least one term matches: a term is a pod label selector and
// a namespace label selector, both of which must match (an absent selector matches everything). Exclusions,
// whatever the labels: hostNetwork pods, pods with a sidecar (annotation sidecar.istio.io/status), pods in an
// excluded namespace, and the ztunnel pod (label app=ztunnel in the system namespace).
//
// The default terms are the istio-cni chart's (ambient.enablementSelectors):
//   - podSelector: {matchLabels: {istio.io/dataplane-mode: ambient}}
//   - podSelector: {matchExpressions: [{key: istio.io/dataplane-mode, operator: NotIn, values: [none]}]}
//     namespaceSelector: {matchLabels: {istio.io/dataplane-mode: ambient}}
// i.e. a pod label opts in anywhere, a namespace label opts in its pods, a pod label `none` opts out.
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

namespace ambient::cni {

using Labels = std::map<std::string, std::string, std::less<>>;

inline constexpr std::string_view kDataplaneModeLabel = "istio.io/dataplane-mode";
inline constexpr std::string_view kSidecarStatusAnnotation = "sidecar.istio.io/status";

// Kubernetes' LabelSelector (metav1.LabelSelector): matchLabels and matchExpressions, all of which must hold.
struct LabelSelector {
  enum class Op { In, NotIn, Exists, DoesNotExist };
  struct Requirement {
    std::string key;
    Op op = Op::Exists;
    std::vector<std::string> values;  // In/NotIn: at least one; Exists/DoesNotExist: none
  };
  Labels match_labels;
  std::vector<Requirement> match_expressions;

  bool matches(const Labels& labels) const;
};

struct EnablementTerm {
  std::optional<LabelSelector> pod_selector;        // absent = every pod
  std::optional<LabelSelector> namespace_selector;  // absent = every namespace
};

struct EnablementPolicy {
  std::vector<EnablementTerm> terms = default_terms();
  std::vector<std::string> exclude_namespaces{"kube-system"};  // EXCLUDE_NAMESPACES
  std::string system_namespace = "istio-system";                // SYSTEM_NAMESPACE: where the ztunnel pod runs

  static std::vector<EnablementTerm> default_terms();
};

// AMBIENT_ENABLEMENT_SELECTOR: the YAML (or JSON) list of terms the istio-cni chart renders. Unknown fields,
// unknown operators, In/NotIn without values and Exists/DoesNotExist with values are refused with the
// field's path and line ("AMBIENT_ENABLEMENT_SELECTOR:3: [1].podSelector.matchExpressions[0].operator: ...").
// At most kMaxEnablementTerms terms.
inline constexpr std::size_t kMaxEnablementTerms = 64;
Result<std::vector<EnablementTerm>> parse_enablement_terms(std::string_view yaml, std::string_view source);

// What the decision reads from a pod.
struct PodLabelsView {
  std::string_view namespace_;
  const Labels& labels;
  const Labels& annotations;
  bool host_network = false;
};

struct EnablementDecision {
  bool enroll = false;
  std::string reason;  // e.g. "matches enablement term 2", "hostNetwork pod", "no enablement term matches"

  friend bool operator==(const EnablementDecision&, const EnablementDecision&) = default;
};

EnablementDecision decide_enablement(const PodLabelsView& pod, const Labels& namespace_labels,
                                     const EnablementPolicy& policy);

}  // namespace ambient::cni
