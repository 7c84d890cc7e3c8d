// bench-inpod-enroll: times enrollment the way a pod sees it. For each pod a prober, whose sockets are created
// inside the pod's netns like the pod's own app, connects again and again to a mesh-only address (a service VIP
// that is unreachable without ztunnel: bench/inpod.sh makes it fail fast with a REJECT that the in-pod REDIRECT
// bypasses) and sends one byte; the first echo marks the pod's first HBONE connection. Time zero is just
// before the enroll request is sent to the node agent's API socket.
//
//   bench-inpod-enroll --api SOCK --pods FILE --vip IP:PORT --mode single|batch|enroll|unenroll [--repeat N]
//                      [--echo-netns PATH --echo-addr IP:PORT]
// FILE: one pod per line: uid name namespace service_account netns_path ip
// Output: one JSON object on stdout.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "cni/api/api_client.h"
#include "cni/api/pod.h"
#include "cni/api/pod_json.h"
#include "common/net/netns.h"
#include "common/net/tcp_stream.h"
#include "test/support/netns_echo.h"

using namespace ambient;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

struct Pod {
  cni::PodSpec spec;
  net::UniqueFd netns;
};

std::optional<std::string> arg(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return std::string(argv[i + 1]);
  return std::nullopt;
}

asio::ip::tcp::endpoint parse_ep(const std::string& s) {
  const auto colon = s.rfind(':');
  return {asio::ip::make_address(s.substr(0, colon)), static_cast<std::uint16_t>(std::stoi(s.substr(colon + 1)))};
}

// Retries until one byte echoes through `vip` from inside the netns, or the deadline passes.
asio::awaitable<void> probe(int netns_fd, asio::ip::tcp::endpoint vip, Clock::time_point deadline,
                            std::optional<Clock::time_point>* success, std::atomic<int>* pending) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer pause(ex);
  while (Clock::now() < deadline) {
    auto sock = net::in_netns(netns_fd, [&] {
      asio::ip::tcp::socket s(ex);
      s.open(asio::ip::tcp::v4());
      return s;
    });
    if (sock) {
      auto c = co_await net::connect(std::move(*sock), vip, std::chrono::milliseconds(500));
      if (c) {
        const std::uint8_t one = 'x';
        std::uint8_t back = 0;
        if (co_await c->write_all(std::span<const std::uint8_t>(&one, 1))) {
          auto n = co_await c->read_some(std::span<std::uint8_t>(&back, 1));
          if (n && *n == 1 && back == one) {
            *success = Clock::now();
            break;
          }
        }
      }
    }
    pause.expires_after(std::chrono::milliseconds(2));
    co_await pause.async_wait(asio::use_awaitable);
  }
  --*pending;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

Result<void> enroll(const cni::ApiClient& api, const cni::PodSpec& spec) {
  auto r = api.post("/enroll", boost::json::serialize(cni::pod_spec_to_json(spec)));
  if (!r) return std::move(r).error();
  return ok();
}

Result<void> unenroll(const cni::ApiClient& api, const std::string& uid) {
  boost::json::object body;
  body["uid"] = uid;
  auto r = api.post("/unenroll", boost::json::serialize(body));
  if (!r) return std::move(r).error();
  return ok();
}

// Enrolls `pods` (all at once: one thread each) while probing each; returns each pod's time to first echo (ms, -1 = none).
std::vector<double> enroll_and_probe(const cni::ApiClient& api, std::vector<Pod*> pods, asio::ip::tcp::endpoint vip,
                                     std::vector<double>* enroll_ms) {
  asio::io_context io(1);
  std::vector<std::optional<Clock::time_point>> success(pods.size());
  std::atomic<int> pending{static_cast<int>(pods.size())};
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::seconds(30);
  for (std::size_t i = 0; i < pods.size(); ++i)
    asio::co_spawn(io, probe(pods[i]->netns.get(), vip, deadline, &success[i], &pending), asio::detached);
  std::thread prober([&] { io.run(); });
  std::vector<std::thread> callers;
  enroll_ms->assign(pods.size(), -1);
  for (std::size_t i = 0; i < pods.size(); ++i)
    callers.emplace_back([&, i] {
      auto r = enroll(api, pods[i]->spec);
      if (!r) std::fprintf(stderr, "enroll %s: %s\n", pods[i]->spec.uid.c_str(), r.error().message().c_str());
      else (*enroll_ms)[i] = ms(Clock::now() - t0);
    });
  for (auto& t : callers) t.join();
  prober.join();
  std::vector<double> out;
  for (auto& s : success) out.push_back(s ? ms(*s - t0) : -1);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const auto api_path = arg(argc, argv, "--api");
  const auto pods_file = arg(argc, argv, "--pods");
  const auto mode = arg(argc, argv, "--mode");
  const auto vip_text = arg(argc, argv, "--vip");
  if (!api_path || !pods_file || !mode) {
    std::fprintf(stderr, "usage: bench-inpod-enroll --api SOCK --pods FILE --vip IP:PORT --mode single|batch|enroll|unenroll [--repeat N] [--echo-netns PATH --echo-addr IP:PORT]\n");
    return 2;
  }
  std::vector<Pod> pods;
  std::ifstream in(*pods_file);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    Pod p;
    std::string ip;
    if (!(fields >> p.spec.uid >> p.spec.name >> p.spec.namespace_ >> p.spec.service_account >> p.spec.netns >> ip)) continue;
    p.spec.ips = {ip};
    auto fd = net::open_netns(p.spec.netns);
    if (!fd) {
      std::fprintf(stderr, "%s: %s\n", p.spec.netns.c_str(), fd.error().message().c_str());
      return 1;
    }
    p.netns = std::move(*fd);
    pods.push_back(std::move(p));
  }
  cni::ApiClientOptions options;
  options.socket_path = *api_path;
  options.timeout = std::chrono::seconds(30);
  const cni::ApiClient api(options);

  // The app the probes reach: an echo server inside the server pod, for the whole run.
  std::optional<test::NetnsEchoServer> echo;
  net::UniqueFd echo_ns;
  if (auto p = arg(argc, argv, "--echo-netns")) {
    auto fd = net::open_netns(*p);
    if (!fd) return 1;
    echo_ns = std::move(*fd);
    const auto ep = parse_ep(*arg(argc, argv, "--echo-addr"));
    echo.emplace(echo_ns.get(), ep.address().to_string(), ep.port());
    if (!echo->ok()) {
      std::fprintf(stderr, "echo server in %s: cannot listen\n", p->c_str());
      return 1;
    }
  }

  boost::json::object out;
  out["mode"] = *mode;
  out["pods"] = pods.size();
  if (*mode == "enroll" || *mode == "unenroll") {
    const auto t0 = Clock::now();
    for (const auto& p : pods) {
      auto r = *mode == "enroll" ? enroll(api, p.spec) : unenroll(api, p.spec.uid);
      if (!r) {
        std::fprintf(stderr, "%s %s: %s\n", mode->c_str(), p.spec.uid.c_str(), r.error().message().c_str());
        return 1;
      }
    }
    out["total_ms"] = ms(Clock::now() - t0);
  } else if (*mode == "single") {
    const int repeat = std::stoi(arg(argc, argv, "--repeat").value_or("20"));
    const auto vip = parse_ep(*vip_text);
    boost::json::array samples, enroll_samples;
    std::vector<double> values;
    for (int i = 0; i < repeat; ++i) {
      Pod& p = pods[static_cast<std::size_t>(i) % pods.size()];
      std::vector<double> enroll_ms;
      auto t = enroll_and_probe(api, {&p}, vip, &enroll_ms);
      samples.push_back(t[0]);
      enroll_samples.push_back(enroll_ms[0]);
      if (t[0] >= 0) values.push_back(t[0]);
      if (auto r = unenroll(api, p.spec.uid); !r) {
        std::fprintf(stderr, "unenroll %s: %s\n", p.spec.uid.c_str(), r.error().message().c_str());
        return 1;
      }
    }
    out["first_hbone_ms"] = samples;
    out["enroll_answer_ms"] = enroll_samples;
    out["p50_ms"] = percentile(values, 0.5);
    out["p90_ms"] = percentile(values, 0.9);
    out["max_ms"] = values.empty() ? -1 : *std::max_element(values.begin(), values.end());
    out["failures"] = repeat - static_cast<int>(values.size());
  } else if (*mode == "batch") {
    const auto vip = parse_ep(*vip_text);
    std::vector<Pod*> all;
    for (auto& p : pods) all.push_back(&p);
    std::vector<double> enroll_ms;
    auto t = enroll_and_probe(api, all, vip, &enroll_ms);
    std::vector<double> values;
    for (double v : t)
      if (v >= 0) values.push_back(v);
    out["p50_ms"] = percentile(values, 0.5);
    out["all_ms"] = values.size() == t.size() ? *std::max_element(values.begin(), values.end()) : -1;
    out["enroll_answers_all_ms"] = *std::max_element(enroll_ms.begin(), enroll_ms.end());
    out["failures"] = static_cast<int>(t.size() - values.size());
  } else {
    std::fprintf(stderr, "unknown --mode %s\n", mode->c_str());
    return 2;
  }
  std::printf("%s\n", boost::json::serialize(out).c_str());
  return 0;
}
