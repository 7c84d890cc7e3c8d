#include "cni/agent/agent_cli.h"

#include <boost/json.hpp>

#include "cni/api/api_client.h"
#include "cni/api/paths.h"
#include "cni/api/pod.h"
#include "cni/api/pod_json.h"
#include "cni/zds/zds_server.h"
#include "common/base/config.h"
#include "common/net/endpoint.h"

namespace ambient::cni {

namespace {

// "a, b,,c" -> {"a", "b", "c"}.
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, end - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(std::move(item));
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string top_usage() {
  return "usage: cni-agent <verb> [flags]\n"
         "  run        the node agent daemon (ZDS server for ztunnel, API socket for the CNI plugin and this CLI)\n"
         "  enroll     add a running pod to the mesh: --uid --name --namespace [--service-account] --netns PATH [--ips a,b]\n"
         "  unenroll   remove a pod from the mesh: --uid\n"
         "  pods       list the pods this node's agent enrolled\n"
         "Each verb takes --help.\n";
}

Result<AgentRunConfig> parse_run_config(int argc, const char* const* argv, std::string* help) {
  config::Options o;
  o.add({"zds-socket", "ZTUNNEL_UDS_ADDRESS", kDefaultZdsSocketPath, "ZDS socket ztunnel connects to (SOCK_SEQPACKET)"})
      .add({"api-socket", "AGENT_SOCKET", std::string(kDefaultAgentSocketPath), "the agent's API socket (CNI plugin, CLI)"})
      .add({"state-dir", "AGENT_STATE_DIR", std::string(kDefaultStateDir), "where pods.json, the record of enrolled pods, lives"})
      .add({"rules", "AGENT_RULES_BACKEND", "iptables", "in-pod rules: iptables (iptables-restore --noflush) or nftables"})
      .add({"native-nftables", "NATIVE_NFTABLES", "false", "Istio's switch for the nftables backend (same as --rules nftables)"})
      .add({"dns-capture", "AMBIENT_DNS_CAPTURE", "false", "redirect pod DNS to ztunnel's 15053 (needs a DNS proxy there)"})
      .add({"ipv6", "AMBIENT_IPV6", "false", "also install the IPv6 rules (ip6tables)"})
      .add({"syn-only", "AMBIENT_SYN_ONLY", "true",
            "redirect only connections that start after enrollment (false: Istio's exact rules, which reset a running pod's open connections)"})
      .add({"reconcile", "AMBIENT_RECONCILE_POD_RULES_ON_STARTUP", "true", "re-check and repair known pods' rules at start-up"})
      .add({"pod-source", "POD_SOURCE", "api", "api (pods from the CNI plugin and the CLI only) | kubernetes (also watch this node's pods)"})
      .add({"kube-api", "KUBE_API_URL", "", "API server https://host:port; empty = in-cluster (KUBERNETES_SERVICE_HOST/_PORT)"})
      .add({"kube-token", "KUBE_TOKEN_FILE", std::string(kube::kServiceAccountTokenFile), "bearer token file (re-read per connection)"})
      .add({"kube-ca", "KUBE_CA_FILE", std::string(kube::kServiceAccountCaFile), "roots the API server's certificate must chain to"})
      .add({"node-name", "NODE_NAME", "", "this node's name: whose pods are watched"})
      .add({"enablement-selector", "AMBIENT_ENABLEMENT_SELECTOR", "",
            "YAML list of {podSelector, namespaceSelector} terms selecting pods for the mesh; empty = Istio's default"})
      .add({"exclude-namespaces", "EXCLUDE_NAMESPACES", "kube-system", "namespaces never enrolled, comma-separated"})
      .add({"system-namespace", "SYSTEM_NAMESPACE", "istio-system", "the namespace of the ztunnel pod (never enrolled)"})
      .add({"host-mounts-path", "HOST_MOUNTS_PATH", "", "where the host's paths are mounted (/host in the agent's pod): /proc, CNI netns paths"})
      .add({"readiness", "AGENT_READINESS_ADDRESS", "", "GET /readyz server; empty = [::]:8000 with --pod-source=kubernetes, none otherwise; 'none' = off"})
      .add({"daemonset-name", "CNI_DAEMONSET_NAME", "istio-cni-node", "the agent's DaemonSet: the plugin is uninstalled on shutdown only when it is deleted"})
      .add({"pod-namespace", "POD_NAMESPACE", "", "the agent's namespace (its DaemonSet's); empty = SYSTEM_NAMESPACE"})
      .add({"log-level", "LOG_LEVEL", "info", "trace|debug|info|warn|error"});
  install::add_install_options(o);  // INSTALL_CNI, CNI_BIN_DIR, CNI_BIN_TARGET_DIRS, MOUNTED_CNI_NET_DIR, CNI_CONF_NAME, ...
  AMBIENT_TRY(o.parse(argc, argv));
  if (o.help_requested()) {
    *help = o.usage("cni-agent run");
    return AgentRunConfig{};
  }
  if (!o.positional().empty()) return errorf(ErrorKind::InvalidArgument, "cni-agent run: unexpected argument '{}'", o.positional().front());
  AgentRunConfig c;
  c.agent.zds.path = o.get("zds-socket");
  c.api.socket_path = o.get("api-socket");
  const std::string dir = o.get("state-dir");
  if (dir.empty() || dir.front() != '/') return errorf(ErrorKind::InvalidArgument, "--state-dir '{}' must be an absolute path", dir);
  c.agent.store.path = dir + "/pods.json";
  const std::string backend = o.get("rules");
  auto native = o.boolean("native-nftables");
  if (!native) return std::move(native).error();
  if (backend == "nftables" || *native) c.agent.backend = Backend::Nftables;
  else if (backend != "iptables") return errorf(ErrorKind::InvalidArgument, "--rules '{}' is not iptables or nftables", backend);
  auto dns = o.boolean("dns-capture");
  if (!dns) return std::move(dns).error();
  c.agent.rules.dns_capture = *dns;
  auto v6 = o.boolean("ipv6");
  if (!v6) return std::move(v6).error();
  c.agent.rules.ipv6 = *v6;
  auto syn_only = o.boolean("syn-only");
  if (!syn_only) return std::move(syn_only).error();
  c.agent.rules.syn_only = *syn_only;
  auto reconcile = o.boolean("reconcile");
  if (!reconcile) return std::move(reconcile).error();
  c.agent.reconcile_rules_on_startup = *reconcile;
  AMBIENT_TRY(validate(c.agent.rules));
  c.log_level = o.get("log-level");

  const std::string source = o.get("pod-source");
  if (source != "api" && source != "kubernetes")
    return errorf(ErrorKind::InvalidArgument, "--pod-source (POD_SOURCE) '{}' is not api or kubernetes", source);
  c.kube.enabled = source == "kubernetes";
  std::string readiness = o.get("readiness");
  if (readiness.empty() && c.kube.enabled) readiness = "[::]:8000";
  if (!readiness.empty() && readiness != "none") {
    auto ep = net::parse_endpoint(readiness);
    if (!ep) return errorf(ErrorKind::InvalidArgument, "--readiness (AGENT_READINESS_ADDRESS) '{}': {}", readiness, ep.error().context);
    c.readiness = *ep;
  }
  const std::string mounts = o.get("host-mounts-path");
  if (!mounts.empty() && (mounts.front() != '/' || mounts.back() == '/'))
    return errorf(ErrorKind::InvalidArgument, "--host-mounts-path (HOST_MOUNTS_PATH) '{}' must be absolute, without a trailing '/'", mounts);
  c.kube.source.host_mounts_path = mounts;

  // Namespaces never enrolled: the watch skips them, the plugin passes their pods through untouched.
  const std::vector<std::string> excluded = split_list(o.get("exclude-namespaces"));
  for (const auto& ns : excluded)
    if (!is_dns1123_label(ns))
      return errorf(ErrorKind::InvalidArgument, "EXCLUDE_NAMESPACES: '{}' is not a namespace name (DNS-1123 label)", ns);

  // The plugin's entry: where the agent listens, how it logs, which namespaces it passes through untouched.
  install::PluginEntry entry;
  entry.agent_socket = c.api.socket_path;
  entry.log_level = c.log_level;
  entry.exclude_namespaces = excluded;
  auto installing = install::install_options_from(o, std::move(entry));
  if (!installing) return std::move(installing).error();
  c.install = std::move(*installing);
  c.daemonset_name = o.get("daemonset-name");
  c.daemonset_namespace = o.get("pod-namespace").empty() ? o.get("system-namespace") : o.get("pod-namespace");
  if (!c.kube.enabled) return c;

  auto api = kube::in_cluster_config(o.get("kube-api"), o.get("kube-token"), o.get("kube-ca"));
  if (!api) return errorf(api.error().kind, "--pod-source=kubernetes: {}", api.error().context);
  c.kube.api = std::move(*api);
  c.kube.source.node_name = o.get("node-name");
  if (c.kube.source.node_name.empty())
    return errorf(ErrorKind::InvalidArgument, "--pod-source=kubernetes needs NODE_NAME (or --node-name): whose pods to watch");
  if (const std::string terms = o.get("enablement-selector"); !terms.empty()) {
    auto parsed = parse_enablement_terms(terms, "AMBIENT_ENABLEMENT_SELECTOR");
    if (!parsed) return std::move(parsed).error();
    c.kube.source.policy.terms = std::move(*parsed);
  }
  c.kube.source.policy.exclude_namespaces = excluded;
  c.kube.source.policy.system_namespace = o.get("system-namespace");
  return c;
}

Result<std::string> run_cli_verb(const std::string& verb, int argc, const char* const* argv, std::string* help) {
  config::Options o;
  o.add({"api-socket", "AGENT_SOCKET", std::string(kDefaultAgentSocketPath), "the agent's API socket"});
  if (verb == "enroll") {
    o.add({"uid", "", "", "the pod's uid (Kubernetes metadata.uid, or any stable id)"})
        .add({"name", "", "", "the pod's name"})
        .add({"namespace", "", "", "the pod's namespace"})
        .add({"service-account", "", "", "the pod's service account (its SPIFFE identity); empty = default"})
        .add({"netns", "", "", "path of the pod's network namespace, e.g. /var/run/netns/<name> or /proc/<pid>/ns/net"})
        .add({"ips", "", "", "the pod's IPs, comma-separated (optional)"});
  } else if (verb == "unenroll") {
    o.add({"uid", "", "", "the pod's uid"});
  } else if (verb != "pods") {
    return errorf(ErrorKind::InvalidArgument, "unknown verb '{}'\n{}", verb, top_usage());
  }
  AMBIENT_TRY(o.parse(argc, argv));
  if (o.help_requested()) {
    *help = o.usage("cni-agent " + verb);
    return std::string();
  }
  ApiClientOptions co;
  co.socket_path = o.get("api-socket");
  co.timeout = std::chrono::seconds(30);  // an enroll waits for the rules and for ztunnel's ack
  ApiClient client(co);
  if (verb == "pods") return client.get("/pods");
  if (verb == "unenroll") {
    if (o.get("uid").empty()) return errorf(ErrorKind::InvalidArgument, "unenroll: --uid is required");
    boost::json::object body;
    body["uid"] = o.get("uid");
    return client.post("/unenroll", boost::json::serialize(body));
  }
  PodSpec spec;
  spec.uid = o.get("uid");
  spec.name = o.get("name");
  spec.namespace_ = o.get("namespace");
  spec.service_account = o.get("service-account");
  spec.netns = o.get("netns");
  for (const char* required : {"uid", "name", "namespace", "netns"})
    if (o.get(required).empty()) return errorf(ErrorKind::InvalidArgument, "enroll: --{} is required", required);
  const std::string ips = o.get("ips");
  for (std::size_t start = 0; start < ips.size();) {
    const auto comma = ips.find(',', start);
    const std::string ip = ips.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!ip.empty()) spec.ips.push_back(ip);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  PodSpecFieldNames names{"--uid", "--name", "--namespace", "--service-account", "--netns", "--ips"};
  AMBIENT_TRY(validate_pod_spec(spec, names));
  return client.post("/enroll", boost::json::serialize(pod_spec_to_json(spec)));
}

}  // namespace ambient::cni
