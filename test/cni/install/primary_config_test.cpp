// cni/install/primary_config.h: which file of the CNI config dir we chain into (libcni's choice).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cni/install/primary_config.h"

using namespace ambient;
using namespace ambient::cni::install;

TEST_SUITE("cni/install/primary_config") {
  TEST_CASE("pick: CNI_CONF_NAME, else the first config name by bytes, never our owned copy") {
    struct Row {
      const char* name;
      std::vector<std::string> files;
      std::string conf_name;
      std::string want;  // "" = NotFound
    };
    const std::string owned = "02-ambient-cni.conflist";
    const std::vector<Row> rows = {
        {"one conflist", {"10-flannel.conflist"}, "", "10-flannel.conflist"},
        {"first by name across extensions", {"20-b.conf", "10-a.conflist", "15-c.json"}, "", "10-a.conflist"},
        {".conf sorts before .conflist of the same stem", {"10-x.conflist", "10-x.conf"}, "", "10-x.conf"},
        {"byte order, not natural order", {"9-a.conf", "10-b.conf"}, "", "10-b.conf"},
        {"upper case sorts first", {"a.conf", "Z.conf"}, "", "Z.conf"},
        {"other files ignored", {"calico-kubeconfig", "README", "x.conf.bak", "00-x.yaml", "20-y.conflist"}, "", "20-y.conflist"},
        {"our owned copy is skipped", {"02-ambient-cni.conflist", "10-calico.conflist"}, "", "10-calico.conflist"},
        {"our temporary files are not configs", {".ambient-cni-Ab12Cd", "10-calico.conflist"}, "", "10-calico.conflist"},
        {"only our owned copy", {"02-ambient-cni.conflist"}, "", ""},
        {"empty dir", {}, "", ""},
        {"CNI_CONF_NAME wins over the first", {"05-a.conflist", "10-b.conflist"}, "10-b.conflist", "10-b.conflist"},
        {"CNI_CONF_NAME .conf renamed to .conflist", {"10-bridge.conflist"}, "10-bridge.conf", "10-bridge.conflist"},
        {"CNI_CONF_NAME .conflist found as .conf", {"10-bridge.conf"}, "10-bridge.conflist", "10-bridge.conf"},
        {"CNI_CONF_NAME absent: wait, do not take another", {"05-a.conflist"}, "10-b.conflist", ""},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      auto got = pick_primary_config(row.files, row.conf_name, owned, "/host/etc/cni/net.d");
      if (row.want.empty()) {
        REQUIRE_FALSE(got.has_value());
        CHECK(got.error().kind == ErrorKind::NotFound);
      } else {
        REQUIRE_MESSAGE(got.has_value(), std::string(got ? std::string() : got.error().message()));
        CHECK(*got == row.want);
      }
    }
  }

  TEST_CASE("errors name the directory and the setting") {
    auto none = pick_primary_config({"README"}, "", "02-ambient-cni.conflist", "/host/etc/cni/net.d");
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error().context == "no CNI config file (*.conf, *.conflist, *.json) in /host/etc/cni/net.d");
    auto named = pick_primary_config({}, "10-calico.conflist", "02-ambient-cni.conflist", "/host/etc/cni/net.d");
    REQUIRE_FALSE(named.has_value());
    CHECK(named.error().context == "CNI_CONF_NAME 10-calico.conflist: no such file in /host/etc/cni/net.d");
  }

  TEST_CASE("is_cni_config_name: the extension after the last dot") {
    CHECK(is_cni_config_name("10-a.conf"));
    CHECK(is_cni_config_name("10-a.conflist"));
    CHECK(is_cni_config_name("10-a.json"));
    CHECK(is_cni_config_name(".conf"));
    CHECK_FALSE(is_cni_config_name("10-a.conf.bak"));
    CHECK_FALSE(is_cni_config_name("conf"));
    CHECK_FALSE(is_cni_config_name("10-a.CONF"));
    CHECK_FALSE(is_cni_config_name(".ambient-cni-XyZ123"));
  }
}
