#pragma once
// /config_dump rendering of a Snapshot, in ztunnel's shape: the same camelCase field names and value
// spellings as the local config file (local_config.h), so a dump reads like the config that made it
// and can be fed back (after dropping the derived `endpoints`).
//
//   {"workloads": [...], "services": [...], "policies": [...]}    each array sorted by resource key
//
// IPs render as text: workloadIps ["10.0.0.1"], vips ["network/10.0.0.1"], gateway destinations
// "network/IP" or "namespace/hostname", policy ranges "10.0.0.0/8". Services carry an `endpoints`
// map (workload uid -> {workloadUid, port, status}) as ztunnel's dump does. Not rendered: extensions,
// Port.app_protocol, weighted_waypoints, ingress_use_waypoint, dns_connect_strategy (the local config
// format has no spelling for them).

#include <string>

#include "common/state/snapshot.h"

namespace ambient::state {

// `pretty`: two-space indentation and newlines (ztunnel's admin output is pretty-printed).
std::string config_dump_json(const Snapshot& snapshot, bool pretty = true);

}  // namespace ambient::state
