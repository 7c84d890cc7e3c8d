#include "cni/agent/plugin_removal.h"

#include <fmt/format.h>

namespace ambient::cni {

PluginRemoval decide_plugin_removal(const Result<boost::json::value>& daemonset, const std::string& what) {
  if (!daemonset) {
    if (daemonset.error().kind == ErrorKind::NotFound) return {true, fmt::format("{} is gone", what)};
    return {false, fmt::format("cannot tell whether {} is being deleted ({}): the plugin stays", what, daemonset.error().message())};
  }
  const auto* object = daemonset->if_object();
  const auto* metadata = object != nullptr ? object->if_contains("metadata") : nullptr;
  if (metadata != nullptr && metadata->is_object() && metadata->as_object().if_contains("deletionTimestamp") != nullptr &&
      !metadata->as_object().at("deletionTimestamp").is_null())
    return {true, fmt::format("{} is being deleted", what)};
  return {false, fmt::format("{} is still there (an upgrade or a restart): the plugin stays", what)};
}

}  // namespace ambient::cni
