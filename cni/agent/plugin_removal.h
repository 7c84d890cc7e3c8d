#pragma once
// Whether the node agent removes the CNI plugin when it shuts down (Istio's install-cni: the plugin stays during
// an upgrade or a restart, so that pods created meanwhile wait for the agent instead of starting outside the
// mesh; it goes when the DaemonSet itself is deleted, i.e. the CNI is being uninstalled). Pure: the answer of
// GET /apis/apps/v1/namespaces/<ns>/daemonsets/<name> in, a decision and its reason out.
#include <string>

#include <boost/json/value.hpp>

#include "common/base/result.h"

namespace ambient::cni {

struct PluginRemoval {
  bool remove = false;
  std::string reason;
};

// NotFound, or an object with metadata.deletionTimestamp: remove. The DaemonSet is there: keep. Any other error:
// keep (removing the plugin by mistake would let new pods start unmeshed; keeping it only delays them).
PluginRemoval decide_plugin_removal(const Result<boost::json::value>& daemonset, const std::string& what);

}  // namespace ambient::cni
