#pragma once
// ApiServer: the node agent's local HTTP/1.1 API (Boost.Beast) on a unix stream socket. It is a
// PodSource: requests become PodEvents calls. Clients: the CNI plugin (POST /cmdadd) and the CLI.
//
// Routes (JSON bodies; replies are application/json):
//   POST /cmdadd    the plugin's ADD (cni/api/cmdadd.h)             -> add_pod(spec, Cni)
//   POST /enroll    a PodSpec {"uid","name","namespace","serviceAccount","netns","ips","dnsCapture"}
//                   (cni/api/pod_json.h)                            -> add_pod(spec, Enroll)
//   POST /unenroll  {"uid":".."}                                    -> remove_pod(uid)
//   GET  /pods      pods_json()
// Replies: 200 {"result":"ok","uid":".."} (GET /pods: the document); 400 {"error":"<field>: <problem>"}
// for bad JSON or a spec that does not validate; a handler's error as {"error":"<message>"} with 400
// (InvalidArgument), 404 (NotFound) or 500 (anything else); 404 for an unknown path, 405 (with Allow)
// for a known path with another method; 413 body too large; 431 headers too large.
//
// Socket: the parent directory is created (0700) if missing; an existing socket file is replaced (a
// previous agent's; Istio's agent does the same), anything else at the path is refused. The socket is
// mode 0600 from bind() on (fchmod before bind), so only root (the plugin, the CLI) can connect.
//
// Limits: body <= 64 KiB, request line + headers <= 8 KiB, each request must arrive within 10 s of
// the previous reply (or the accept) and each reply must be written within 10 s; at most max_connections
// are served at once (64; further clients wait in the listen backlog, 1024, until one ends). Handlers are not bounded in time: add_pod may wait for
// ztunnel; the plugin's own 5 s timeout bounds it from the other side.
//
// Contract: one executor (single-threaded). start() once; stop() closes the listener and the open
// connections and unlinks the socket file; the destructor calls stop(). A handler already running
// finishes (see pod_source.h). Coroutines still queued keep the server's state alive until they end;
// the io_context must outlive the ApiServer.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

#include "cni/api/paths.h"
#include "cni/api/pod_source.h"
#include "common/base/result.h"

namespace ambient::cni {

struct ApiServerOptions {
  std::string socket_path = std::string(kDefaultAgentSocketPath);
  std::size_t max_body_bytes = 64 * 1024;
  std::size_t max_header_bytes = 8 * 1024;
  std::chrono::milliseconds read_timeout{10'000};  // per request, and per reply write
  std::size_t max_connections = 64;
};

class ApiServer final : public PodSource {
 public:
  explicit ApiServer(boost::asio::any_io_executor executor, ApiServerOptions options = {});
  ~ApiServer() override;
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // PodSource: binds the socket and starts accepting. Io/InvalidArgument naming the path on failure.
  Result<void> start(PodEvents& events) override;
  // PodSource
  void stop() override;

  const std::string& socket_path() const noexcept;
  std::size_t open_connections() const noexcept;

  struct State;  // shared with the accept and connection coroutines

 private:
  std::shared_ptr<State> state_;
};

}  // namespace ambient::cni
