// When the agent removes the CNI plugin on shutdown: only when its DaemonSet is gone or being deleted.
#include "cni/agent/plugin_removal.h"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

using namespace ambient;
using namespace ambient::cni;

TEST_SUITE("cni/agent/plugin_removal") {
  TEST_CASE("the DaemonSet's state decides") {
    struct Row {
      Result<boost::json::value> answer;
      bool remove;
      const char* reason_part;
    };
    const std::string what = "DaemonSet istio-system/istio-cni-node";
    const Row rows[] = {
        {errorf(ErrorKind::NotFound, "daemonsets \"istio-cni-node\" not found"), true, "is gone"},
        {boost::json::parse(R"({"metadata":{"name":"istio-cni-node","deletionTimestamp":"2026-12-06T10:00:00Z"}})"), true, "is being deleted"},
        {boost::json::parse(R"({"metadata":{"name":"istio-cni-node"},"spec":{}})"), false, "an upgrade or a restart"},
        {boost::json::parse(R"({"metadata":{"name":"istio-cni-node","deletionTimestamp":null}})"), false, "still there"},
        {errorf(ErrorKind::Timeout, "GET timed out"), false, "cannot tell"},
        {errorf(ErrorKind::HttpStatus, "403: forbidden"), false, "the plugin stays"},
        {boost::json::parse(R"([1,2])"), false, "still there"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.reason_part);
      const auto d = decide_plugin_removal(row.answer, what);
      CHECK(d.remove == row.remove);
      CHECK(d.reason.find(what) != std::string::npos);
      CHECK_MESSAGE(d.reason.find(row.reason_part) != std::string::npos, d.reason);
    }
  }
}
