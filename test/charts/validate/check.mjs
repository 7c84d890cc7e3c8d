#!/usr/bin/env node
// check.mjs CASE RENDERED [DEFAULT_RENDERED]: checks a rendered chart against the runtime contract the
// binaries expect (ports, commands, capabilities, volumes and mounts, env names and values, probes, RBAC,
// labels, update strategy). CASE names a row of CASES below; a non-default case also gets the chart's default
// render, and each value it sets is checked to have changed the output (`changed`), so a value the templates
// ignore fails even when the expected text happens to be right.
// Prints one PASS/FAIL line per check; exits 1 if any failed.
import { isDeepStrictEqual } from "node:util";
import { parse as parseYAML, parseAllDocuments } from "yaml";
import { Report, loadStream, describe } from "./lib.mjs";

const show = (v) => (v === undefined ? "(absent)" : JSON.stringify(v));
const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// difference names only the keys that differ when both sides are maps (an env of 20 entries, one wrong).
function difference(actual, expected) {
  if (!isMap(actual) || !isMap(expected)) return `got ${show(actual)}, want ${show(expected)}`;
  const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])];
  return keys
    .filter((k) => !isDeepStrictEqual(actual[k], expected[k]))
    .map((k) => `${k}: got ${show(actual[k])}, want ${show(expected[k])}`)
    .join("; ");
}

class Checker {
  constructor(report, docs, defaults) {
    this.r = report;
    this.docs = docs;
    this.defaults = defaults;
  }
  eq(what, actual, expected) {
    if (isDeepStrictEqual(actual, expected)) this.r.pass(what);
    else this.r.fail(what, difference(actual, expected));
  }
  ok(what, condition, why) {
    if (condition) this.r.pass(what);
    else this.r.fail(what, why);
  }
  // changed: `get` on this render gives `expected`, and on the default render something else.
  changed(what, get, expected) {
    let actual, before;
    try {
      actual = get(this.docs);
    } catch (e) {
      this.r.fail(what, e.message);
      return;
    }
    this.eq(what, actual, expected);
    if (this.defaults === null) {
      this.r.fail(`${what} (changed from the default)`, "no default render given");
      return;
    }
    try {
      before = get(this.defaults);
    } catch {
      before = undefined; // absent from the default render: changed
    }
    if (isDeepStrictEqual(before, expected)) this.r.fail(`${what} (changed from the default)`, `the default render has ${show(before)} already`);
    else this.r.pass(`${what} (changed from the default: was ${show(before)})`);
  }
  // section: runs fn; an exception (a missing object) is one failure instead of a crash.
  section(what, fn) {
    try {
      fn();
    } catch (e) {
      this.r.fail(what, e.message);
    }
  }
}

// ---- access helpers (throw when something expected is missing) ----

function find(docs, kind, name) {
  const hits = docs.filter((d) => d.object.kind === kind && (name === undefined || d.object.metadata?.name === name));
  if (hits.length !== 1) throw new Error(`expected one ${kind}${name ? "/" + name : ""}, found ${hits.length}`);
  return hits[0].object;
}
const kinds = (docs) => docs.map((d) => describe(d.object)).sort();
const podSpec = (workload) => workload.spec.template.spec;
function container(workload, name) {
  const c = podSpec(workload).containers.find((x) => x.name === name);
  if (!c) throw new Error(`${describe(workload)} has no container ${name}`);
  return c;
}
// envOf: name -> value (a string) or {fieldRef: path}; duplicates are an error.
function envOf(c) {
  const out = {};
  for (const e of c.env ?? []) {
    if (e.name in out) throw new Error(`env ${e.name} is set twice`);
    out[e.name] = e.valueFrom ? { fieldRef: e.valueFrom.fieldRef?.fieldPath } : e.value;
  }
  return out;
}
const envNames = (c) => (c.env ?? []).map((e) => e.name);
// mounts: container path -> the volume behind it, summarised.
function mounts(workload, c) {
  const volumes = new Map((podSpec(workload).volumes ?? []).map((v) => [v.name, v]));
  const out = {};
  for (const m of c.volumeMounts ?? []) {
    const v = volumes.get(m.name);
    if (!v) throw new Error(`mount ${m.mountPath} names volume ${m.name}, which the pod does not have`);
    const summary = {};
    if (v.hostPath) Object.assign(summary, { hostPath: v.hostPath.path, ...(v.hostPath.type ? { type: v.hostPath.type } : {}) });
    if (v.emptyDir) summary.emptyDir = true;
    if (v.configMap) summary.configMap = v.configMap.name;
    if (v.projected) summary.projected = v.projected.sources;
    if (m.readOnly) summary.readOnly = true;
    if (m.mountPropagation) summary.mountPropagation = m.mountPropagation;
    out[m.mountPath] = summary;
  }
  return out;
}
const sorted = (list) => [...(list ?? [])].sort();
const FIELD = (path) => ({ fieldRef: path });
const TOLERATE_ALL = [
  { effect: "NoSchedule", operator: "Exists" },
  { key: "CriticalAddonsOnly", operator: "Exists" },
  { effect: "NoExecute", operator: "Exists" },
];
const TOKEN_VOLUME = { projected: [{ serviceAccountToken: { path: "istio-token", expirationSeconds: 43200, audience: "istio-ca" } }], readOnly: true };
const ROOT_CERT_VOLUME = { configMap: "istio-ca-root-cert", readOnly: true };

function commonWorkload(c, w, { ns, selectorMatchesTemplate = true }) {
  c.eq(`${describe(w)} namespace`, w.metadata.namespace, ns);
  if (selectorMatchesTemplate) {
    const selector = w.spec.selector.matchLabels;
    const labels = w.spec.template.metadata.labels;
    c.ok(`${describe(w)} pod labels carry the selector`, Object.entries(selector).every(([k, v]) => labels[k] === v),
      `selector ${show(selector)} not within pod labels ${show(labels)}`);
  }
  const pod = podSpec(w);
  const volumeNames = (pod.volumes ?? []).map((v) => v.name);
  const mounted = new Set(pod.containers.flatMap((x) => (x.volumeMounts ?? []).map((m) => m.name)));
  c.ok(`${describe(w)} every volume is mounted`, volumeNames.every((n) => mounted.has(n)),
    `unmounted: ${volumeNames.filter((n) => !mounted.has(n)).join(", ")}`);
  c.eq(`${describe(w)} volume names are unique`, new Set(volumeNames).size, volumeNames.length);
}

// ---- ztunnel ----

function checkZtunnel(c, e) {
  const docs = c.docs;
  c.eq("ztunnel objects (no RBAC: ztunnel talks only to istiod and the node agent)", kinds(docs),
    sorted([`DaemonSet/${e.name}`, `ServiceAccount/${e.name}`]));
  c.section("ztunnel", () => {
    const ds = find(docs, "DaemonSet", e.name);
    const sa = find(docs, "ServiceAccount", e.name);
    c.eq("ServiceAccount namespace", sa.metadata.namespace, e.ns);
    commonWorkload(c, ds, { ns: e.ns });
    const pod = podSpec(ds);
    const labels = ds.spec.template.metadata.labels;
    c.eq("selector", ds.spec.selector.matchLabels, { app: "ztunnel" });
    c.eq("pod label app", labels.app, "ztunnel");
    c.eq("pod label istio.io/dataplane-mode", labels["istio.io/dataplane-mode"], "none");
    c.eq("pod label sidecar.istio.io/inject", labels["sidecar.istio.io/inject"], "false");
    c.eq("pod label istio.io/rev", labels["istio.io/rev"], e.revision || "default");
    c.eq("updateStrategy", ds.spec.updateStrategy, { rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    c.eq("serviceAccountName", pod.serviceAccountName, e.name);
    c.eq("priorityClassName", pod.priorityClassName, "system-node-critical");
    c.eq("tolerations (all taints)", pod.tolerations, TOLERATE_ALL);
    c.eq("hostNetwork (not host network: ztunnel enters pod namespaces)", pod.hostNetwork, undefined);
    c.eq("terminationGracePeriodSeconds", pod.terminationGracePeriodSeconds, e.grace);
    c.eq("nodeSelector", pod.nodeSelector, { "kubernetes.io/os": "linux", ...(e.nodeSelector ?? {}) });
    c.eq("one container", pod.containers.length, 1);
    const ct = container(ds, "istio-proxy");
    c.eq("image", ct.image, e.image);
    c.eq("imagePullPolicy", ct.imagePullPolicy, e.pullPolicy);
    c.eq("command", ct.command, ["ztunnel"]);
    c.eq("args", ct.args, undefined);
    c.eq("ports (metrics only; admin 15000 is localhost-only)", ct.ports, [{ name: "ztunnel-stats", containerPort: 15020, protocol: "TCP" }]);
    c.eq("readinessProbe", ct.readinessProbe, { httpGet: { port: 15021, path: "/healthz/ready" } });
    c.eq("no livenessProbe", ct.livenessProbe, undefined);
    const sc = ct.securityContext;
    c.eq("capabilities add", sorted(sc.capabilities.add), sorted(["NET_ADMIN", "SYS_ADMIN", "NET_RAW"]));
    c.eq("capabilities drop", sc.capabilities.drop, ["ALL"]);
    c.eq("runAsUser", sc.runAsUser, 0);
    c.eq("runAsNonRoot", sc.runAsNonRoot, false);
    c.eq("privileged", sc.privileged, false);
    c.eq("readOnlyRootFilesystem", sc.readOnlyRootFilesystem, true);
    c.eq("resources", ct.resources, e.resources);
    const istiod = `https://istiod${e.revision ? "-" + e.revision : ""}.${e.istioNamespace}.svc:15012`;
    const env = {
      PROXY_MODE: "shared",
      CA_ADDRESS: e.caAddress ?? istiod,
      XDS_ADDRESS: e.xdsAddress ?? istiod,
      CA_ROOT_CA: "/var/run/secrets/istio/root-cert.pem",
      XDS_ROOT_CA: "/var/run/secrets/istio/root-cert.pem",
      AUTH_TOKEN: "/var/run/secrets/tokens/istio-token",
      CLUSTER_ID: e.clusterId ?? "Kubernetes",
      ...(e.network ? { NETWORK: e.network } : {}),
      TRUST_DOMAIN: e.trustDomain ?? "cluster.local",
      LOG_LEVEL: e.logLevel ?? "info",
      LOG_FORMAT: e.logFormat ?? "plain",
      INPOD_UDS: "/var/run/ztunnel/ztunnel.sock",
      CONNECTION_TERMINATION_DEADLINE: e.deadline,
      POD_NAME: FIELD("metadata.name"),
      POD_NAMESPACE: FIELD("metadata.namespace"),
      NODE_NAME: FIELD("spec.nodeName"),
      INSTANCE_IP: FIELD("status.podIP"),
      SERVICE_ACCOUNT: FIELD("spec.serviceAccountName"),
      ...(e.extraEnv ?? {}),
    };
    c.eq("env", envOf(ct), env);
    c.eq("mounts", mounts(ds, ct), {
      "/var/run/secrets/istio": ROOT_CERT_VOLUME,
      "/var/run/secrets/tokens": TOKEN_VOLUME,
      "/var/run/ztunnel": { hostPath: "/var/run/ztunnel", type: "DirectoryOrCreate" },
      "/tmp": { emptyDir: true },
    });
  });
}

// ---- cni ----

function checkCni(c, e) {
  const docs = c.docs;
  const rev = e.revision ? `-${e.revision}` : "";
  c.eq("cni objects", kinds(docs), sorted([
    "ServiceAccount/istio-cni", "ConfigMap/istio-cni-config", `ClusterRole/istio-cni${rev}`, `ClusterRole/istio-cni-ambient${rev}`,
    `ClusterRoleBinding/istio-cni${rev}`, `ClusterRoleBinding/istio-cni-ambient${rev}`, `DaemonSet/${e.dsName}`]));
  c.section("cni ConfigMap", () => {
    const cm = find(docs, "ConfigMap", "istio-cni-config");
    c.eq("ConfigMap namespace", cm.metadata.namespace, e.ns);
    const data = { ...cm.data };
    let selectors;
    try {
      selectors = parseYAML(data.AMBIENT_ENABLEMENT_SELECTOR ?? "", { version: "1.1" });
    } catch (err) {
      selectors = `unparsable: ${err.message}`;
    }
    delete data.AMBIENT_ENABLEMENT_SELECTOR;
    c.eq("AMBIENT_ENABLEMENT_SELECTOR (YAML of ambient.enablementSelectors)", selectors, e.selectors);
    c.eq("ConfigMap data", data, {
      AMBIENT_DNS_CAPTURE: String(e.dnsCapture),
      AMBIENT_IPV6: String(e.ipv6),
      AMBIENT_RECONCILE_POD_RULES_ON_STARTUP: String(e.reconcile),
      CHAINED_CNI_PLUGIN: String(e.chained),
      CNI_CONF_NAME: e.confName,
      ISTIO_OWNED_CNI_CONFIG: String(e.istioOwned),
      ISTIO_OWNED_CNI_CONFIG_FILENAME: e.istioOwnedFile,
      EXCLUDE_NAMESPACES: e.exclude.join(","),
      NATIVE_NFTABLES: String(e.nftables),
      LOG_LEVEL: e.logLevel,
    });
  });
  c.section("cni DaemonSet", () => {
    const ds = find(docs, "DaemonSet", e.dsName);
    commonWorkload(c, ds, { ns: e.ns });
    const pod = podSpec(ds);
    const labels = ds.spec.template.metadata.labels;
    c.eq("selector", ds.spec.selector.matchLabels, { "k8s-app": "istio-cni-node" });
    c.eq("pod label k8s-app", labels["k8s-app"], "istio-cni-node");
    c.eq("pod label istio.io/dataplane-mode", labels["istio.io/dataplane-mode"], "none");
    c.eq("pod label sidecar.istio.io/inject", labels["sidecar.istio.io/inject"], "false");
    c.eq("updateStrategy", ds.spec.updateStrategy, e.updateStrategy);
    c.eq("serviceAccountName", pod.serviceAccountName, "istio-cni");
    c.eq("priorityClassName", pod.priorityClassName, "system-node-critical");
    c.eq("tolerations (all taints)", pod.tolerations, TOLERATE_ALL);
    c.eq("terminationGracePeriodSeconds", pod.terminationGracePeriodSeconds, 30);
    c.eq("hostNetwork", pod.hostNetwork, e.hostNetwork ? true : undefined);
    c.eq("dnsPolicy", pod.dnsPolicy, e.hostNetwork ? "ClusterFirstWithHostNet" : undefined);
    c.eq("one container", pod.containers.length, 1);
    const ct = container(ds, "install-cni");
    c.eq("command", ct.command, ["cni-agent", "run"]);
    c.eq("ports (no metrics port)", ct.ports, undefined);
    c.eq("readinessProbe", ct.readinessProbe, { httpGet: { port: 8000, path: "/readyz" } });
    c.eq("envFrom", ct.envFrom, [{ configMapRef: { name: "istio-cni-config" } }]);
    const sc = ct.securityContext;
    c.eq("capabilities add", sorted(sc.capabilities.add), sorted(["NET_ADMIN", "NET_RAW", "SYS_PTRACE", "SYS_ADMIN", "DAC_OVERRIDE"]));
    c.eq("capabilities drop", sc.capabilities.drop, ["ALL"]);
    c.eq("privileged", sc.privileged, false);
    c.eq("runAsUser/runAsGroup/runAsNonRoot", [sc.runAsUser, sc.runAsGroup, sc.runAsNonRoot], [0, 0, false]);
    c.eq("seccompProfile", sc.seccompProfile, e.seccompProfile);
    c.eq("env", envOf(ct), {
      POD_SOURCE: "kubernetes",
      INSTALL_CNI: "true",
      MOUNTED_CNI_NET_DIR: "/host/etc/cni/net.d",
      CNI_BIN_TARGET_DIRS: "/host/opt/cni/bin",
      HOST_MOUNTS_PATH: "/host",
      ZTUNNEL_UDS_ADDRESS: "/var/run/ztunnel/ztunnel.sock",
      AGENT_SOCKET: "/var/run/ambient-cni/agent.sock",
      AGENT_STATE_DIR: "/var/run/ambient-cni",
      SYSTEM_NAMESPACE: e.ns,
      CNI_DAEMONSET_NAME: e.dsName,
      NODE_NAME: FIELD("spec.nodeName"),
      POD_NAME: FIELD("metadata.name"),
      POD_NAMESPACE: FIELD("metadata.namespace"),
      ...(e.extraEnv ?? {}),
    });
    c.eq("CNI_DAEMONSET_NAME is the DaemonSet's own name", envOf(ct).CNI_DAEMONSET_NAME, ds.metadata.name);
    c.eq("mounts", mounts(ds, ct), {
      "/host/opt/cni/bin": { hostPath: e.binDir },
      "/host/proc": { hostPath: "/proc", type: "Directory", readOnly: true },
      "/host/etc/cni/net.d": { hostPath: e.confDir },
      "/var/run/ambient-cni": { hostPath: "/var/run/ambient-cni", type: "DirectoryOrCreate" },
      [`/host${e.netnsDir}`]: { hostPath: e.netnsDir, type: "DirectoryOrCreate", mountPropagation: "HostToContainer" },
      "/var/run/ztunnel": { hostPath: "/var/run/ztunnel", type: "DirectoryOrCreate" },
    });
    // The plugin on the host and ztunnel meet the agent through these host directories.
    c.eq("agent socket lives in the hostPath shared with the plugin", envOf(ct).AGENT_SOCKET.startsWith("/var/run/ambient-cni/"), true);
  });
  c.section("cni RBAC", () => {
    const watch = find(docs, "ClusterRole", `istio-cni${rev}`);
    c.eq("ClusterRole istio-cni rules", watch.rules, [
      { apiGroups: [""], resources: ["pods", "nodes", "namespaces"], verbs: ["get", "list", "watch"] },
    ]);
    const ambient = find(docs, "ClusterRole", `istio-cni-ambient${rev}`);
    c.eq("ClusterRole istio-cni-ambient rules", ambient.rules, [
      { apiGroups: [""], resources: ["pods/status"], verbs: ["patch", "update"] },
      { apiGroups: ["apps"], resources: ["daemonsets"], resourceNames: [e.dsName], verbs: ["get"] },
    ]);
    for (const base of ["istio-cni", "istio-cni-ambient"]) {
      const b = find(docs, "ClusterRoleBinding", `${base}${rev}`);
      c.eq(`ClusterRoleBinding ${base} roleRef`, b.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: `${base}${rev}` });
      c.eq(`ClusterRoleBinding ${base} subjects`, b.subjects, [{ kind: "ServiceAccount", name: "istio-cni", namespace: e.ns }]);
    }
  });
}

// ---- waypoint ----

function checkWaypoint(c, e) {
  const docs = c.docs;
  const expected = [`ServiceAccount/${e.name}`, `Service/${e.name}`, `Deployment/${e.name}`];
  if (e.gateway) expected.push(`Gateway/${e.name}`);
  if (e.routes) expected.push(`ConfigMap/${e.name}-routes`);
  if (e.hpa) expected.push(`HorizontalPodAutoscaler/${e.name}`);
  if (e.pdb) expected.push(`PodDisruptionBudget/${e.name}`);
  c.eq("waypoint objects", kinds(docs), sorted(expected));
  c.section("waypoint Deployment", () => {
    const d = find(docs, "Deployment", e.name);
    commonWorkload(c, d, { ns: e.ns });
    const pod = podSpec(d);
    const labels = d.spec.template.metadata.labels;
    c.eq("pod label istio.io/dataplane-mode", labels["istio.io/dataplane-mode"], "none");
    c.eq("pod label sidecar.istio.io/inject", labels["sidecar.istio.io/inject"], "false");
    c.eq("pod label gateway.networking.k8s.io/gateway-name", labels["gateway.networking.k8s.io/gateway-name"], e.name);
    c.eq("replicas (absent when the HPA owns them)", d.spec.replicas, e.hpa ? undefined : e.replicas);
    c.eq("serviceAccountName", pod.serviceAccountName, e.name);
    c.eq("terminationGracePeriodSeconds", pod.terminationGracePeriodSeconds, e.grace);
    c.eq("hostNetwork", pod.hostNetwork, undefined);
    c.eq("one container", pod.containers.length, 1);
    const ct = container(d, "waypoint");
    c.eq("command", ct.command, ["waypoint"]);
    c.eq("ports", ct.ports, [
      { name: "mesh", containerPort: 15008, protocol: "TCP" },
      { name: "metrics", containerPort: 15020, protocol: "TCP" },
      { name: "status-port", containerPort: 15021, protocol: "TCP" },
    ]);
    c.eq("readinessProbe target", ct.readinessProbe?.httpGet, { port: 15021, path: "/healthz/ready" });
    c.eq("startupProbe target", ct.startupProbe?.httpGet, { port: 15021, path: "/healthz/ready" });
    c.eq("securityContext (Istio's waypoint: 1337, no capabilities)", ct.securityContext, {
      allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: true, runAsGroup: 1337, runAsUser: 1337, runAsNonRoot: true,
    });
    const istiod = `https://istiod${e.revision ? "-" + e.revision : ""}.istio-system.svc:15012`;
    c.eq("env", envOf(ct), {
      CA_ADDRESS: istiod,
      XDS_ADDRESS: istiod,
      CA_ROOT_CA: "/var/run/secrets/istio/root-cert.pem",
      XDS_ROOT_CA: "/var/run/secrets/istio/root-cert.pem",
      AUTH_TOKEN: "/var/run/secrets/tokens/istio-token",
      CLUSTER_ID: "Kubernetes",
      TRUST_DOMAIN: "cluster.local",
      LOG_LEVEL: e.logLevel ?? "info",
      LOG_FORMAT: "plain",
      CONNECTION_TERMINATION_DEADLINE: e.deadline,
      POD_NAME: FIELD("metadata.name"),
      POD_NAMESPACE: FIELD("metadata.namespace"),
      INSTANCE_IP: FIELD("status.podIP"),
      SERVICE_ACCOUNT: FIELD("spec.serviceAccountName"),
      WAYPOINT_WORKLOAD_INFO: `$(POD_NAMESPACE)/$(POD_NAME)/${e.name}`,
      WAYPOINT_GATEWAY: e.name,
      ...(e.routes ? { WAYPOINT_CONFIG_PATHS: "/etc/waypoint/routes" } : {}),
    });
    // Kubernetes expands $(VAR) only for variables defined earlier in the list.
    const order = envNames(ct);
    const position = (n) => order.indexOf(n);
    c.ok("WAYPOINT_WORKLOAD_INFO comes after POD_NAME and POD_NAMESPACE",
      position("WAYPOINT_WORKLOAD_INFO") > Math.max(position("POD_NAME"), position("POD_NAMESPACE")), `order: ${order.join(", ")}`);
    const expectedMounts = {
      "/var/run/secrets/istio": ROOT_CERT_VOLUME,
      "/var/run/secrets/tokens": TOKEN_VOLUME,
      "/tmp": { emptyDir: true },
    };
    if (e.routes) expectedMounts["/etc/waypoint/routes"] = { configMap: `${e.name}-routes`, readOnly: true };
    c.eq("mounts", mounts(d, ct), expectedMounts);
  });
  c.section("waypoint Service", () => {
    const s = find(docs, "Service", e.name);
    const d = find(docs, "Deployment", e.name);
    c.eq("Service type", s.spec.type, "ClusterIP");
    c.eq("Service ports", s.spec.ports, [
      { name: "status-port", port: 15021, targetPort: 15021, protocol: "TCP" },
      { name: "mesh", port: 15008, targetPort: 15008, protocol: "TCP", appProtocol: "hbone" },
    ]);
    c.eq("Service annotation traffic-distribution", s.metadata.annotations?.["networking.istio.io/traffic-distribution"], "PreferClose");
    const labels = d.spec.template.metadata.labels;
    c.ok("Service selects the waypoint pods", Object.entries(s.spec.selector).every(([k, v]) => labels[k] === v),
      `selector ${show(s.spec.selector)} vs pod labels ${show(labels)}`);
  });
  if (e.gateway) {
    c.section("waypoint Gateway", () => {
      const g = find(docs, "Gateway", e.name);
      c.eq("Gateway apiVersion", g.apiVersion, "gateway.networking.k8s.io/v1");
      c.eq("Gateway namespace", g.metadata.namespace, e.ns);
      c.eq("gatewayClassName", g.spec.gatewayClassName, e.gateway.className);
      c.eq("listeners", g.spec.listeners, [{ name: "mesh", port: 15008, protocol: "HBONE" }]);
      c.eq("label istio.io/waypoint-for", g.metadata.labels?.["istio.io/waypoint-for"], e.gateway.waypointFor);
      c.eq("label istio.io/rev", g.metadata.labels?.["istio.io/rev"], e.revision);
      c.eq("addresses (one Hostname: istiod deploys nothing for it)", g.spec.addresses, [{ type: "Hostname", value: e.gateway.address }]);
    });
  }
  if (e.routes) {
    c.section("waypoint routes", () => {
      const cm = find(docs, "ConfigMap", `${e.name}-routes`);
      c.eq("routes ConfigMap files", sorted(Object.keys(cm.data)), sorted(e.routes));
      for (const [file, text] of Object.entries(cm.data)) {
        const kindsIn = parseAllDocuments(text, { version: "1.1" }).map((doc) => doc.toJS()?.kind);
        c.ok(`routes file ${file} holds HTTPRoute/GRPCRoute/AuthorizationPolicy`,
          kindsIn.length > 0 && kindsIn.every((k) => ["HTTPRoute", "GRPCRoute", "AuthorizationPolicy"].includes(k)), `kinds ${show(kindsIn)}`);
      }
    });
  }
  if (e.hpa) {
    c.section("waypoint HPA", () => {
      const h = find(docs, "HorizontalPodAutoscaler", e.name);
      c.eq("HPA target", h.spec.scaleTargetRef, { apiVersion: "apps/v1", kind: "Deployment", name: e.name });
      c.eq("HPA replicas", [h.spec.minReplicas, h.spec.maxReplicas], e.hpa.replicas);
      c.eq("HPA metrics", h.spec.metrics.map((m) => [m.resource.name, m.resource.target.averageUtilization]), e.hpa.metrics);
    });
  }
  if (e.pdb) {
    c.section("waypoint PDB", () => {
      const p = find(docs, "PodDisruptionBudget", e.name);
      const d = find(docs, "Deployment", e.name);
      c.eq("PDB selector is the Deployment's", p.spec.selector, d.spec.selector);
      c.eq("PDB minAvailable", p.spec.minAvailable, e.pdb.minAvailable);
    });
  }
}

// ---- cases: one per render in run_chart_tests.sh ----

const DEFAULT_SELECTORS = [
  { podSelector: { matchLabels: { "istio.io/dataplane-mode": "ambient" } } },
  {
    podSelector: { matchExpressions: [{ key: "istio.io/dataplane-mode", operator: "NotIn", values: ["none"] }] },
    namespaceSelector: { matchLabels: { "istio.io/dataplane-mode": "ambient" } },
  },
];
const CNI_DEFAULTS = {
  ns: "istio-system", dsName: "istio-cni-node", selectors: DEFAULT_SELECTORS, dnsCapture: false, ipv6: true, reconcile: true,
  chained: true, confName: "", istioOwned: false, istioOwnedFile: "02-istio-cni.conflist", exclude: ["kube-system"],
  nftables: false, logLevel: "info", updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
  hostNetwork: false, binDir: "/opt/cni/bin", confDir: "/etc/cni/net.d", netnsDir: "/var/run/netns",
};
const ZTUNNEL_DEFAULTS = {
  ns: "istio-system", name: "ztunnel", istioNamespace: "istio-system", grace: 30, deadline: "25s",
  image: "localhost/ambient/ambient:0.1.0", resources: { requests: { cpu: "200m", memory: "512Mi" } },
};
const WAYPOINT_DEFAULTS = {
  ns: "bookinfo", name: "waypoint", replicas: 1, grace: 30, deadline: "25s",
  gateway: { className: "istio-waypoint", waypointFor: "service", address: "waypoint.bookinfo.svc.cluster.local" },
};

const at = (kind, name) => (docs) => find(docs, kind, name);

const CASES = {
  "ztunnel-default": (c) => checkZtunnel(c, ZTUNNEL_DEFAULTS),
  "ztunnel-custom": (c) => {
    const e = {
      ...ZTUNNEL_DEFAULTS, revision: "canary", istioNamespace: "mesh-system", caAddress: "https://ca.example.internal:15443",
      clusterId: "east-1", network: "net-east", trustDomain: "example.org", logLevel: "debug", logFormat: "json", grace: 8,
      deadline: "7s", image: "registry.example.internal/mesh/ambient:1.20-debug", pullPolicy: "Always",
      resources: { requests: { cpu: "500m", memory: "256Mi" }, limits: { memory: "1Gi" } },
      nodeSelector: { "node-role.example.internal/mesh": "true" },
      extraEnv: { ISTIO_META_DNS_CAPTURE: "true", ZTUNNEL_WORKER_THREADS: "4", POOL_UNUSED_RELEASE_TIMEOUT: "10m", POOL_MAX_STREAMS_PER_CONNECTION: "1000000" },
    };
    checkZtunnel(c, e);
    const ct = (docs) => container(at("DaemonSet", "ztunnel")(docs), "istio-proxy");
    const env = (name) => (docs) => envOf(ct(docs))[name];
    c.changed("revision -> XDS_ADDRESS on istiod-canary in istioNamespace", env("XDS_ADDRESS"), "https://istiod-canary.mesh-system.svc:15012");
    c.changed("caAddress -> CA_ADDRESS", env("CA_ADDRESS"), "https://ca.example.internal:15443");
    c.changed("multiCluster.clusterName -> CLUSTER_ID", env("CLUSTER_ID"), "east-1");
    c.changed("global.network -> NETWORK", env("NETWORK"), "net-east");
    c.changed("meshConfig.trustDomain -> TRUST_DOMAIN", env("TRUST_DOMAIN"), "example.org");
    c.changed("logLevel -> LOG_LEVEL", env("LOG_LEVEL"), "debug");
    c.changed("logAsJson -> LOG_FORMAT", env("LOG_FORMAT"), "json");
    c.changed("terminationGracePeriodSeconds 8 -> drain deadline 7s (grace <= 10: minus 1 s)", env("CONNECTION_TERMINATION_DEADLINE"), "7s");
    c.changed("terminationGracePeriodSeconds -> pod", (d) => podSpec(at("DaemonSet", "ztunnel")(d)).terminationGracePeriodSeconds, 8);
    c.changed("resources", (d) => ct(d).resources, e.resources);
    c.changed("hub/image/tag/variant -> image", (d) => ct(d).image, e.image);
    c.changed("env: a large number is not printed as 1e+06", env("POOL_MAX_STREAMS_PER_CONNECTION"), "1000000");
    c.changed("affinity", (d) => podSpec(at("DaemonSet", "ztunnel")(d)).affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution
      ?.nodeSelectorTerms?.[0]?.matchExpressions?.[0]?.values, ["amd64", "arm64"]);
    c.changed("revision -> pod label istio.io/rev", (d) => at("DaemonSet", "ztunnel")(d).spec.template.metadata.labels["istio.io/rev"], "canary");
    c.changed("podLabels", (d) => at("DaemonSet", "ztunnel")(d).spec.template.metadata.labels.team, "mesh");
    c.changed("imagePullSecrets", (d) => podSpec(at("DaemonSet", "ztunnel")(d)).imagePullSecrets, [{ name: "mesh-pull" }]);
  },
  "cni-default": (c) => checkCni(c, CNI_DEFAULTS),
  "cni-custom": (c) => {
    const e = {
      ...CNI_DEFAULTS, dsName: "ambient-cni-node", revision: "canary",
      selectors: [{ podSelector: { matchLabels: { "mesh.example.internal/ambient": "on" } } }],
      dnsCapture: true, ipv6: false, reconcile: false, chained: false, confName: "10-ovn-kubernetes.conf", istioOwned: true,
      istioOwnedFile: "05-ambient.conflist", exclude: ["kube-system", "openshift-monitoring"], nftables: true, logLevel: "debug",
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "10%" } }, hostNetwork: true,
      binDir: "/var/lib/cni/bin", confDir: "/etc/cni/multus/net.d", netnsDir: "/var/run/docker/netns",
      seccompProfile: { type: "RuntimeDefault" }, extraEnv: { AGENT_RULES_BACKEND: "nftables" },
    };
    checkCni(c, e);
    const cm = (key) => (docs) => find(docs, "ConfigMap", "istio-cni-config").data[key];
    const ds = (docs) => find(docs, "DaemonSet");
    const hostPath = (volume) => (docs) => podSpec(ds(docs)).volumes.find((v) => v.name === volume).hostPath.path;
    c.changed("global.nativeNftables -> NATIVE_NFTABLES", cm("NATIVE_NFTABLES"), "true");
    c.changed("ambient.ipv6 -> AMBIENT_IPV6", cm("AMBIENT_IPV6"), "false");
    c.changed("ambient.dnsCapture -> AMBIENT_DNS_CAPTURE", cm("AMBIENT_DNS_CAPTURE"), "true");
    c.changed("ambient.reconcileIptablesOnStartup -> AMBIENT_RECONCILE_POD_RULES_ON_STARTUP", cm("AMBIENT_RECONCILE_POD_RULES_ON_STARTUP"), "false");
    c.changed("chained -> CHAINED_CNI_PLUGIN", cm("CHAINED_CNI_PLUGIN"), "false");
    c.changed("istioOwnedCNIConfig -> ISTIO_OWNED_CNI_CONFIG", cm("ISTIO_OWNED_CNI_CONFIG"), "true");
    c.changed("istioOwnedCNIConfigFileName", cm("ISTIO_OWNED_CNI_CONFIG_FILENAME"), "05-ambient.conflist");
    c.changed("cniConfFileName -> CNI_CONF_NAME", cm("CNI_CONF_NAME"), "10-ovn-kubernetes.conf");
    c.changed("excludeNamespaces -> EXCLUDE_NAMESPACES", cm("EXCLUDE_NAMESPACES"), "kube-system,openshift-monitoring");
    c.changed("ambient.enablementSelectors", (d) => parseYAML(cm("AMBIENT_ENABLEMENT_SELECTOR")(d)), e.selectors);
    c.changed("cniBinDir -> hostPath", hostPath("cni-bin-dir"), "/var/lib/cni/bin");
    c.changed("cniConfDir -> hostPath", hostPath("cni-net-dir"), "/etc/cni/multus/net.d");
    c.changed("cniNetnsDir -> hostPath", hostPath("cni-netns-dir"), "/var/run/docker/netns");
    c.changed("cniNetnsDir -> mounted at the same path under HOST_MOUNTS_PATH",
      (d) => container(ds(d), "install-cni").volumeMounts.find((m) => m.name === "cni-netns-dir").mountPath, "/host/var/run/docker/netns");
    c.changed("ambient.shareHostNetworkNamespace -> hostNetwork", (d) => podSpec(ds(d)).hostNetwork, true);
    c.changed("daemonSetName -> DaemonSet name", (d) => ds(d).metadata.name, "ambient-cni-node");
    const ambientRole = (d) => d.map((x) => x.object).find((o) => o.kind === "ClusterRole" && o.metadata.name.startsWith("istio-cni-ambient"));
    c.changed("daemonSetName -> RBAC resourceNames", (d) => ambientRole(d).rules[1].resourceNames, ["ambient-cni-node"]);
    c.changed("revision -> cluster-scoped names", (d) => ambientRole(d).metadata.name, "istio-cni-ambient-canary");
    c.changed("seccompProfile", (d) => container(ds(d), "install-cni").securityContext.seccompProfile, { type: "RuntimeDefault" });
  },
  "waypoint-default": (c) => checkWaypoint(c, WAYPOINT_DEFAULTS),
  "waypoint-byo-gateway": (c) => {
    const e = {
      ...WAYPOINT_DEFAULTS, name: "reviews-waypoint", gateway: null, routes: ["reviews.yaml", "deny-delete.yml"],
      hpa: { replicas: [2, 6], metrics: [["cpu", 70], ["memory", 85]] }, pdb: { minAvailable: 1 },
    };
    checkWaypoint(c, e);
    c.changed("gateway.create=false -> no Gateway", (d) => d.filter((x) => x.object.kind === "Gateway").length, 0);
    c.changed("routes -> WAYPOINT_CONFIG_PATHS", (d) => envOf(container(find(d, "Deployment"), "waypoint")).WAYPOINT_CONFIG_PATHS, "/etc/waypoint/routes");
    c.changed("autoscaling.enabled -> HPA", (d) => find(d, "HorizontalPodAutoscaler").spec.maxReplicas, 6);
    c.changed("podDisruptionBudget -> PDB", (d) => find(d, "PodDisruptionBudget").spec.minAvailable, 1);
    c.changed("name -> WAYPOINT_GATEWAY", (d) => envOf(container(find(d, "Deployment"), "waypoint")).WAYPOINT_GATEWAY, "reviews-waypoint");
  },
  "waypoint-class": (c) => {
    const e = {
      ...WAYPOINT_DEFAULTS, name: "reviews-wp", revision: "canary", replicas: 3, grace: 60, deadline: "55s", logLevel: "warn",
      gateway: { className: "acme-waypoint", waypointFor: "all", address: "mesh-gw.acme.example.internal" },
    };
    checkWaypoint(c, e);
    const gw = (d) => find(d, "Gateway");
    c.changed("gateway.className", (d) => gw(d).spec.gatewayClassName, "acme-waypoint");
    c.changed("gateway.address", (d) => gw(d).spec.addresses[0].value, "mesh-gw.acme.example.internal");
    c.changed("waypointFor", (d) => gw(d).metadata.labels["istio.io/waypoint-for"], "all");
    c.changed("revision -> Gateway label istio.io/rev", (d) => gw(d).metadata.labels["istio.io/rev"], "canary");
    c.changed("replicaCount", (d) => find(d, "Deployment").spec.replicas, 3);
    c.changed("terminationGracePeriodSeconds 60 -> drain deadline 55s",
      (d) => envOf(container(find(d, "Deployment"), "waypoint")).CONNECTION_TERMINATION_DEADLINE, "55s");
    c.changed("--set name -> Service name", (d) => find(d, "Service").metadata.name, "reviews-wp");
    c.changed("service.annotations", (d) => find(d, "Service").metadata.annotations["service.example.internal/owner"], "team-a");
  },
  // --set clusterDomain alone: the default Gateway address follows it.
  "waypoint-domain": (c) => {
    checkWaypoint(c, { ...WAYPOINT_DEFAULTS, gateway: { ...WAYPOINT_DEFAULTS.gateway, address: "waypoint.bookinfo.svc.corp.example" } });
    c.changed("clusterDomain -> Gateway address", (d) => find(d, "Gateway").spec.addresses[0].value, "waypoint.bookinfo.svc.corp.example");
  },
};

const [caseName, renderedFile, defaultFile] = process.argv.slice(2);
if (!caseName || !renderedFile || !(caseName in CASES)) {
  console.error(`usage: check.mjs CASE RENDERED [DEFAULT_RENDERED]; cases: ${Object.keys(CASES).join(", ")}`);
  process.exit(2);
}
const report = new Report(`check ${caseName}`);
try {
  const docs = loadStream(renderedFile);
  const defaults = defaultFile ? loadStream(defaultFile) : null;
  CASES[caseName](new Checker(report, docs, defaults));
} catch (e) {
  report.fail(renderedFile, e.stack ?? e.message);
}
report.finish();
