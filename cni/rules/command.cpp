#include "cni/rules/command.h"

namespace ambient::cni {

std::string describe(const Command& command) {
  std::string out;
  for (const auto& arg : command.argv) {
    if (!out.empty()) out += ' ';
    out += arg;
  }
  return out;
}

}  // namespace ambient::cni
