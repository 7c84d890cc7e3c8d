#pragma once
// JSON forms of PodSpec and PodRecord: the body of POST /enroll, the entries of GET /pods and of the
// store's file. Keys are camelCase as in Kubernetes objects:
//
//   PodSpec:   {"uid":"..","name":"..","namespace":"..","serviceAccount":"..","netns":"/var/run/netns/x",
//               "ips":["10.0.0.5"],"dnsCapture":false}
//              serviceAccount, ips and dnsCapture are optional; unknown keys are refused (typos).
//   PodRecord: {"spec":{PodSpec},"netnsId":{"dev":N,"ino":N},"status":"pending|enabled",
//               "source":"enroll|cni","createdAtMs":N,"updatedAtMs":N}
//
// Parsing validates (validate_pod_spec) and canonicalizes IP texts; errors name the field with its
// path, e.g. "pods[3].spec.namespace: ...".
#include <string>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "cni/api/pod.h"
#include "common/base/result.h"

namespace ambient::cni {

boost::json::object pod_spec_to_json(const PodSpec& spec);
boost::json::object pod_record_to_json(const PodRecord& record);

// `path` prefixes field names in errors ("" at the top level of a request body).
Result<PodSpec> pod_spec_from_json(const boost::json::value& v, const std::string& path);
Result<PodRecord> pod_record_from_json(const boost::json::value& v, const std::string& path);

}  // namespace ambient::cni
