// Which pods are enrolled: Istio's default enablement terms, exclusions, label selectors, and the
// AMBIENT_ENABLEMENT_SELECTOR parser (tables).
#include "cni/agent/enablement.h"

#include <doctest/doctest.h>

#include <string>

using namespace ambient;
using namespace ambient::cni;

TEST_SUITE("cni/agent/enablement") {
  TEST_CASE("Istio's default terms: pod opt-in anywhere, namespace opt-in, pod opt-out, exclusions") {
    struct Row {
      const char* what;
      std::string ns;
      Labels pod_labels, ns_labels, annotations;
      bool host_network;
      bool enroll;
      const char* reason;
    };
    const Labels ambient_ns{{"istio.io/dataplane-mode", "ambient"}};
    const Row rows[] = {
        {"nothing labelled", "default", {}, {}, {}, false, false, "no enablement term matches"},
        {"namespace opt-in", "default", {}, ambient_ns, {}, false, true, "matches enablement term 2"},
        {"pod opt-in, plain namespace", "default", {{"istio.io/dataplane-mode", "ambient"}}, {}, {}, false, true, "matches enablement term 1"},
        {"pod opt-out in an ambient namespace", "default", {{"istio.io/dataplane-mode", "none"}}, ambient_ns, {}, false, false, "no enablement term matches"},
        {"other pod value in an ambient namespace", "default", {{"istio.io/dataplane-mode", "sidecar"}}, ambient_ns, {}, false, true, "matches enablement term 2"},
        {"namespace label none", "default", {}, {{"istio.io/dataplane-mode", "none"}}, {}, false, false, "no enablement term matches"},
        {"hostNetwork pod", "default", {{"istio.io/dataplane-mode", "ambient"}}, ambient_ns, {}, true, false, "hostNetwork pod"},
        {"sidecar-injected pod", "default", {}, ambient_ns, {{"sidecar.istio.io/status", "{}"}}, false, false, "has a sidecar (sidecar.istio.io/status annotation)"},
        {"excluded namespace", "kube-system", {{"istio.io/dataplane-mode", "ambient"}}, ambient_ns, {}, false, false, "namespace kube-system is excluded"},
        {"the ztunnel pod", "istio-system", {{"app", "ztunnel"}}, ambient_ns, {}, false, false, "the ztunnel pod"},
        {"app=ztunnel elsewhere is a pod like any", "default", {{"app", "ztunnel"}}, ambient_ns, {}, false, true, "matches enablement term 2"},
        {"another pod in the system namespace", "istio-system", {{"app", "istiod"}}, ambient_ns, {}, false, true, "matches enablement term 2"},
    };
    const EnablementPolicy policy;
    for (const auto& row : rows) {
      CAPTURE(row.what);
      const auto d = decide_enablement({row.ns, row.pod_labels, row.annotations, row.host_network}, row.ns_labels, policy);
      CHECK(d.enroll == row.enroll);
      CHECK(d.reason == row.reason);
    }
  }

  TEST_CASE("label selectors: matchLabels and every operator") {
    using Op = LabelSelector::Op;
    struct Row {
      LabelSelector selector;
      Labels labels;
      bool matches;
    };
    const Row rows[] = {
        {{}, {}, true},  // the empty selector matches everything
        {{{{"a", "1"}}, {}}, {{"a", "1"}, {"b", "2"}}, true},
        {{{{"a", "1"}}, {}}, {{"a", "2"}}, false},
        {{{{"a", "1"}, {"b", "2"}}, {}}, {{"a", "1"}}, false},
        {{{}, {{"a", Op::In, {"1", "2"}}}}, {{"a", "2"}}, true},
        {{{}, {{"a", Op::In, {"1", "2"}}}}, {}, false},
        {{{}, {{"a", Op::NotIn, {"none"}}}}, {}, true},
        {{{}, {{"a", Op::NotIn, {"none"}}}}, {{"a", "none"}}, false},
        {{{}, {{"a", Op::Exists, {}}}}, {{"a", ""}}, true},
        {{{}, {{"a", Op::Exists, {}}}}, {}, false},
        {{{}, {{"a", Op::DoesNotExist, {}}}}, {}, true},
        {{{}, {{"a", Op::DoesNotExist, {}}}}, {{"a", "x"}}, false},
        {{{{"a", "1"}}, {{"b", Op::Exists, {}}}}, {{"a", "1"}}, false},  // both parts must hold
    };
    int i = 0;
    for (const auto& row : rows) {
      CAPTURE(i++);
      CHECK(row.selector.matches(row.labels) == row.matches);
    }
  }

  TEST_CASE("AMBIENT_ENABLEMENT_SELECTOR: the chart's default YAML parses to the default terms' behaviour") {
    const char* chart_default = R"(
- podSelector:
    matchLabels: {istio.io/dataplane-mode: ambient}
- podSelector:
    matchExpressions:
      - {key: istio.io/dataplane-mode, operator: NotIn, values: [none]}
  namespaceSelector:
    matchLabels: {istio.io/dataplane-mode: ambient}
)";
    auto terms = parse_enablement_terms(chart_default, "AMBIENT_ENABLEMENT_SELECTOR");
    REQUIRE_MESSAGE(terms, (terms ? "" : terms.error().context));
    REQUIRE(terms->size() == 2);
    CHECK_FALSE(terms->at(0).namespace_selector.has_value());
    REQUIRE(terms->at(1).pod_selector.has_value());
    CHECK(terms->at(1).pod_selector->match_expressions.at(0).op == LabelSelector::Op::NotIn);
    EnablementPolicy parsed;
    parsed.terms = *terms;
    const EnablementPolicy builtin;
    const Labels none, ambient{{"istio.io/dataplane-mode", "ambient"}}, opt_out{{"istio.io/dataplane-mode", "none"}};
    for (const Labels* pod : {&none, &ambient, &opt_out})
      for (const Labels* ns : {&none, &ambient, &opt_out}) {
        const PodLabelsView view{"default", *pod, none, false};
        CHECK(decide_enablement(view, *ns, parsed) == decide_enablement(view, *ns, builtin));
      }

    // A custom term: every pod of namespaces labelled team=payments, except jobs.
    auto custom = parse_enablement_terms(R"([{"namespaceSelector": {"matchLabels": {"team": "payments"}},
        "podSelector": {"matchExpressions": [{"key": "job-name", "operator": "DoesNotExist"}]}}])", "env");
    REQUIRE_MESSAGE(custom, (custom ? "" : custom.error().context));
    EnablementPolicy p;
    p.terms = *custom;
    const Labels payments{{"team", "payments"}}, job{{"job-name", "nightly"}};
    CHECK(decide_enablement({"pay", none, none, false}, payments, p).enroll);
    CHECK_FALSE(decide_enablement({"pay", job, none, false}, payments, p).enroll);
    CHECK_FALSE(decide_enablement({"web", none, none, false}, none, p).enroll);
  }

  TEST_CASE("AMBIENT_ENABLEMENT_SELECTOR: bad input is refused with the field and line") {
    struct Row {
      const char* yaml;
      const char* error_part;
    };
    const Row rows[] = {
        {"- podSelector: {matchLabels: {a: b}}\n- podSelector:\n    matchExpressions:\n      - {key: a, operator: Maybe, values: [x]}\n",
         "env:4: [1].podSelector.matchExpressions[0].operator: unknown operator 'Maybe'"},
        {"- podSelector: {matchExpressions: [{key: a, operator: In}]}", "In and NotIn need at least one value"},
        {"- podSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}", "Exists and DoesNotExist take no values"},
        {"- podSelektor: {matchLabels: {a: b}}", "podSelektor"},
        {"- podSelector: {matchExpressions: [{operator: Exists}]}", "key"},
        {"podSelector: {}", "expected a list"},
        {"- podSelector: {matchLabels: [a, b]}", "matchLabels"},
        {"- [unclosed", "invalid YAML"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.yaml);
      auto r = parse_enablement_terms(row.yaml, "env");
      REQUIRE_FALSE(r);
      CHECK_MESSAGE(r.error().context.find(row.error_part) != std::string::npos, r.error().context);
    }
  }
}
