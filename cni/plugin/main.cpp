// ambient-cni: the chained CNI plugin of the ambient node agent.
//
// The runtime (containerd, CRI-O) runs it after the primary plugin with the command in CNI_COMMAND,
// the container's details in CNI_* variables and the network configuration (with the primary's result
// as prevResult) on stdin. The plugin never touches pod networking itself: on ADD it hands the pod to
// the node agent (POST /cmdadd on the agent's unix socket, 5 s timeout) and, once the agent has
// enrolled it, passes prevResult through. The agent answering non-200, or not answering, fails the
// ADD: the pod sandbox is not created and the kubelet retries (so a pod never starts unredirected).
//
//   ADD      excluded namespace or no K8S_POD_NAME/NAMESPACE -> prevResult; else POST /cmdadd first
//   DEL, GC  no-ops (removal follows the pod's deletion in the agent), exit 0
//   CHECK    no-op, prints nothing, exit 0
//   STATUS   error 50 when the agent socket is absent, else exit 0
//   VERSION  {"cniVersion":..,"supportedVersions":[..]}
//
// stdout carries only the result or the CNI error JSON; logs go to stderr. Exit 0 on success, 1 on
// error (error codes: cni_protocol.h).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "cni/api/api_client.h"
#include "cni/api/cmdadd.h"
#include "cni/api/json_fields.h"
#include "cni/plugin/cni_protocol.h"
#include "common/base/log.h"

namespace {

using namespace ambient;
using namespace ambient::cni;
using namespace ambient::cni::plugin;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

// Reads stdin up to kMaxStdinBytes + 1 (so the caller can tell an oversized config).
Result<std::string> read_stdin() {
  std::string text;
  char buf[16 * 1024];
  while (text.size() <= kMaxStdinBytes) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errorf(ErrorKind::Io, "reading stdin: {}", std::strerror(errno));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  if (text.size() > kMaxStdinBytes) text.resize(kMaxStdinBytes + 1);
  return text;
}

bool print(std::string_view text) {
  const std::string line = std::string(text) + "\n";
  return std::fwrite(line.data(), 1, line.size(), stdout) == line.size() && std::fflush(stdout) == 0;
}

// Prints the CNI error and returns the exit status.
int fail(std::string_view cni_version, int code, std::string_view msg, std::string_view details = {}) {
  spdlog::error("ambient-cni: {} (code {}){}{}", msg, code, details.empty() ? "" : ": ", details);
  print(error_reply(cni_version, code, msg, details));
  return 1;
}

int fail(std::string_view cni_version, const Error& e, std::string_view msg) {
  return fail(cni_version, e.code, msg, e.context);
}

int cmd_add(const std::string& stdin_text) {
  auto config = parse_network_config(stdin_text);
  if (!config) return fail(peek_cni_version(stdin_text), config.error(), "invalid network configuration");
  if (auto level = log::set_level(config->log_level); !level) {
    spdlog::warn("ambient-cni: plugin_log_level: {}", level.error().context);
  }
  const std::string& version = config->cni_version;

  const std::string container_id = env("CNI_CONTAINERID");
  const std::string netns = env("CNI_NETNS");
  const std::string ifname = env("CNI_IFNAME");
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"CNI_CONTAINERID", &container_id},
                                    {"CNI_NETNS", &netns},
                                    {"CNI_IFNAME", &ifname}}) {
    if (value->empty()) return fail(version, kCniInvalidEnvironment, fmt::format("{} is not set", name));
  }
  auto args = parse_cni_args(env("CNI_ARGS"));
  if (!args) return fail(version, args.error(), "invalid CNI_ARGS");
  if (!config->prev_result) {
    return fail(version, kCniInvalidConfig, "prevResult is missing",
                "ambient-cni is a chained plugin: list it after the primary plugin in the conflist");
  }

  auto arg = [&args](std::string_view key) {
    auto it = args->find(key);
    return it == args->end() ? std::string() : it->second;
  };
  CmdAddRequest request;
  request.netns = netns;
  request.pod_name = arg("K8S_POD_NAME");
  request.pod_namespace = arg("K8S_POD_NAMESPACE");
  request.pod_uid = arg("K8S_POD_UID");
  request.service_account = config->service_account;
  if (request.pod_name.empty() || request.pod_namespace.empty()) {
    spdlog::debug("ambient-cni: container {} is not a Kubernetes pod (no K8S_POD_NAME/K8S_POD_NAMESPACE)",
                  container_id);
    return print(add_result(*config)) ? 0 : 1;
  }
  const auto& excluded = config->exclude_namespaces;
  if (std::find(excluded.begin(), excluded.end(), request.pod_namespace) != excluded.end()) {
    spdlog::debug("ambient-cni: pod {}/{}: namespace excluded", request.pod_namespace, request.pod_name);
    return print(add_result(*config)) ? 0 : 1;
  }
  auto addresses = prev_result_addresses(*config->prev_result);
  if (!addresses) return fail(version, addresses.error(), "invalid prevResult");
  request.addresses = std::move(*addresses);

  ApiClientOptions client_options;
  client_options.socket_path = config->agent_socket;
  const ApiClient client(client_options);
  auto reply = client.post("/cmdadd", cmdadd_to_json(request));
  if (!reply) {
    const Error& e = reply.error();
    const bool refused = e.kind == ErrorKind::HttpStatus && e.code >= 400 && e.code < 500;
    return fail(version, refused ? kCniAgentRefused : kCniTryAgainLater,
                fmt::format("the ambient node agent did not enroll pod {}/{}", request.pod_namespace, request.pod_name),
                e.message());
  }
  spdlog::info("ambient-cni: pod {}/{} enrolled by the node agent", request.pod_namespace, request.pod_name);
  return print(add_result(*config)) ? 0 : 1;
}

int cmd_status(const std::string& stdin_text) {
  auto config = parse_network_config(stdin_text);
  if (!config) return fail(peek_cni_version(stdin_text), config.error(), "invalid network configuration");
  struct stat st {};
  if (::stat(config->agent_socket.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return fail(config->cni_version, kCniNotAvailable, "the ambient node agent is not running",
                fmt::format("no socket at {}", config->agent_socket));
  }
  return 0;
}

}  // namespace

int main() {
  (void)ambient::log::init("info");  // stderr only: stdout is the CNI result
  auto input = read_stdin();
  const std::string command = env("CNI_COMMAND");
  if (!input) return fail("", kCniDecodingFailure, "cannot read the network configuration", input.error().context);
  const std::string& stdin_text = *input;

  if (command == "VERSION") return print(version_reply(peek_cni_version(stdin_text))) ? 0 : 1;
  if (command == "ADD") return cmd_add(stdin_text);
  if (command == "DEL" || command == "GC" || command == "CHECK") {
    spdlog::debug("ambient-cni: {} for container {}: nothing to do", command, env("CNI_CONTAINERID"));
    return 0;
  }
  if (command == "STATUS") return cmd_status(stdin_text);
  return fail(peek_cni_version(stdin_text), kCniInvalidEnvironment,
              command.empty() ? std::string("CNI_COMMAND is not set")
                              : fmt::format("CNI_COMMAND '{}' is not one of ADD, DEL, CHECK, VERSION, STATUS, GC",
                                            utf8_prefix(command, 40)));
}
