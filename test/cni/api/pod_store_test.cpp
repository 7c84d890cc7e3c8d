#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cni/api/pod_store.h"
#include "test/cni/api/api_test_support.h"

using namespace ambient;
using namespace ambient::cni;
using ambient::cni::test_support::sample_spec;
using ambient::cni::test_support::TempDir;

namespace {

PodRecord sample_record(std::string uid, PodStatus status = PodStatus::Pending) {
  PodRecord r;
  r.spec = sample_spec(std::move(uid));
  r.netns_id = net::NetnsId{4, 4026531840};
  r.status = status;
  r.source = PodSourceKind::Cni;
  r.created_at = 1700000000000;
  r.updated_at = 1700000000500;
  return r;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// Names in `dir` (to see that no temporary file stays behind).
std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string load_error(const std::string& path, const std::string& text) {
  write_file(path, text);
  PodStore store(PodStoreOptions{.path = path});
  auto r = store.load();
  REQUIRE_FALSE(r.has_value());
  CHECK(store.size() == 0);
  return r.error().context;
}

}  // namespace

TEST_SUITE("cni/api/pod_store") {
  TEST_CASE("a missing file is an empty store; the state directory is created on the first write") {
    TempDir dir;
    const std::string path = dir.path() + "/state/sub/pods.json";
    PodStore store(PodStoreOptions{.path = path});
    REQUIRE(store.load());
    CHECK(store.size() == 0);
    CHECK(store.all().empty());
    REQUIRE(store.upsert(sample_record("a")));
    struct stat st {};
    REQUIRE(::stat((dir.path() + "/state/sub").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }

  TEST_CASE("round trip: what one store writes the next one loads") {
    TempDir dir;
    const std::string path = dir.file("pods.json");
    PodStore store(PodStoreOptions{.path = path});
    REQUIRE(store.load());
    PodRecord b = sample_record("b", PodStatus::Enabled);
    b.spec.options.dns_capture = true;
    b.spec.service_account.clear();
    REQUIRE(store.upsert(sample_record("a")));
    REQUIRE(store.upsert(b));
    PodRecord a2 = sample_record("a", PodStatus::Enabled);  // replaces the first "a"
    a2.updated_at += 1000;
    REQUIRE(store.upsert(a2));
    CHECK(store.size() == 2);
    REQUIRE(store.get("a") != nullptr);
    CHECK(*store.get("a") == a2);
    CHECK(store.get("zz") == nullptr);

    PodStore reloaded(PodStoreOptions{.path = path});
    REQUIRE(reloaded.load());
    REQUIRE(reloaded.size() == 2);
    CHECK(reloaded.all() == std::vector<PodRecord>{a2, b});
    CHECK(reloaded.to_json() == store.to_json());
    CHECK(read_file(path) == store.to_json() + "\n");
    CHECK(listing(dir.path()) == std::vector<std::string>{"pods.json"});  // no .tmp left

    auto removed = reloaded.remove("a");
    REQUIRE(removed);
    CHECK(*removed);
    auto again = reloaded.remove("a");
    REQUIRE(again);
    CHECK_FALSE(*again);
    PodStore third(PodStoreOptions{.path = path});
    REQUIRE(third.load());
    CHECK(third.all() == std::vector<PodRecord>{b});
    CHECK(listing(dir.path()) == std::vector<std::string>{"pods.json"});
  }

  TEST_CASE("the file is replaced, never rewritten in place: a reader of the old inode sees the old content") {
    TempDir dir;
    const std::string path = dir.file("pods.json");
    PodStore store(PodStoreOptions{.path = path});
    REQUIRE(store.upsert(sample_record("a")));
    std::ifstream old_reader(path);  // keeps the first file's inode open
    struct stat before {};
    REQUIRE(::stat(path.c_str(), &before) == 0);
    REQUIRE(store.upsert(sample_record("b")));
    struct stat after {};
    REQUIRE(::stat(path.c_str(), &after) == 0);
    CHECK(before.st_ino != after.st_ino);
    std::stringstream old_text;
    old_text << old_reader.rdbuf();
    CHECK(old_text.str().find("\"b\"") == std::string::npos);
    CHECK(old_text.str().find("\"a\"") != std::string::npos);
  }

  TEST_CASE("a stale temporary file from a crash is replaced") {
    TempDir dir;
    const std::string path = dir.file("pods.json");
    write_file(path + ".tmp", "garbage from a crash");
    PodStore store(PodStoreOptions{.path = path});
    REQUIRE(store.load());
    REQUIRE(store.upsert(sample_record("a")));
    CHECK(listing(dir.path()) == std::vector<std::string>{"pods.json"});
  }

  TEST_CASE("corrupt or invalid files: the error names the file and the position or field") {
    TempDir dir;
    const std::string path = dir.file("pods.json");
    SUBCASE("JSON syntax") {
      const std::string e = load_error(path, "{\"version\":1,\n\"pods\":[{]}");
      CHECK_MESSAGE(e.find("pod store " + path + ": JSON: JSON syntax error at line 2 column 10") != std::string::npos, e);
    }
    SUBCASE("truncated file") {
      const std::string e = load_error(path, "{\"version\":1,\"pods\":[");
      CHECK_MESSAGE(e.find("JSON syntax error at line 1 column 22 (byte 21)") != std::string::npos, e);
    }
    SUBCASE("a record without its uid") {
      PodStore good(PodStoreOptions{.path = path});
      REQUIRE(good.upsert(sample_record("a")));
      std::string text = read_file(path);
      const std::string uid_field = "\"uid\":\"a\",";
      REQUIRE(text.find(uid_field) != std::string::npos);
      text.erase(text.find(uid_field), uid_field.size());
      const std::string e = load_error(path, text);
      CHECK_MESSAGE(e == "pod store " + path + ": pods[0].spec.uid: missing", e);
    }
    SUBCASE("a field of the wrong type") {
      const std::string e = load_error(path, R"({"version":1,"pods":[{"spec":{},"netnsId":{"dev":1,"ino":2},)"
                                             R"("status":"enabled","source":"cni","createdAtMs":"x","updatedAtMs":1}]})");
      CHECK_MESSAGE(e.find("pods[0].spec.uid: missing") != std::string::npos, e);
    }
    SUBCASE("bad status") {
      PodStore good(PodStoreOptions{.path = path});
      REQUIRE(good.upsert(sample_record("a")));
      std::string text = read_file(path);
      text.replace(text.find("\"pending\""), 9, "\"running\"");
      const std::string e = load_error(path, text);
      CHECK_MESSAGE(e.find("pods[0].status: 'running' is not a pod status") != std::string::npos, e);
    }
    SUBCASE("unknown version") {
      const std::string e = load_error(path, R"({"version":2,"pods":[]})");
      CHECK_MESSAGE(e.find("version 2 is not the one this agent reads (1)") != std::string::npos, e);
    }
    SUBCASE("not an object") {
      const std::string e = load_error(path, "[]");
      CHECK_MESSAGE(e.find("document: expected an object, got array") != std::string::npos, e);
    }
    SUBCASE("duplicate uid") {
      PodStore good(PodStoreOptions{.path = path});
      REQUIRE(good.upsert(sample_record("a")));
      std::string text = read_file(path);
      const auto start = text.find('[') + 1;
      const auto end = text.rfind(']');
      const std::string record = text.substr(start, end - start);
      text.insert(end, "," + record);
      const std::string e = load_error(path, text);
      CHECK_MESSAGE(e.find("pods[1].spec.uid: 'a' appears twice") != std::string::npos, e);
    }
    SUBCASE("unreadable: a directory at the path") {
      std::filesystem::create_directory(path);
      PodStore store(PodStoreOptions{.path = path});
      auto r = store.load();
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::Io);
      CHECK_MESSAGE(r.error().context.find(path) != std::string::npos, r.error().context);
    }
  }

  TEST_CASE("bounds: pod count and file size; a refused change leaves memory and file as they were") {
    TempDir dir;
    const std::string path = dir.file("pods.json");
    SUBCASE("max_pods") {
      PodStore store(PodStoreOptions{.path = path, .max_pods = 2});
      REQUIRE(store.upsert(sample_record("a")));
      REQUIRE(store.upsert(sample_record("b")));
      const std::string before = read_file(path);
      auto r = store.upsert(sample_record("c"));
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::ResourceExhausted);
      CHECK_MESSAGE(r.error().context.find("already 2 pods, the limit; pod c not recorded") != std::string::npos,
                    r.error().context);
      CHECK(store.size() == 2);
      CHECK(read_file(path) == before);
      CHECK(store.upsert(sample_record("b", PodStatus::Enabled)));  // updating one is still fine

      // A file with more pods than this store allows is refused on load.
      PodStore smaller(PodStoreOptions{.path = path, .max_pods = 1});
      auto loaded = smaller.load();
      REQUIRE_FALSE(loaded);
      CHECK(loaded.error().context.find("2 pods, more than the 1 allowed") != std::string::npos);
    }
    SUBCASE("max_file_bytes") {
      PodStore first(PodStoreOptions{.path = path});
      REQUIRE(first.upsert(sample_record("a")));
      const std::size_t one_pod = std::filesystem::file_size(path);
      PodStore store(PodStoreOptions{.path = path, .max_file_bytes = one_pod + 10});
      REQUIRE(store.load());
      auto r = store.upsert(sample_record("b"));
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::ResourceExhausted);
      CHECK(store.size() == 1);
      CHECK(store.get("b") == nullptr);
      CHECK(std::filesystem::file_size(path) == one_pod);
      PodStore big_reader(PodStoreOptions{.path = path, .max_file_bytes = 10});
      auto loaded = big_reader.load();
      REQUIRE_FALSE(loaded);
      CHECK(loaded.error().context.find("file larger than 10 bytes") != std::string::npos);
    }
  }

  TEST_CASE("a failed write is undone in memory") {
    TempDir dir;
    write_file(dir.file("not-a-dir"), "x");
    PodStore store(PodStoreOptions{.path = dir.file("not-a-dir") + "/pods.json"});
    auto r = store.upsert(sample_record("a"));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Io);
    CHECK(store.size() == 0);
  }

  TEST_CASE("an invalid spec is refused") {
    TempDir dir;
    PodStore store(PodStoreOptions{.path = dir.file("pods.json")});
    PodRecord bad = sample_record("a");
    bad.spec.namespace_ = "Bad";
    auto r = store.upsert(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::InvalidArgument);
    CHECK(listing(dir.path()).empty());
  }
}
