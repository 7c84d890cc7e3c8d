// cni/install/install_options.h: Istio's install-cni settings as flags and environment variables.
#include <doctest/doctest.h>

#include <stdlib.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "cni/install/install_files.h"
#include "cni/install/install_options.h"

using namespace ambient;
using namespace ambient::cni::install;

namespace {

const char* const kVars[] = {"INSTALL_CNI",           "CNI_BIN_DIR",       "CNI_BIN_TARGET_DIRS",
                             "MOUNTED_CNI_NET_DIR",   "CNI_CONF_NAME",     "CHAINED_CNI_PLUGIN",
                             "ISTIO_OWNED_CNI_CONFIG", "ISTIO_OWNED_CNI_CONFIG_FILENAME"};

// Clears the installer's variables for the test and restores them after.
class EnvGuard {
 public:
  EnvGuard() {
    for (const char* v : kVars) {
      const char* old = ::getenv(v);
      saved_.push_back(old ? std::optional<std::string>(old) : std::nullopt);
      ::unsetenv(v);
    }
  }
  ~EnvGuard() {
    for (std::size_t i = 0; i < saved_.size(); ++i) {
      if (saved_[i]) {
        ::setenv(kVars[i], saved_[i]->c_str(), 1);
      } else {
        ::unsetenv(kVars[i]);
      }
    }
  }
  void set(const char* name, const char* value) { ::setenv(name, value, 1); }

 private:
  std::vector<std::optional<std::string>> saved_;
};

Result<CniInstallOptions> parse(std::vector<const char*> args, PluginEntry entry = {}) {
  args.insert(args.begin(), "cni-agent");
  config::Options o;
  add_install_options(o);
  if (auto r = o.parse(static_cast<int>(args.size()), args.data()); !r) return std::move(r).error();
  return install_options_from(o, std::move(entry));
}

}  // namespace

TEST_SUITE("cni/install/install_options") {
  TEST_CASE("defaults: off, chained into the host's dirs, binary from our own directory") {
    EnvGuard env;
    auto o = parse({});
    REQUIRE_MESSAGE(o.has_value(), std::string(o ? std::string() : o.error().message()));
    CHECK_FALSE(o->install_cni);
    CHECK(o->chained);
    CHECK_FALSE(o->owned_config);
    CHECK(o->cni_bin_target_dirs == std::vector<std::string>{"/host/opt/cni/bin"});
    CHECK(o->mounted_cni_net_dir == "/host/etc/cni/net.d");
    CHECK(o->cni_conf_name.empty());
    CHECK(o->owned_config_file_name == "02-ambient-cni.conflist");
    char exe[4096] = {};
    REQUIRE(::readlink("/proc/self/exe", exe, sizeof exe - 1) > 0);
    CHECK(o->cni_bin_dir == dir_of(exe));
    CHECK(source_binary_path(*o) == dir_of(exe) + "/ambient-cni");
    CHECK(standalone_file_name(*o) == "YYY-ambient-cni.conflist");
  }

  TEST_CASE("environment (Istio's names), then flags over them; the caller's entry is kept") {
    EnvGuard env;
    env.set("INSTALL_CNI", "true");
    env.set("CNI_BIN_DIR", "/opt/ambient/bin");
    env.set("CNI_BIN_TARGET_DIRS", "/host/opt/cni/bin, /host/home/kubernetes/bin,,");
    env.set("MOUNTED_CNI_NET_DIR", "/host/var/lib/rancher/k3s/agent/etc/cni/net.d");
    env.set("CNI_CONF_NAME", "10-flannel.conflist");
    env.set("CHAINED_CNI_PLUGIN", "true");
    env.set("ISTIO_OWNED_CNI_CONFIG", "1");
    env.set("ISTIO_OWNED_CNI_CONFIG_FILENAME", "01-mine.conflist");
    PluginEntry entry;
    entry.agent_socket = "/var/run/ambient-cni/agent.sock";
    entry.exclude_namespaces = {"kube-system"};
    auto o = parse({}, entry);
    REQUIRE_MESSAGE(o.has_value(), std::string(o ? std::string() : o.error().message()));
    CHECK(o->install_cni);
    CHECK(o->cni_bin_dir == "/opt/ambient/bin");
    CHECK(o->cni_bin_target_dirs == std::vector<std::string>{"/host/opt/cni/bin", "/host/home/kubernetes/bin"});
    CHECK(o->mounted_cni_net_dir == "/host/var/lib/rancher/k3s/agent/etc/cni/net.d");
    CHECK(o->cni_conf_name == "10-flannel.conflist");
    CHECK(o->owned_config);
    CHECK(o->owned_config_file_name == "01-mine.conflist");
    CHECK(o->entry.agent_socket == "/var/run/ambient-cni/agent.sock");
    CHECK(o->entry.exclude_namespaces == std::vector<std::string>{"kube-system"});

    auto f = parse({"--install-cni=false", "--chained-cni-plugin=false", "--cni-bin-target-dirs", "/a,/b",
                    "--istio-owned-cni-config=false", "--cni-conf-name="});
    REQUIRE_MESSAGE(f.has_value(), std::string(f ? std::string() : f.error().message()));
    CHECK_FALSE(f->install_cni);
    CHECK_FALSE(f->chained);
    CHECK_FALSE(f->owned_config);
    CHECK(f->cni_bin_target_dirs == std::vector<std::string>{"/a", "/b"});
    CHECK(f->cni_conf_name.empty());
    CHECK(standalone_file_name(*f) == "YYY-ambient-cni.conflist");

    auto sw = parse({"--install-cni"});  // a switch alone means true
    REQUIRE(sw.has_value());
    CHECK(sw->install_cni);
  }

  TEST_CASE("bad values are refused naming the flag, the variable and where the value came from") {
    EnvGuard env;
    struct Row {
      std::vector<const char*> args;
      const char* env_name;
      const char* env_value;
      std::string message;  // contained in the error
    };
    const std::vector<Row> rows = {
        {{}, "INSTALL_CNI", "maybe", "environment variable INSTALL_CNI: 'maybe' is not a boolean"},
        {{"--chained-cni-plugin=2"}, nullptr, nullptr, "flag --chained-cni-plugin: '2' is not a boolean"},
        {{"--cni-bin-target-dirs= , "}, nullptr, nullptr, "--cni-bin-target-dirs (CNI_BIN_TARGET_DIRS, from flag): ' , ' names no directory"},
        {{}, "CNI_BIN_TARGET_DIRS", "/host/opt/cni/bin,opt/cni", "(CNI_BIN_TARGET_DIRS, from env): '/host/opt/cni/bin,opt/cni' holds a relative path"},
        {{"--mounted-cni-net-dir=etc/cni"}, nullptr, nullptr, "--mounted-cni-net-dir (MOUNTED_CNI_NET_DIR, from flag): 'etc/cni' is not an absolute path"},
        {{"--cni-conf-name=../10-x.conflist"}, nullptr, nullptr, "'../10-x.conflist' is not a file name"},
        {{"--istio-owned-cni-config-filename=02-ambient.conf"}, nullptr, nullptr, "must be a *.conflist name"},
        {{"--istio-owned-cni-config-filename=.conflist"}, nullptr, nullptr, "must be a *.conflist name"},
        {{"--cni-conf-name=10-x.conflist", "--istio-owned-cni-config-filename=10-x.conflist"}, nullptr, nullptr,
         "is also CNI_CONF_NAME"},
        {{"--cni-bin-dirs=/x"}, nullptr, nullptr, "unknown flag --cni-bin-dirs"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.message);
      EnvGuard inner;
      if (row.env_name != nullptr) inner.set(row.env_name, row.env_value);
      auto o = parse(row.args);
      REQUIRE_FALSE(o.has_value());
      CHECK(o.error().kind == ErrorKind::InvalidArgument);
      CHECK_MESSAGE(o.error().context.find(row.message) != std::string::npos, std::string(o.error().context));
    }
  }
}
