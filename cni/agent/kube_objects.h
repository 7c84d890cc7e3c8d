#pragma once
// The fields of Kubernetes Pod and Namespace objects (API JSON) the node agent decides on. Pure parsing with
// errors naming the object and the field ("pod default/web-0: status.podIPs[1].ip: expected a string, got 7").
// Everything else in the objects is ignored. Bounded: at most kMaxLabels labels and kMaxLabels annotations
// are kept (a pod with more is refused: Kubernetes allows 256 KiB of annotations, the agent needs a handful).
#include <cstddef>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "cni/agent/enablement.h"
#include "common/base/result.h"

namespace ambient::cni {

inline constexpr std::size_t kMaxLabels = 512;

struct KubePod {
  std::string uid, name, namespace_;  // metadata
  std::string resource_version;
  Labels labels, annotations;
  bool terminating = false;           // metadata.deletionTimestamp is set
  std::string service_account;        // spec.serviceAccountName ("" = default)
  std::string node_name;              // spec.nodeName
  bool host_network = false;          // spec.hostNetwork
  std::string phase;                  // status.phase: Pending, Running, Succeeded, Failed, Unknown
  std::vector<std::string> ips;       // status.podIPs[].ip, else status.podIP; canonical text

  // Succeeded or Failed: its containers are gone for good (Istio removes such pods from the mesh).
  bool terminal() const { return phase == "Succeeded" || phase == "Failed"; }
  std::string key() const { return namespace_ + "/" + name; }
};

struct KubeNamespace {
  std::string name;
  Labels labels;
};

Result<KubePod> kube_pod_from_json(const boost::json::object& pod);
Result<KubeNamespace> kube_namespace_from_json(const boost::json::object& ns);

}  // namespace ambient::cni
