#pragma once
// Builds a Snapshot from local-config YAML (the real parser), for decision tables.
#include <doctest/doctest.h>

#include <memory>
#include <string_view>

#include "common/state/local_config.h"
#include "common/state/snapshot_builder.h"

namespace ambient::test {

inline std::shared_ptr<const state::Snapshot> snapshot_from_yaml(std::string_view yaml) {
  auto cfg = state::parse_local_config(yaml, "test.yaml");
  REQUIRE_MESSAGE(cfg.has_value(), (cfg ? std::string() : cfg.error().message()));
  state::SnapshotBuilder b;
  for (const auto& a : cfg->addresses) {
    auto r = b.upsert(a);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
  }
  for (const auto& p : cfg->policies) {
    auto r = b.upsert(p);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
  }
  return b.build();
}

}  // namespace ambient::test
