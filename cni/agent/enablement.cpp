#include "cni/agent/enablement.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/state/yaml_walker.h"

namespace ambient::cni {

namespace {

bool contains(const std::vector<std::string>& values, std::string_view v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

bool holds(const LabelSelector::Requirement& r, const Labels& labels) {
  const auto it = labels.find(r.key);
  switch (r.op) {
    case LabelSelector::Op::In: return it != labels.end() && contains(r.values, it->second);
    case LabelSelector::Op::NotIn: return it == labels.end() || !contains(r.values, it->second);
    case LabelSelector::Op::Exists: return it != labels.end();
    case LabelSelector::Op::DoesNotExist: return it == labels.end();
  }
  return false;
}

LabelSelector match_label(std::string_view key, std::string_view value) {
  LabelSelector s;
  s.match_labels.emplace(key, value);
  return s;
}

class TermsWalker : public yaml::Walker {
 public:
  using Walker::Walker;

  Result<std::vector<EnablementTerm>> terms(const yaml::At& root) const {
    std::vector<EnablementTerm> out;
    if (!root.n.IsSequence() && !root.n.IsNull())
      return fail(root, fmt::format("expected a list of {{podSelector, namespaceSelector}} terms, got {}", yaml::kind_of(root.n)));
    AMBIENT_TRY(list(root, [&](const yaml::At& elem, std::size_t) -> Result<void> {
      if (out.size() == kMaxEnablementTerms)
        return fail(elem, fmt::format("more than {} terms", kMaxEnablementTerms), ErrorKind::ResourceExhausted);
      EnablementTerm term;
      AMBIENT_TRY(fields(elem, {"podSelector", "namespaceSelector"}, {}, [&](std::string_view key, const yaml::At& v) -> Result<void> {
        auto s = selector(v);
        if (!s) return std::move(s).error();
        (key == "podSelector" ? term.pod_selector : term.namespace_selector) = std::move(*s);
        return ok();
      }));
      out.push_back(std::move(term));
      return ok();
    }));
    return out;
  }

 private:
  Result<LabelSelector> selector(const yaml::At& at) const {
    LabelSelector s;
    AMBIENT_TRY(fields(at, {"matchLabels", "matchExpressions"}, {}, [&](std::string_view key, const yaml::At& v) -> Result<void> {
      if (key == "matchLabels")
        return entries(v, [&](const yaml::At& k, const yaml::At& value) -> Result<void> {
          auto name = str(k);
          if (!name) return std::move(name).error();
          auto text = str(value);
          if (!text) return std::move(text).error();
          s.match_labels[*name] = *text;
          return ok();
        });
      return list(v, [&](const yaml::At& e, std::size_t) -> Result<void> {
        LabelSelector::Requirement r;
        bool has_values = false;
        AMBIENT_TRY(fields(e, {"key", "operator", "values"}, {"key", "operator"}, [&](std::string_view f, const yaml::At& x) -> Result<void> {
          if (f == "values") {
            has_values = true;
            return list(x, [&](const yaml::At& item, std::size_t) -> Result<void> {
              auto text = str(item);
              if (!text) return std::move(text).error();
              r.values.push_back(std::move(*text));
              return ok();
            });
          }
          auto text = str(x);
          if (!text) return std::move(text).error();
          if (f == "key") {
            if (text->empty()) return fail(x, "a label key cannot be empty");
            r.key = std::move(*text);
          } else if (*text == "In") r.op = LabelSelector::Op::In;
          else if (*text == "NotIn") r.op = LabelSelector::Op::NotIn;
          else if (*text == "Exists") r.op = LabelSelector::Op::Exists;
          else if (*text == "DoesNotExist") r.op = LabelSelector::Op::DoesNotExist;
          else return fail(x, fmt::format("unknown operator '{}' (In, NotIn, Exists, DoesNotExist)", *text));
          return ok();
        }));
        const bool set_op = r.op == LabelSelector::Op::In || r.op == LabelSelector::Op::NotIn;
        if (set_op && r.values.empty())
          return fail(e, "In and NotIn need at least one value (Kubernetes refuses an empty values list)");
        if (!set_op && has_values && !r.values.empty())
          return fail(e, "Exists and DoesNotExist take no values");
        s.match_expressions.push_back(std::move(r));
        return ok();
      });
    }));
    return s;
  }
};

}  // namespace

bool LabelSelector::matches(const Labels& labels) const {
  for (const auto& [key, value] : match_labels) {
    const auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return std::all_of(match_expressions.begin(), match_expressions.end(),
                     [&](const Requirement& r) { return holds(r, labels); });
}

std::vector<EnablementTerm> EnablementPolicy::default_terms() {
  EnablementTerm pod_opt_in;
  pod_opt_in.pod_selector = match_label(kDataplaneModeLabel, "ambient");
  EnablementTerm namespace_opt_in;
  LabelSelector not_none;
  not_none.match_expressions.push_back({std::string(kDataplaneModeLabel), LabelSelector::Op::NotIn, {"none"}});
  namespace_opt_in.pod_selector = std::move(not_none);
  namespace_opt_in.namespace_selector = match_label(kDataplaneModeLabel, "ambient");
  return {std::move(pod_opt_in), std::move(namespace_opt_in)};
}

Result<std::vector<EnablementTerm>> parse_enablement_terms(std::string_view yaml_text, std::string_view source) {
  auto doc = yaml::load_document(yaml_text, source);
  if (!doc) return std::move(doc).error();
  TermsWalker walker(source);
  return walker.terms(yaml::At{*doc, "", yaml::line_of(*doc, 1)});
}

EnablementDecision decide_enablement(const PodLabelsView& pod, const Labels& namespace_labels,
                                     const EnablementPolicy& policy) {
  if (pod.host_network) return {false, "hostNetwork pod"};
  if (pod.annotations.contains(kSidecarStatusAnnotation))
    return {false, fmt::format("has a sidecar ({} annotation)", kSidecarStatusAnnotation)};
  if (contains(policy.exclude_namespaces, pod.namespace_))
    return {false, fmt::format("namespace {} is excluded", pod.namespace_)};
  if (pod.namespace_ == policy.system_namespace) {
    const auto app = pod.labels.find("app");
    if (app != pod.labels.end() && app->second == "ztunnel") return {false, "the ztunnel pod"};
  }
  for (std::size_t i = 0; i < policy.terms.size(); ++i) {
    const auto& term = policy.terms[i];
    if (term.pod_selector && !term.pod_selector->matches(pod.labels)) continue;
    if (term.namespace_selector && !term.namespace_selector->matches(namespace_labels)) continue;
    return {true, fmt::format("matches enablement term {}", i + 1)};
  }
  return {false, "no enablement term matches"};
}

}  // namespace ambient::cni
