// cni-agent's command line: defaults, Istio's environment names, and errors that name the flag at fault.
#include <doctest/doctest.h>

#include <cstdlib>
#include <vector>

#include "cni/agent/agent_cli.h"

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
}
