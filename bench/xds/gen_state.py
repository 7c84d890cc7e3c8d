#!/usr/bin/env python3
"""Writes a large mesh state in Istio ztunnel's local-config shape (what fake-istiod serves).

gen_state.py OUT_DIR [WORKLOADS] [SERVICES]
  OUT_DIR/mesh.yaml   WORKLOADS HBONE workloads in 50 namespaces, each in one of SERVICES services
                      (VIPs 10.96.x.y), pod IPs 10.(16+i/65536).x.y, one namespace policy per namespace
  OUT_DIR/churn.yaml  one extra workload ("churn") that the benchmark rewrites to make single-resource pushes
"""
import os
import sys


def main():
    out = sys.argv[1]
    workloads = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    services = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    namespaces = 50
    os.makedirs(out, exist_ok=True)
    lines = ["workloads:"]
    for i in range(workloads):
        ns = "ns-%d" % (i % namespaces)
        svc = i % services
        ip = "10.%d.%d.%d" % (16 + i // 65536, (i // 256) % 256, i % 256)
        lines += [
            "- uid: Kubernetes//Pod/%s/pod-%d" % (ns, i),
            "  name: pod-%d" % i,
            "  namespace: %s" % ns,
            "  serviceAccount: sa-%d" % (svc % 100),
            "  workloadIps: [\"%s\"]" % ip,
            "  protocol: HBONE",
            "  node: node-%d" % (i % 100),
            "  canonicalName: app-%d" % svc,
            "  canonicalRevision: v1",
            "  services: {\"ns-%d/svc-%d.ns-%d.svc.cluster.local\": {80: 8080}}" % (svc % namespaces, svc, svc % namespaces),
        ]
    lines.append("services:")
    for s in range(services):
        ns = "ns-%d" % (s % namespaces)
        lines += [
            "- name: svc-%d" % s,
            "  namespace: %s" % ns,
            "  hostname: svc-%d.%s.svc.cluster.local" % (s, ns),
            "  vips: [\"/10.96.%d.%d\"]" % (s // 256, s % 256),
            "  ports: {80: 8080}",
        ]
    lines.append("policies:")
    for n in range(namespaces):
        lines += [
            "- name: deny-9999",
            "  namespace: ns-%d" % n,
            "  scope: Namespace",
            "  action: Deny",
            "  rules:",
            "  - - - destinationPorts: [9999]",
        ]
    with open(os.path.join(out, "mesh.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    write_churn(out, 0)


def write_churn(out, generation):
    body = """workloads:
- uid: Kubernetes//Pod/churn/churn
  name: churn
  namespace: churn
  workloadIps: ["10.200.0.1"]
  protocol: HBONE
  canonicalRevision: "g%d"
""" % generation
    tmp = os.path.join(out, ".churn.tmp")
    with open(tmp, "w") as f:
        f.write(body)
    os.replace(tmp, os.path.join(out, "churn.yaml"))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--churn":
        write_churn(sys.argv[2], int(sys.argv[3]))
    else:
        main()
