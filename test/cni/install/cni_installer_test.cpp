// cni/install/cni_installer.h end to end on real files: a fake node's /opt/cni/bin and /etc/cni/net.d in a
// temp dir, a fake plugin binary, and the installer on an io_context the test runs until the event it awaits
// (Installed, Repaired, Waiting, Failed) arrives: no sleeps, the deadline only bounds a failure.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "cni/install/config_json.h"
#include "cni/install/cni_installer.h"
#include "cni/install/conflist.h"
#include "cni/install/install_files.h"
#include "test/cni/install/install_test_support.h"
#include "test/support/run_coro.h"
#include "test/support/temp_dir.h"

using namespace ambient;
using namespace ambient::cni;
using namespace ambient::cni::install;
using namespace ambient::cni::install::test_support;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// 200 KiB, so the chunked compare and copy (64 KiB) take several rounds. `version` changes one byte in the
// middle: same size, other content.
std::string fake_plugin(char version = '1') {
  std::string bin = "#!/bin/sh\n# fake ambient-cni\n";
  for (std::size_t i = 0; bin.size() < 200 * 1024; ++i) bin += static_cast<char>('a' + i % 26);
  bin[100 * 1024] = version;
  return bin;
}

void write_in_place(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  REQUIRE(out.good());
}

// How a CNI installs its config: a temporary file renamed over the old one.
void replace_by_rename(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp-cni";
  write_in_place(tmp, content);
  fs::rename(tmp, path);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

json::value parse(const std::string& text) {
  auto v = parse_config_json(text, "test");
  REQUIRE_MESSAGE(v.has_value(), std::string(v ? std::string() : v.error().message()));
  return *v;
}

bool contains(const std::vector<std::string>& lines, const std::string& part) {
  for (const auto& l : lines) {
    if (l.find(part) != std::string::npos) return true;
  }
  return false;
}

std::vector<std::string> dir_names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A fake node: the plugin's source dir, the host's CNI bin and config dirs, and an installer.
class Node {
 public:
  Node() : tmp_("ambient-install") {
    fs::create_directories(src_dir);
    fs::create_directories(net_dir);  // bin_dir is created by the installer
    write_in_place(src_dir + "/ambient-cni", fake_plugin());
  }
  ~Node() {
    installer.reset();
    io.run();  // the installer's cancelled loops finish; nothing else may be left running
  }

  CniInstallOptions options() const {
    CniInstallOptions o;
    o.install_cni = true;
    o.cni_bin_dir = src_dir;
    o.cni_bin_target_dirs = {bin_dir};
    o.mounted_cni_net_dir = net_dir;
    o.entry = golden_entry();
    o.debounce_quiet = 50ms;
    o.debounce_max = 500ms;
    o.recheck_interval = 1h;  // repairs must come from inotify, unless a test says otherwise
    return o;
  }

  void start(CniInstallOptions o) {
    o.on_event = [this](const InstallEvent& e) {
      events.push_back(e);
      notify_.cancel();
    };
    installer = std::make_unique<CniInstaller>(io.get_executor(), std::move(o));
    REQUIRE(installer->start().has_value());
  }
  void start() { start(options()); }

  // Runs the installer until an event of `kind` arrives (events of other kinds are skipped, and kept).
  InstallEvent await(InstallEventKind kind, std::chrono::milliseconds limit = 10s) {
    auto got = ambient::test::run_coro(io, wait_for(this, kind, limit));
    const std::string why = std::string("no ") + std::string(to_string(kind)) +
                            " event within the deadline; last error: " +
                            (installer ? installer->stats().last_error : std::string());
    REQUIRE_MESSAGE(got.has_value(), why);
    return *got;
  }

  const CniInstallerStats& stats() const { return installer->stats(); }
  std::string net(const std::string& name) const { return net_dir + "/" + name; }
  std::string bin() const { return bin_dir + "/ambient-cni"; }

  ambient::test::TempDir tmp_;
  const std::string src_dir = tmp_.path() + "/src";
  const std::string bin_dir = tmp_.path() + "/host/opt/cni/bin";
  const std::string net_dir = tmp_.path() + "/host/etc/cni/net.d";
  asio::io_context io;
  std::unique_ptr<CniInstaller> installer;
  std::vector<InstallEvent> events;
  std::size_t seen = 0;

 private:
  static asio::awaitable<std::optional<InstallEvent>> wait_for(Node* node, InstallEventKind kind,
                                                               std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      while (node->seen < node->events.size()) {
        const InstallEvent& e = node->events[node->seen++];
        if (e.kind == kind) co_return e;
      }
      if (std::chrono::steady_clock::now() >= deadline) co_return std::nullopt;
      node->notify_.expires_at(deadline);
      co_await node->notify_.async_wait(asio::as_tuple(asio::use_awaitable));  // cancelled by an event
    }
  }
  asio::steady_timer notify_{io};
};

}  // namespace

TEST_SUITE("cni/install/cni_installer") {
  TEST_CASE("install: copies the binary (0755) and chains our entry into the primary, keeping its mode") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
    fs::permissions(node.net("10-flannel.conflist"), fs::perms::owner_read | fs::perms::owner_write);
    node.start();
    const InstallEvent e = node.await(InstallEventKind::Installed);
    CHECK(e.trigger == "start");
    REQUIRE(e.changes.size() == 2);
    CHECK(e.changes[0] == "binary " + node.bin() + " missing: copied from " + node.src_dir + "/ambient-cni");
    CHECK(e.changes[1] == "ambient-cni entry missing from " + node.net("10-flannel.conflist") + ": inserted");

    CHECK(read_text(node.bin()) == fake_plugin());
    CHECK(mode_of(node.bin()) == 0755);
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("flannel.conflist.golden"));
    CHECK(mode_of(node.net("10-flannel.conflist")) == 0600);
    CHECK(node.stats().installs == 1);
    CHECK(node.stats().installed);
    CHECK(node.stats().repairs == 0);
    CHECK(node.stats().config_path == node.net("10-flannel.conflist"));
    // Only the files we meant: no temporaries left behind.
    CHECK(dir_names(node.net_dir) == std::vector<std::string>{"10-flannel.conflist"});
    CHECK(dir_names(node.bin_dir) == std::vector<std::string>{"ambient-cni"});
  }

  TEST_CASE("install: a single-plugin .conf becomes the equivalent .conflist with our entry") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-bridge.conf", testdata("bridge.conf"));
    node.start();
    const InstallEvent e = node.await(InstallEventKind::Installed);
    CHECK(contains(e.changes, "(converted to a list: 10-bridge.conflist)"));
    CHECK(dir_names(node.net_dir) == std::vector<std::string>{"10-bridge.conflist"});
    CHECK(read_text(node.net("10-bridge.conflist")) == testdata("bridge.conf.golden"));
    CHECK(node.stats().config_path == node.net("10-bridge.conflist"));
  }

  TEST_CASE("install: a node already set up is not rewritten; CNI_CONF_NAME picks a file other than the first") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/05-other.conflist", testdata("calico.conflist"));
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist.golden"));
    fs::create_directories(node.bin_dir);
    node.tmp_.write("host/opt/cni/bin/ambient-cni", fake_plugin());
    fs::permissions(node.bin(), fs::perms(0755));
    const ino_t config_inode = inode_of(node.net("10-flannel.conflist"));
    const ino_t bin_inode = inode_of(node.bin());
    CniInstallOptions o = node.options();
    o.cni_conf_name = "10-flannel.conflist";
    node.start(o);
    const InstallEvent e = node.await(InstallEventKind::Installed);
    CHECK(e.changes.empty());
    CHECK(inode_of(node.net("10-flannel.conflist")) == config_inode);
    CHECK(inode_of(node.bin()) == bin_inode);
    CHECK(read_text(node.net("05-other.conflist")) == testdata("calico.conflist"));
  }

  TEST_CASE("repair: the primary CNI rewrites its file without our entry") {
    for (const std::string how : {"in place", "by rename", "entry edited out"}) {
      CAPTURE(how);
      Node node;
      node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
      node.start();
      node.await(InstallEventKind::Installed);
      const std::string path = node.net("10-flannel.conflist");
      if (how == "in place") {
        write_in_place(path, testdata("flannel.conflist"));
      } else if (how == "by rename") {
        replace_by_rename(path, testdata("flannel.conflist"));
      } else {
        auto removed = remove_plugin("10-flannel.conflist", read_text(path));
        REQUIRE(removed.has_value());
        write_in_place(path, removed->text);
      }
      const InstallEvent e = node.await(InstallEventKind::Repaired);
      CHECK_MESSAGE(e.trigger.find(path) == 0, std::string(e.trigger));
      REQUIRE(e.changes.size() == 1);
      CHECK(e.changes[0] == "ambient-cni entry missing from " + path + ": inserted");
      CHECK(read_text(path) == testdata("flannel.conflist.golden"));
      CHECK(node.stats().repairs == 1);
      CHECK(node.stats().last_repair == e.changes[0]);
    }
  }

  TEST_CASE("repair: our binary deleted, or overwritten with other bytes") {
    for (const bool deleted : {true, false}) {
      CAPTURE(deleted);
      Node node;
      node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
      node.start();
      node.await(InstallEventKind::Installed);
      if (deleted) {
        fs::remove(node.bin());
      } else {
        write_in_place(node.bin(), fake_plugin('2'));  // same size, one byte differs
      }
      const InstallEvent e = node.await(InstallEventKind::Repaired);
      REQUIRE(e.changes.size() == 1);
      CHECK(e.changes[0].find(deleted ? "missing: copied" : "differed from") != std::string::npos);
      CHECK(read_text(node.bin()) == fake_plugin());
      CHECK(mode_of(node.bin()) == 0755);
    }
  }

  TEST_CASE("debounce: a burst of rewrites is one repair pass") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
    node.start();
    node.await(InstallEventKind::Installed);
    const auto passes = node.stats().passes;
    const auto events = node.stats().events;
    // Alternating kinds of writes: inotify merges an event identical to the one queued before it.
    for (int i = 0; i < 20; ++i) {
      if (i % 2 == 0) {
        write_in_place(node.net("10-flannel.conflist"), testdata("flannel.conflist"));
      } else {
        replace_by_rename(node.net("10-flannel.conflist"), testdata("flannel.conflist"));
      }
    }
    node.await(InstallEventKind::Repaired);
    CHECK(node.stats().passes == passes + 1);
    CHECK(node.stats().events >= events + 20);
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("flannel.conflist.golden"));
  }

  TEST_CASE("a primary config appearing later gets chained; nothing is invented meanwhile") {
    Node node;
    node.start();
    const InstallEvent waiting = node.await(InstallEventKind::Waiting);
    CHECK(waiting.error == "no CNI config file (*.conf, *.conflist, *.json) in " + node.net_dir);
    CHECK(node.stats().waiting);
    CHECK_FALSE(node.stats().installed);
    CHECK(read_text(node.bin()) == fake_plugin());  // the binary is in place already
    CHECK(dir_names(node.net_dir).empty());

    node.tmp_.write("host/etc/cni/net.d/calico-kubeconfig", "not a CNI config");
    replace_by_rename(node.net("10-calico.conflist"), testdata("calico.conflist"));
    const InstallEvent e = node.await(InstallEventKind::Installed);
    CHECK(contains(e.changes, "ambient-cni entry missing from " + node.net("10-calico.conflist")));
    CHECK(read_text(node.net("10-calico.conflist")) == testdata("calico.conflist.golden"));
    CHECK(read_text(node.net("calico-kubeconfig")) == "not a CNI config");
    CHECK_FALSE(node.stats().waiting);
    CHECK(node.stats().config_path == node.net("10-calico.conflist"));
  }

  TEST_CASE("the primary config changes name: our entry follows it") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
    node.start();
    node.await(InstallEventKind::Installed);
    replace_by_rename(node.net("05-calico.conflist"), testdata("calico.conflist"));
    const InstallEvent e = node.await(InstallEventKind::Repaired);
    REQUIRE(e.changes.size() == 2);
    CHECK(e.changes[0] == "primary CNI config is now 05-calico.conflist (was 10-flannel.conflist)");
    CHECK(e.changes[1] == "ambient-cni entry missing from " + node.net("05-calico.conflist") + ": inserted");
    CHECK(read_text(node.net("05-calico.conflist")) == testdata("calico.conflist.golden"));
    CHECK(node.stats().config_path == node.net("05-calico.conflist"));
  }

  TEST_CASE("a malformed primary is left untouched and reported; once fixed it gets chained") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("malformed.conflist"));
    const ino_t inode = inode_of(node.net("10-flannel.conflist"));
    node.start();
    const InstallEvent e = node.await(InstallEventKind::Failed);
    CHECK_MESSAGE(e.error.find(node.net("10-flannel.conflist") + ": JSON syntax error at line 7 column 7") !=
                      std::string::npos, std::string(e.error));
    CHECK(e.error.find("(left as it is)") != std::string::npos);
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("malformed.conflist"));
    CHECK(inode_of(node.net("10-flannel.conflist")) == inode);
    CHECK(node.stats().failures >= 1);
    CHECK(node.stats().last_error == e.error);
    CHECK_FALSE(node.stats().installed);
    CHECK(dir_names(node.net_dir) == std::vector<std::string>{"10-flannel.conflist"});

    write_in_place(node.net("10-flannel.conflist"), testdata("flannel.conflist"));
    node.await(InstallEventKind::Installed);
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("flannel.conflist.golden"));
    CHECK(node.stats().last_error.empty());
  }

  TEST_CASE("uninstall: our entry and binary go, the primary is what it was; twice is fine") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
    fs::permissions(node.net("10-flannel.conflist"), fs::perms(0640));
    node.start();
    node.await(InstallEventKind::Installed);
    REQUIRE(node.installer->uninstall().has_value());
    const InstallEvent e = node.events.back();
    CHECK(e.kind == InstallEventKind::Uninstalled);
    CHECK(e.changes == std::vector<std::string>{"ambient-cni entry removed from " + node.net("10-flannel.conflist"),
                                                "removed binary " + node.bin()});
    CHECK(parse(read_text(node.net("10-flannel.conflist"))) == parse(testdata("flannel.conflist")));
    CHECK(mode_of(node.net("10-flannel.conflist")) == 0640);
    CHECK_FALSE(fs::exists(node.bin()));
    CHECK_FALSE(node.stats().installed);

    REQUIRE(node.installer->uninstall().has_value());
    CHECK(node.events.back().kind == InstallEventKind::Uninstalled);
    CHECK(node.events.back().changes.empty());

    // Stopped: the loops end, so nothing puts our entry back.
    node.io.run();
    CHECK(parse(read_text(node.net("10-flannel.conflist"))) == parse(testdata("flannel.conflist")));
  }

  TEST_CASE("uninstall of a converted .conf leaves the equivalent list; a malformed file holding our name is reported") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-bridge.conf", testdata("bridge.conf"));
    node.start();
    node.await(InstallEventKind::Installed);
    node.tmp_.write("host/etc/cni/net.d/99-broken.conflist", R"({"plugins":[{"type":"ambient-cni"})");
    node.tmp_.write("host/etc/cni/net.d/98-unrelated.conflist", "{oops");
    auto r = node.installer->uninstall();
    REQUIRE_FALSE(r.has_value());
    CHECK_MESSAGE(r.error().context.find(node.net("99-broken.conflist") + ": JSON syntax error") == 0, std::string(r.error().context));
    CHECK(read_text(node.net("99-broken.conflist")) == R"({"plugins":[{"type":"ambient-cni"})");
    const json::object list = parse(read_text(node.net("10-bridge.conflist"))).as_object();
    const json::object original = parse(testdata("bridge.conf")).as_object();
    CHECK(list.at("cniVersion") == original.at("cniVersion"));
    CHECK(list.at("name") == original.at("name"));
    REQUIRE(list.at("plugins").as_array().size() == 1);
    json::object bridge = original;
    bridge.erase("cniVersion");
    bridge.erase("name");
    CHECK(list.at("plugins").as_array()[0] == json::value(bridge));
    CHECK_FALSE(fs::exists(node.bin()));
  }

  TEST_CASE("owned config: our copy sorts first, the primary is never written") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
    CniInstallOptions o = node.options();
    o.owned_config = true;
    node.start(o);
    const InstallEvent e = node.await(InstallEventKind::Installed);
    const std::string owned = node.net("02-ambient-cni.conflist");
    CHECK(contains(e.changes, "owned config " + owned + " missing: written from 10-flannel.conflist"));
    CHECK(read_text(owned) == testdata("flannel.conflist.golden"));
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("flannel.conflist"));
    CHECK(node.stats().config_path == owned);

    fs::remove(owned);
    node.await(InstallEventKind::Repaired);
    CHECK(read_text(owned) == testdata("flannel.conflist.golden"));

    replace_by_rename(node.net("10-flannel.conflist"), testdata("calico.conflist"));  // the primary changed
    const InstallEvent changed = node.await(InstallEventKind::Repaired);
    CHECK(contains(changed.changes, "differed from 10-flannel.conflist plus ambient-cni: rewritten"));
    CHECK(read_text(owned) == testdata("calico.conflist.golden"));
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("calico.conflist"));

    REQUIRE(node.installer->uninstall().has_value());
    CHECK_FALSE(fs::exists(owned));
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("calico.conflist"));
  }

  TEST_CASE("standalone (not chained): a config file of our own, the primary untouched") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
    CniInstallOptions o = node.options();
    o.chained = false;
    node.start(o);
    node.await(InstallEventKind::Installed);
    const std::string ours = node.net("YYY-ambient-cni.conflist");
    const json::object list = parse(read_text(ours)).as_object();
    CHECK(list.at("cniVersion") == "1.0.0");
    CHECK(list.at("name") == "ambient-cni");
    REQUIRE(list.at("plugins").as_array().size() == 1);
    CHECK(list.at("plugins").as_array()[0] == json::value(golden_entry_json()));
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("flannel.conflist"));
    REQUIRE(node.installer->uninstall().has_value());
    CHECK_FALSE(fs::exists(ours));
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("flannel.conflist"));
  }

  TEST_CASE("without inotify the periodic re-check repairs") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
    CniInstallOptions o = node.options();
    o.watch = false;
    o.recheck_interval = 50ms;
    node.start(o);
    node.await(InstallEventKind::Installed);
    fs::remove(node.bin());
    const InstallEvent e = node.await(InstallEventKind::Repaired);
    CHECK(e.trigger == "periodic re-check");
    CHECK(read_text(node.bin()) == fake_plugin());
    CHECK(node.stats().events == 0);
  }

  TEST_CASE("the periodic re-check compares bytes: a rewrite that kept size, inode and mtime is repaired") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
    CniInstallOptions o = node.options();
    o.watch = false;
    o.recheck_interval = 50ms;
    node.start(o);
    node.await(InstallEventKind::Installed);
    struct stat before {};
    REQUIRE(::stat(node.bin().c_str(), &before) == 0);
    write_in_place(node.bin(), fake_plugin('3'));  // same size, same inode
    const struct timespec times[2] = {before.st_atim, before.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, node.bin().c_str(), times, 0) == 0);
    auto stamp = stat_file(node.bin());
    REQUIRE((stamp.has_value() && stamp->has_value()));
    CHECK((*stamp)->ino == before.st_ino);
    CHECK((*stamp)->mtime_nsec == before.st_mtim.tv_nsec);
    const InstallEvent e = node.await(InstallEventKind::Repaired);
    CHECK(contains(e.changes, "differed from"));
    CHECK(read_text(node.bin()) == fake_plugin());
  }

  TEST_CASE("a missing plugin binary fails the pass before any config names it") {
    Node node;
    node.tmp_.write("host/etc/cni/net.d/10-flannel.conflist", testdata("flannel.conflist"));
    fs::remove(node.src_dir + "/ambient-cni");
    node.start();
    const InstallEvent e = node.await(InstallEventKind::Failed);
    CHECK(e.error.find("plugin binary " + node.src_dir + "/ambient-cni does not exist (CNI_BIN_DIR)") !=
          std::string::npos);
    CHECK(read_text(node.net("10-flannel.conflist")) == testdata("flannel.conflist"));
  }
}
