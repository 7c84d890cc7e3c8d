#pragma once
// The local config file: Istio ztunnel's LOCAL_XDS_PATH / LOCAL_XDS YAML (reference ztunnel.md 4.7,
// istio/ztunnel examples/localhost.yaml), converted into the same protobuf resources xDS delivers,
// so that one SnapshotBuilder serves both sources.
//
// Shape (camelCase; every map refuses unknown keys; a key set to null counts as absent):
//
//   workloads:                       # each becomes Address{workload}
//   - uid: cluster1//v1/Pod/default/a    # required
//     namespace: default                 # required
//     name, serviceAccount, trustDomain, node, network, hostname, clusterId,
//     canonicalName, canonicalRevision, workloadName: <string>
//     workloadIps: ["10.0.0.1", "fd00::1"]
//     protocol: HBONE | TCP                                  (default TCP)
//     networkMode: Standard | HostNetwork
//     workloadType: deployment | cronjob | pod | job
//     status: Healthy | Unhealthy
//     nativeTunnel: <bool>
//     capacity: <1..2^32-1>                                  (absent = 1)
//     waypoint / networkGateway: {destination: "network/IP" | "namespace/hostname", hboneMtlsPort: 15008}
//     applicationTunnel: {protocol: NONE | PROXY, port: <port>}
//     locality: {region, zone, subzone}
//     authorizationPolicies: ["namespace/name", ...]
//     services: {"namespace/hostname": {<service port>: <target port>, ...}, ...}
//   services:                        # each becomes Address{service}
//   - namespace, hostname: <string>      # required
//     name: <string>
//     vips: ["network/IP", "network/IP/len"]
//     ports: {<service port>: <target port>}
//     subjectAltNames: [<string>]
//     waypoint: <as above>
//     loadBalancer: {routingPreferences: [Region|Zone|Subzone|Node|Cluster|Network],
//                    mode: Standard|Strict|Failover|Passthrough, healthPolicy: OnlyHealthy|AllowAll}
//     ipFamilies: Dual | IPv4 | IPv6
//     canonical: <bool>
//     visibility: Public | Namespace
//   policies:                        # each becomes Authorization
//   - name: <string>                     # required
//     namespace: <string>
//     scope: Global | Namespace | WorkloadSelector   # required
//     action: Allow | Deny                           # required
//     dryRun: <bool>
//     rules: [[[<match>, ...], ...], ...]   # rules -> clauses -> matches
//   match: namespaces, notNamespaces, principals, notPrincipals: [{Exact|Prefix|Suffix: x} | {Presence: {}}]
//          serviceAccounts, notServiceAccounts: [{namespace, serviceAccount}]
//          sourceIps, notSourceIps, destinationIps, notDestinationIps: ["10.0.0.0/8" | "10.0.0.1"]
//          destinationPorts, notDestinationPorts: [<port>]
//
// Errors name the source, the 1-based line and the field path:
//   config.yaml:12: workloads[1].workloadIps[0]: "10.0.0.300" is not an IP address
// Only the first YAML document is read. YAML aliases may expand the text to at most 2 x its bytes + 64 Ki nodes
// (and as many bytes of strings); maps and lists nest at most 100 deep (common/state/yaml_walker.h).

#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/state/snapshot_builder.h"
#include "proto/authorization.pb.h"
#include "proto/workload.pb.h"

namespace ambient::state {

struct LocalConfig {
  std::vector<istio::workload::Address> addresses;        // workloads (file order), then services
  std::vector<istio::security::Authorization> policies;   // file order
};

// Parses and validates (resource.h checks included). `source_name` prefixes every error (a path,
// or "LOCAL_XDS" for inline config). Never throws.
Result<LocalConfig> parse_local_config(std::string_view yaml, std::string_view source_name);

// Reads `path` and parses it; errors name the path.
Result<LocalConfig> load_local_config(const std::string& path);

// Replaces the builder's whole content with `config`. All or nothing: on error the builder is unchanged.
Result<void> apply_local_config(const LocalConfig& config, SnapshotBuilder& builder);

}  // namespace ambient::state
