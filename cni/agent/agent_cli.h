#pragma once
// The `cni-agent` command line: `run` (the daemon) and the CLI verbs that talk to a running agent over its
// unix-socket API (`enroll`, `unenroll`, `pods`), for machines without Kubernetes and for tests.
// Flags use Istio's environment names where the meaning is shared (flag > env > default).
#include <string>

#include "cni/agent/node_agent.h"
#include "cni/api/api_server.h"
#include "common/base/result.h"

namespace ambient::cni {

struct AgentRunConfig {
  NodeAgentOptions agent;
  ApiServerOptions api;
  std::string log_level = "info";
};

// `cni-agent run [flags]`: argv starts at the verb. Sets *help to the usage text for --help.
Result<AgentRunConfig> parse_run_config(int argc, const char* const* argv, std::string* help);

// `cni-agent enroll|unenroll|pods [flags]`: runs the verb against the agent's socket and returns what to
// print (the agent's JSON answer). Errors name the flag or carry the agent's answer.
Result<std::string> run_cli_verb(const std::string& verb, int argc, const char* const* argv, std::string* help);

std::string top_usage();

}  // namespace ambient::cni
