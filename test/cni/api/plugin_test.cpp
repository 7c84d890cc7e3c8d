// The ambient-cni binary run as the container runtime runs it: a child process with CNI_* in its
// environment and the network configuration on stdin, against a real ApiServer.
// Needs the binary built first (test/CMakeLists.txt: add_dependencies(test_cni_api ambient_cni_plugin)).
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <boost/json/serialize.hpp>

#include "cni/api/json_fields.h"
#include "test/cni/api/api_test_support.h"

using namespace ambient;
using namespace ambient::cni;
using ambient::cni::test_support::plugin_path;
using ambient::cni::test_support::ProcessResult;
using ambient::cni::test_support::run_process;
using ambient::cni::test_support::ServerThread;
using ambient::cni::test_support::TempDir;

namespace {

const char* kPrevResult =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:00:07","sandbox":"/var/run/netns/cni-42"}],)"
    R"("ips":[{"interface":0,"address":"10.244.0.7/24","gateway":"10.244.0.1"},{"interface":0,"address":"fd00:10:244::7/64"}],)"
    R"("routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1"}],"dns":{"nameservers":["10.96.0.10"],"search":["default.svc.cluster.local"]}})";

std::string config_json(const std::string& socket_path, bool with_prev = true, const std::string& extra = "") {
  std::string c = R"({"cniVersion":"1.0.0","name":"k8s-pod-network","type":"ambient-cni","agent_socket":")" +
                  socket_path + R"(","exclude_namespaces":["kube-system"],"service_account":"web")" + extra;
  if (with_prev) c += std::string(R"(,"prevResult":)") + kPrevResult;
  return c + "}";
}

std::vector<std::string> add_env(std::string args = "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_UID=uid-42") {
  return {"CNI_COMMAND=ADD", "CNI_CONTAINERID=c0ffee", "CNI_NETNS=/var/run/netns/cni-42", "CNI_IFNAME=eth0",
          "CNI_PATH=/opt/cni/bin", "CNI_ARGS=IgnoreUnknown=1;" + args};
}

ProcessResult run_plugin(const std::vector<std::string>& env, const std::string& stdin_text) {
  REQUIRE_MESSAGE(std::filesystem::exists(plugin_path()), "build ambient_cni_plugin first: " << plugin_path());
  return run_process(plugin_path(), env, stdin_text);
}

boost::json::value parse_out(const ProcessResult& r) {
  auto doc = parse_json(r.out, "plugin stdout");
  REQUIRE_MESSAGE(doc, "stdout: " << r.out << "\nstderr: " << r.err);
  return *doc;
}

// A CNI error on stdout: checks its shape and returns it.
boost::json::object cni_error(const ProcessResult& r, int code) {
  CHECK_MESSAGE(r.exit_code == 1, "stderr: " << r.err);
  const boost::json::value v = parse_out(r);
  REQUIRE(v.is_object());
  const auto& o = v.as_object();
  CHECK(o.at("cniVersion").is_string());
  CHECK_MESSAGE(o.at("code").to_number<int>() == code, r.out);
  CHECK(o.at("msg").is_string());
  return o;
}

std::string field(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string().c_str()) : std::string();
}

}  // namespace

TEST_SUITE("cni/plugin") {
  TEST_CASE("ADD: posts the pod to the agent, then prints prevResult unchanged") {
    TempDir dir;
    ApiServerOptions opts;
    opts.socket_path = dir.file("agent.sock");
    ServerThread server(opts);
    const ProcessResult r = run_plugin(add_env(), config_json(opts.socket_path));
    CHECK_MESSAGE(r.exit_code == 0, "stdout: " << r.out << "\nstderr: " << r.err);
    auto prev = parse_json(kPrevResult, "prevResult");
    REQUIRE(prev);
    CHECK(parse_out(r) == *prev);
    CHECK(r.out == boost::json::serialize(*prev) + "\n");  // one line: logs never reach stdout

    auto added = server.on_server([&] { return server.events_unsafe().added; });
    REQUIRE(added.size() == 1);
    CHECK(added[0].source == PodSourceKind::Cni);
    CHECK(added[0].spec.uid == "uid-42");
    CHECK(added[0].spec.name == "web-0");
    CHECK(added[0].spec.namespace_ == "shop");
    CHECK(added[0].spec.service_account == "web");
    CHECK(added[0].spec.netns == "/var/run/netns/cni-42");
    CHECK(added[0].spec.ips == std::vector<std::string>{"10.244.0.7", "fd00:10:244::7"});
  }

  TEST_CASE("ADD: prevResult without cniVersion gets the config's") {
    TempDir dir;
    ApiServerOptions opts;
    opts.socket_path = dir.file("agent.sock");
    ServerThread server(opts);
    const std::string conf = R"({"cniVersion":"0.4.0","name":"n","type":"ambient-cni","agent_socket":")" +
                             opts.socket_path + R"(","prevResult":{"ips":[{"version":"4","address":"10.0.0.9/24"}]}})";
    const ProcessResult r = run_plugin(add_env(), conf);
    REQUIRE_MESSAGE(r.exit_code == 0, r.out << r.err);
    CHECK(r.out == R"({"ips":[{"version":"4","address":"10.0.0.9/24"}],"cniVersion":"0.4.0"})"
                   "\n");
  }

  TEST_CASE("ADD fails with a CNI error when the agent's handler fails") {
    TempDir dir;
    ApiServerOptions opts;
    opts.socket_path = dir.file("agent.sock");
    ServerThread server(opts);
    server.on_server([&] { server.events_unsafe().fail_with = make_error(ErrorKind::Unsupported, "no ztunnel connection"); });
    const ProcessResult r = run_plugin(add_env(), config_json(opts.socket_path));
    const auto o = cni_error(r, 11);
    CHECK(field(o, "msg") == "the ambient node agent did not enroll pod shop/web-0");
    CHECK_MESSAGE(field(o, "details").find("answered 500") != std::string::npos, r.out);
    CHECK_MESSAGE(field(o, "details").find("no ztunnel connection") != std::string::npos, r.out);
    CHECK(field(o, "cniVersion") == "1.0.0");
  }

  TEST_CASE("ADD: the agent refusing the request (4xx) is code 999") {
    TempDir dir;
    ApiServerOptions opts;
    opts.socket_path = dir.file("agent.sock");
    ServerThread server(opts);
    const ProcessResult r = run_plugin(add_env("K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0"), config_json(opts.socket_path));
    const auto o = cni_error(r, 999);
    CHECK_MESSAGE(field(o, "details").find("PodUID: missing") != std::string::npos, r.out);
    CHECK(server.on_server([&] { return server.events_unsafe().added.size(); }) == 0);
  }

  TEST_CASE("ADD fails (code 11, try again later) when no agent listens") {
    TempDir dir;
    const ProcessResult r = run_plugin(add_env(), config_json(dir.file("absent.sock")));
    const auto o = cni_error(r, 11);
    CHECK_MESSAGE(field(o, "details").find("is the node agent running?") != std::string::npos, r.out);
  }

  TEST_CASE("ADD passes excluded namespaces and non-Kubernetes containers through without the agent") {
    TempDir dir;
    const std::string conf = config_json(dir.file("absent.sock"));  // an agent call would fail
    auto prev = parse_json(kPrevResult, "prevResult");
    REQUIRE(prev);
    const ProcessResult excluded = run_plugin(add_env("K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1;K8S_POD_UID=u"), conf);
    CHECK_MESSAGE(excluded.exit_code == 0, excluded.out << excluded.err);
    CHECK(parse_out(excluded) == *prev);
    const ProcessResult not_k8s = run_plugin(add_env("FOO=bar"), conf);
    CHECK_MESSAGE(not_k8s.exit_code == 0, not_k8s.out << not_k8s.err);
    CHECK(parse_out(not_k8s) == *prev);
  }

  TEST_CASE("ADD input errors: codes 4, 6, 7, 1") {
    TempDir dir;
    const std::string sock = dir.file("agent.sock");
    SUBCASE("not JSON -> 6") {
      const auto o = cni_error(run_plugin(add_env(), "{not json"), 6);
      CHECK(field(o, "details").find("JSON syntax error at line 1 column 2") != std::string::npos);
    }
    SUBCASE("stdin over 1 MiB -> 6") {
      const std::string huge = R"({"cniVersion":"1.0.0","pad":")" + std::string(1100 * 1024, 'x') + R"("})";
      const auto o = cni_error(run_plugin(add_env(), huge), 6);
      CHECK(field(o, "details").find("larger than 1048576 bytes") != std::string::npos);
    }
    SUBCASE("no prevResult -> 7") {
      const auto o = cni_error(run_plugin(add_env(), config_json(sock, false)), 7);
      CHECK(field(o, "msg") == "prevResult is missing");
    }
    SUBCASE("a field of the wrong type -> 7") {
      const auto o = cni_error(run_plugin(add_env(), config_json(sock, true, R"(,"exclude_namespaces":"kube-system")")), 7);
      CHECK(field(o, "details").find("exclude_namespaces: expected an array") != std::string::npos);
    }
    SUBCASE("cniVersion missing -> 7") {
      const auto o = cni_error(run_plugin(add_env(), R"({"name":"n","type":"ambient-cni"})"), 7);
      CHECK(field(o, "details").find("cniVersion: missing") != std::string::npos);
    }
    SUBCASE("unsupported cniVersion -> 1") {
      const auto o = cni_error(run_plugin(add_env(), R"({"cniVersion":"0.2.0","name":"n","type":"t"})"), 1);
      CHECK(field(o, "cniVersion") == "0.2.0");
    }
    SUBCASE("CNI_NETNS missing -> 4") {
      std::vector<std::string> env = add_env();
      std::erase_if(env, [](const std::string& e) { return e.rfind("CNI_NETNS=", 0) == 0; });
      const auto o = cni_error(run_plugin(env, config_json(sock)), 4);
      CHECK(field(o, "msg") == "CNI_NETNS is not set");
    }
    SUBCASE("malformed CNI_ARGS -> 4") {
      const auto o = cni_error(run_plugin(add_env("K8S_POD_NAME"), config_json(sock)), 4);
      CHECK(field(o, "details").find("'K8S_POD_NAME' is not KEY=VALUE") != std::string::npos);
    }
    SUBCASE("CNI_COMMAND missing or unknown -> 4") {
      cni_error(run_plugin({}, config_json(sock)), 4);
      cni_error(run_plugin({"CNI_COMMAND=FROB"}, config_json(sock)), 4);
    }
  }

  TEST_CASE("VERSION") {
    const ProcessResult plain = run_plugin({"CNI_COMMAND=VERSION"}, "");
    CHECK(plain.exit_code == 0);
    CHECK(plain.out == R"({"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})"
                       "\n");
    const ProcessResult versioned = run_plugin({"CNI_COMMAND=VERSION"}, R"({"cniVersion":"0.4.0"})");
    CHECK(versioned.exit_code == 0);
    CHECK(versioned.out == R"({"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})"
                           "\n");
  }

  TEST_CASE("DEL, CHECK and GC are no-ops: exit 0, nothing on stdout, no agent needed") {
    TempDir dir;
    const std::string conf = config_json(dir.file("absent.sock"));
    for (const char* command : {"DEL", "CHECK", "GC"}) {
      CAPTURE(command);
      std::vector<std::string> env = add_env();
      env[0] = std::string("CNI_COMMAND=") + command;
      const ProcessResult r = run_plugin(env, conf);
      CHECK(r.exit_code == 0);
      CHECK(r.out.empty());
    }
  }

  TEST_CASE("STATUS: 50 without the agent's socket, success with it") {
    TempDir dir;
    ApiServerOptions opts;
    opts.socket_path = dir.file("agent.sock");
    cni_error(run_plugin({"CNI_COMMAND=STATUS"}, config_json(opts.socket_path)), 50);
    ServerThread server(opts);
    const ProcessResult r = run_plugin({"CNI_COMMAND=STATUS"}, config_json(opts.socket_path));
    CHECK_MESSAGE(r.exit_code == 0, r.out << r.err);
    CHECK(r.out.empty());
  }
}
