#pragma once
// ApiClient: a small synchronous client of the node agent's API (cni/api/api_server.h) over its unix
// socket, for the CNI plugin and the CLI. One request per connection ("Connection: close").
//
// Each call runs its own private io_context on the calling thread and returns when the reply is read
// or the timeout (default 5 s, Istio's plugin timeout) has passed; it blocks that thread meanwhile, so
// do not call it from an io_context thread that serves anything.
//
// Errors:
//  - ConnectRefused: the socket file is absent or nobody listens ("is the node agent running?");
//  - Timeout: no complete reply within the timeout (connect + write + read together);
//  - HttpStatus (code = the status): the agent answered non-200; the context holds its body text
//    (its {"error":".."} message when it is one);
//  - ResourceExhausted: a reply body over max_response_bytes (1 MiB);
//  - Io / Parse: anything else on the socket, or a reply that is not HTTP.
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "cni/api/paths.h"
#include "common/base/result.h"

namespace ambient::cni {

struct ApiClientOptions {
  std::string socket_path = std::string(kDefaultAgentSocketPath);
  std::chrono::milliseconds timeout{5'000};  // for the whole exchange
  std::size_t max_response_bytes = 1024 * 1024;
};

class ApiClient {
 public:
  explicit ApiClient(ApiClientOptions options = {});

  // POST `path` with a JSON body; the reply body on 200.
  Result<std::string> post(std::string_view path, std::string_view json_body) const;
  // GET `path`; the reply body on 200.
  Result<std::string> get(std::string_view path) const;

  const ApiClientOptions& options() const noexcept { return options_; }

 private:
  Result<std::string> request(bool post, std::string_view path, std::string_view body) const;

  ApiClientOptions options_;
};

}  // namespace ambient::cni
