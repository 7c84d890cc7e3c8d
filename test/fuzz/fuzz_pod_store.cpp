// fuzz_pod_store: PodStore::load() (cni/api/pod_store.h) on the input as the store's file. The file is a
// memfd, opened by load() through /proc/self/fd/N: the real read path, without disk I/O. (pod_store.h
// exposes no parse-from-string function; see README.md.)
//
// Invariants:
//  - errors are Parse, InvalidArgument, Unsupported (version) or ResourceExhausted (max_pods), with a
//    context naming the file, and leave the store empty;
//  - a loaded store holds at most max_pods records, each with a valid spec;
//  - round trip: to_json() of the loaded store, loaded again, gives the same records;
//  - no descriptor leaks (load opens and closes the file each time).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <fmt/format.h>

#include "cni/api/pod.h"
#include "cni/api/pod_store.h"
#include "test/fuzz/fuzz_support.h"

namespace {

using namespace ambient;
using namespace ambient::cni;

// Small, so the max_pods branch is reachable within max_len.
constexpr std::size_t kMaxPods = 4;

// A memfd standing in for the store's file.
struct MemFile {
  int fd = -1;
  std::string path;

  explicit MemFile(const char* name) : fd(::memfd_create(name, MFD_CLOEXEC)) {
    if (fd < 0) std::abort();
    path = fmt::format("/proc/self/fd/{}", fd);
  }
  void set(std::string_view bytes) const {
    FUZZ_CHECK(::ftruncate(fd, 0) == 0, "ftruncate");
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      FUZZ_CHECK(n > 0, "pwrite to memfd");
      done += static_cast<std::size_t>(n);
    }
  }
};

MemFile* g_file = nullptr;
MemFile* g_again = nullptr;

PodStore store_at(const std::string& path) {
  return PodStore(PodStoreOptions{.path = path, .max_pods = kMaxPods, .max_file_bytes = 1024 * 1024});
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_file = new MemFile("pods.json");
  g_again = new MemFile("pods-again.json");
  PodRecord record{.spec = {.uid = "5f0c1b2e-8a1d-4c3e-9f00-123456789abc",
                            .name = "web-0",
                            .namespace_ = "default",
                            .service_account = "web",
                            .netns = "/var/run/netns/cni-1234",
                            .ips = {"10.0.0.5", "fd00::5"},
                            .options = {.dns_capture = false}},
                   .netns_id = {.dev = 4, .ino = 4026532890},
                   .status = PodStatus::Enabled,
                   .source = PodSourceKind::Cni,
                   .created_at = 1700000000000,
                   .updated_at = 1700000001234};
  PodRecord pending{.spec = {.uid = "u-2", .name = "db", .namespace_ = "shop", .netns = "/proc/42/ns/net"},
                    .netns_id = {.dev = 4, .ino = 4026532999},
                    .status = PodStatus::Pending,
                    .source = PodSourceKind::Enroll,
                    .created_at = 1,
                    .updated_at = 2};
  // The seeds are what PodStore writes: upserts into a store in a scratch directory (a memfd cannot take
  // the store's write-and-rename), then the file read back.
  const char* seed_dir = std::getenv("AMBIENT_FUZZ_WRITE_SEEDS");
  if (seed_dir != nullptr && *seed_dir != '\0') {
    auto written = [](std::initializer_list<PodRecord> records) {
      char dir[] = "/tmp/fuzz-pod-store-XXXXXX";
      FUZZ_CHECK(::mkdtemp(dir) != nullptr, "mkdtemp");
      const std::string path = std::string(dir) + "/pods.json";
      PodStore s(PodStoreOptions{.path = path});
      for (const PodRecord& r : records) FUZZ_CHECK(s.upsert(r).has_value(), "seed upsert");
      std::ifstream in(path, std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::filesystem::remove_all(dir);
      return text;
    };
    fuzz::write_seeds_if_asked({
        {"empty", "{\"version\":1,\"pods\":[]}\n"},
        {"one_pod", written({record})},
        {"two_pods", written({record, pending})},
    });
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::FdLeakCheck leaks;
  leaks.tick();
  g_file->set(fuzz::as_text(data, size));
  PodStore store = store_at(g_file->path);
  auto loaded = store.load();
  if (!loaded) {
    fuzz::check_error(loaded.error(), {ErrorKind::Parse, ErrorKind::InvalidArgument, ErrorKind::Unsupported,
                                       ErrorKind::ResourceExhausted});
    FUZZ_CHECK(loaded.error().context.find(g_file->path) != std::string::npos, "error does not name the file: {}",
               loaded.error().context);
    FUZZ_CHECK(store.size() == 0, "a failed load left {} records", store.size());
    return 0;
  }
  FUZZ_CHECK(store.size() <= kMaxPods, "{} records loaded, more than max_pods", store.size());
  const auto records = store.all();
  for (const PodRecord& r : records) {
    FUZZ_CHECK(validate_pod_spec(r.spec).has_value(), "loaded an invalid spec of pod {}", r.spec.uid);
    FUZZ_CHECK(store.get(r.spec.uid) != nullptr, "pod {} listed but not found", r.spec.uid);
  }

  g_again->set(store.to_json());
  PodStore again = store_at(g_again->path);
  auto reloaded = again.load();
  FUZZ_CHECK(reloaded.has_value(), "to_json() of a loaded store does not load: {}", reloaded.error().context);
  FUZZ_CHECK(again.all() == records, "store round trip changed the records");
  return 0;
}
