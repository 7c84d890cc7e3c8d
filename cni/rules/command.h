#pragma once
// Command: one external program invocation (argv plus optional stdin text), as produced by the pure rule
// generators and executed by run_in_netns(). A value type: no I/O here.
#include <string>
#include <vector>

namespace ambient::cni {

struct Command {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH and the usual sbin directories
  std::string stdin_text;         // fed to the program's stdin (empty: stdin reads EOF at once)

  friend bool operator==(const Command&, const Command&) = default;
};

// "iptables-restore --noflush" (argv joined by spaces; stdin not shown), for logs and error messages.
std::string describe(const Command& command);

}  // namespace ambient::cni
