// fuzz_local_config: state::parse_local_config + state::apply_local_config (common/state/local_config.h) on
// one file's text: ztunnel's LOCAL_XDS_PATH / LOCAL_XDS YAML (Istio's shape), which the waypoint loads too.
//
// Input: the file's text. Invariants:
//  - errors are InvalidArgument / Parse / Unsupported / ResourceExhausted and start with "<source>:<line>:",
//    the 1-based line of the offending node (a field path follows for field errors);
//  - an accepted config applies (apply_local_config) and builds a snapshot holding exactly its workloads,
//    services and policies (keys are unique, every resource passed validation);
//  - applying it again over the built state gives the same keys (it replaces the whole state);
//  - every workload IP (not host network) and every VIP of the snapshot finds a resource holding it.
// Seeds are files, copied into corpus/fuzz_local_config/: ztunnel/examples/embedded.yaml,
// test/data/configs/localhost.yaml, the YAML of test/common/state/local_config_test.cpp and
// test/ztunnel/proxy/inbound_request_test.cpp, and fuzz_waypoint_config's regression_* (same YAML walker:
// alias expansion, a top-level ',').
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/state/local_config.h"
#include "common/state/snapshot_builder.h"
#include "test/fuzz/fuzz_protobuf.h"
#include "test/fuzz/fuzz_snapshot.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
constexpr std::string_view kSource = "local.yaml";

// "<source>:<digits>: " at the start.
bool names_a_line(std::string_view context) {
  if (!context.starts_with(kSource) || context.size() <= kSource.size() + 1 || context[kSource.size()] != ':') return false;
  std::size_t i = kSource.size() + 1;
  const std::size_t digits = i;
  while (i < context.size() && std::isdigit(static_cast<unsigned char>(context[i]))) ++i;
  return i > digits && context[digits] != '0' && context.substr(i).starts_with(": ");
}

std::size_t count_workloads(const state::LocalConfig& c) {
  return static_cast<std::size_t>(
      std::count_if(c.addresses.begin(), c.addresses.end(), [](const auto& a) { return a.has_workload(); }));
}

template <typename Map>
std::vector<std::string> keys(const Map& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::silence_protobuf_logs();
  spdlog::set_level(spdlog::level::off);  // SnapshotBuilder::build logs each new warning
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto config = state::parse_local_config(fuzz::as_text(data, size), kSource);
  if (!config) {
    fuzz::check_error(config.error(), {ErrorKind::InvalidArgument, ErrorKind::Parse, ErrorKind::Unsupported,
                                       ErrorKind::ResourceExhausted});
    FUZZ_CHECK(names_a_line(config.error().context), "error without its source and line: {:?}", config.error().context);
    return 0;
  }
  state::SnapshotBuilder builder;
  auto applied = state::apply_local_config(*config, builder);
  FUZZ_CHECK(applied.has_value(), "an accepted config does not apply: {}", applied ? "" : applied.error().context);
  const auto snap = builder.build();
  const std::size_t workloads = count_workloads(*config);
  FUZZ_CHECK(snap->workloads().size() == workloads && snap->services().size() == config->addresses.size() - workloads &&
                 snap->policies().size() == config->policies.size(),
             "snapshot holds {}/{}/{} of {}/{}/{} workloads/services/policies", snap->workloads().size(),
             snap->services().size(), snap->policies().size(), workloads, config->addresses.size() - workloads,
             config->policies.size());
  fuzz::check_snapshot_lookups(*snap);

  auto again = state::apply_local_config(*config, builder);
  FUZZ_CHECK(again.has_value(), "a second apply failed: {}", again ? "" : again.error().context);
  const auto snap2 = builder.build();
  FUZZ_CHECK(keys(snap2->workloads()) == keys(snap->workloads()) && keys(snap2->services()) == keys(snap->services()) &&
                 keys(snap2->policies()) == keys(snap->policies()),
             "a second apply changed the keys");
  return 0;
}
