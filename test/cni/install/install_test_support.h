#pragma once
// Shared by the cni/install suites: the fixtures in test/cni/install/testdata (typical primary CNIs and
// broken files), the golden outputs next to them, and the plugin entry the goldens were made with.
//
// Goldens: `<fixture>.golden` is insert_plugin's output for `<fixture>`; `<fixture>.removed.golden` is
// remove_plugin's. AMBIENT_UPDATE_GOLDENS=1 rewrites them from the code (then review the diff).
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <boost/json/object.hpp>
#include <doctest/doctest.h>

#include "cni/install/conflist.h"
#include "test/support/paths.h"

namespace ambient::cni::install::test_support {

inline std::string testdata_path(const std::string& name) {
  return ambient::test::source_dir() + "/test/cni/install/testdata/" + name;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), std::string(std::string("cannot read ") + path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string testdata(const std::string& name) { return read_text(testdata_path(name)); }

inline bool updating_goldens() {
  const char* v = std::getenv("AMBIENT_UPDATE_GOLDENS");
  return v != nullptr && std::string(v) == "1";
}

// Checks `actual` against testdata/<golden>, or rewrites it under AMBIENT_UPDATE_GOLDENS=1.
inline void check_golden(const std::string& golden, const std::string& actual) {
  const std::string path = testdata_path(golden);
  if (updating_goldens()) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << actual;
    REQUIRE(out.good());
    MESSAGE("rewrote " << path);
    return;
  }
  const std::string expected = read_text(path);
  CHECK_MESSAGE(actual == expected, std::string(std::string("differs from ") + path + " (AMBIENT_UPDATE_GOLDENS=1 rewrites it):\n" + actual));
}

// The entry every golden holds.
inline PluginEntry golden_entry() {
  PluginEntry e;
  e.agent_socket = "/var/run/ambient-cni/agent.sock";
  e.log_level = "debug";
  e.exclude_namespaces = {"kube-system", "istio-system"};
  return e;
}

inline boost::json::object golden_entry_json() { return plugin_entry_json(golden_entry()); }

}  // namespace ambient::cni::install::test_support
