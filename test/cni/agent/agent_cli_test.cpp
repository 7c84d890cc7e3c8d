// cni-agent's command line: defaults, Istio's environment names, and errors that name the flag at fault.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "cni/agent/agent_cli.h"
#include "test/support/temp_dir.h"

using namespace ambient;
using namespace ambient::cni;

namespace {

Result<AgentRunConfig> run_config(std::vector<const char*> args) {
  args.insert(args.begin(), "run");
  std::string help;
  return parse_run_config(static_cast<int>(args.size()), args.data(), &help);
}

Result<std::string> verb(const std::string& name, std::vector<const char*> args) {
  args.insert(args.begin(), name.c_str());
  std::string help;
  return run_cli_verb(name, static_cast<int>(args.size()), args.data(), &help);
}

}  // namespace

TEST_SUITE("cni/agent/cli") {
  TEST_CASE("run: defaults are the node agent's: iptables, no DNS capture, only new connections captured") {
    auto c = run_config({});
    REQUIRE(c);
    CHECK(c->agent.backend == Backend::Iptables);
    CHECK_FALSE(c->agent.rules.dns_capture);
    CHECK(c->agent.rules.syn_only);
    CHECK(c->agent.reconcile_rules_on_startup);
    CHECK(c->agent.zds.path == "/var/run/ztunnel/ztunnel.sock");
    CHECK(c->api.socket_path == "/var/run/ambient-cni/agent.sock");
    CHECK(c->agent.store.path == "/var/run/ambient-cni/pods.json");
  }

  TEST_CASE("run: flags and Istio's environment names") {
    auto c = run_config({"--rules", "nftables", "--dns-capture", "true", "--syn-only", "false", "--state-dir", "/tmp/x",
                         "--zds-socket", "/tmp/z.sock"});
    REQUIRE(c);
    CHECK(c->agent.backend == Backend::Nftables);
    CHECK(c->agent.rules.dns_capture);
    CHECK_FALSE(c->agent.rules.syn_only);
    CHECK(c->agent.store.path == "/tmp/x/pods.json");
    CHECK(c->agent.zds.path == "/tmp/z.sock");
    ::setenv("NATIVE_NFTABLES", "true", 1);
    auto e = run_config({});
    ::unsetenv("NATIVE_NFTABLES");
    REQUIRE(e);
    CHECK(e->agent.backend == Backend::Nftables);
  }

  TEST_CASE("run: bad values are refused, naming the flag") {
    struct Row {
      std::vector<const char*> args;
      const char* mentions;
    };
    const Row rows[] = {
        {{"--rules", "ebpf"}, "--rules"},
        {{"--state-dir", "relative/dir"}, "--state-dir"},
        {{"--dns-capture", "maybe"}, "dns-capture"},
        {{"--syn-only", "2"}, "syn-only"},
        {{"--no-such-flag", "1"}, "no-such-flag"},
        {{"stray"}, "stray"},
    };
    for (const auto& row : rows) {
      auto c = run_config(row.args);
      CAPTURE(row.mentions);
      REQUIRE_FALSE(c);
      CHECK(c.error().context.find(row.mentions) != std::string::npos);
    }
  }

  TEST_CASE("enroll/unenroll: missing or invalid fields are refused before the agent is asked") {
    auto missing = verb("enroll", {"--uid", "u1", "--name", "web", "--namespace", "demo"});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().context.find("--netns is required") != std::string::npos);
    auto bad_ns = verb("enroll", {"--uid", "u1", "--name", "web", "--namespace", "Not_A_Label", "--netns", "/var/run/netns/x"});
    REQUIRE_FALSE(bad_ns);
    CHECK(bad_ns.error().context.find("--namespace") != std::string::npos);
    auto bad_ip = verb("enroll", {"--uid", "u1", "--name", "web", "--namespace", "demo", "--netns", "/var/run/netns/x", "--ips", "10.0.0.1,nope"});
    REQUIRE_FALSE(bad_ip);
    CHECK(bad_ip.error().context.find("--ips") != std::string::npos);
    auto no_uid = verb("unenroll", {});
    REQUIRE_FALSE(no_uid);
    CHECK(no_uid.error().context.find("--uid is required") != std::string::npos);
    auto unknown = verb("launch", {});
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().context.find("unknown verb 'launch'") != std::string::npos);
  }

  TEST_CASE("enroll: no agent listening is a clear error") {
    auto r = verb("enroll", {"--api-socket", "/nonexistent/agent.sock", "--uid", "u1", "--name", "web", "--namespace", "demo",
                             "--netns", "/var/run/netns/x"});
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::ConnectRefused);
  }

  TEST_CASE("run: --pod-source=kubernetes (the chart's settings), and its errors") {
    test::TempDir dir("agent-cli");
    std::ofstream(dir.path() + "/ca.crt") << "-----BEGIN CERTIFICATE-----\n";
    std::ofstream(dir.path() + "/token") << "t0ken\n";
    const std::string ca = "--kube-ca=" + dir.path() + "/ca.crt", token = "--kube-token=" + dir.path() + "/token";
    auto c = run_config({"--pod-source=kubernetes", "--kube-api=https://10.96.0.1:443", ca.c_str(), token.c_str(),
                         "--node-name=node-7", "--exclude-namespaces=kube-system, gatekeeper", "--host-mounts-path=/host",
                         "--enablement-selector=[{podSelector: {matchLabels: {mesh: 'yes'}}}]"});
    REQUIRE_MESSAGE(c, (c ? "" : c.error().context));
    CHECK(c->kube.enabled);
    CHECK(c->kube.api.host == "10.96.0.1");
    CHECK(c->kube.api.port == 443);
    CHECK(c->kube.source.node_name == "node-7");
    CHECK(c->kube.source.host_mounts_path == "/host");
    CHECK(c->kube.source.policy.exclude_namespaces == std::vector<std::string>{"kube-system", "gatekeeper"});
    CHECK(c->kube.source.policy.system_namespace == "istio-system");
    REQUIRE(c->kube.source.policy.terms.size() == 1);
    CHECK(c->kube.source.policy.terms[0].pod_selector->match_labels.at("mesh") == "yes");
    REQUIRE(c->readiness.has_value());  // Istio's probe port by default from Kubernetes
    CHECK(c->readiness->port() == 8000);

    // The API-only default has neither.
    auto plain = run_config({});
    REQUIRE(plain);
    CHECK_FALSE(plain->kube.enabled);
    CHECK_FALSE(plain->readiness.has_value());

    struct Row {
      std::vector<const char*> args;
      const char* error_part;
    };
    const Row rows[] = {
        {{"--pod-source=informer"}, "--pod-source (POD_SOURCE) 'informer' is not api or kubernetes"},
        {{"--pod-source=kubernetes", ca.c_str(), token.c_str(), "--node-name=n"}, "KUBERNETES_SERVICE_HOST"},
        {{"--pod-source=kubernetes", "--kube-api=https://10.96.0.1:443", ca.c_str(), token.c_str()}, "needs NODE_NAME"},
        {{"--pod-source=kubernetes", "--kube-api=https://10.96.0.1:443", "--kube-ca=/nonexistent/ca.crt", token.c_str(), "--node-name=n"},
         "/nonexistent/ca.crt"},
        {{"--pod-source=kubernetes", "--kube-api=https://10.96.0.1:443", ca.c_str(), token.c_str(), "--node-name=n",
          "--enablement-selector=- podSelector: {matchExpressions: [{key: a, operator: Near}]}"},
         "AMBIENT_ENABLEMENT_SELECTOR:1: [0].podSelector.matchExpressions[0].operator: unknown operator 'Near'"},
        {{"--pod-source=kubernetes", "--kube-api=https://10.96.0.1:443", ca.c_str(), token.c_str(), "--node-name=n",
          "--exclude-namespaces=Kube_System"},
         "EXCLUDE_NAMESPACES: 'Kube_System' is not a namespace name"},
        {{"--host-mounts-path=host/"}, "must be absolute"},
        {{"--readiness=8000"}, "--readiness (AGENT_READINESS_ADDRESS) '8000'"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.error_part);
      auto r = run_config(row.args);
      REQUIRE_FALSE(r);
      CHECK_MESSAGE(r.error().context.find(row.error_part) != std::string::npos, r.error().context);
    }
  }
}
