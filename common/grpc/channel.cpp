#include "common/grpc/channel.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <spdlog/spdlog.h>

#include "common/h2/transport.h"
#include "common/net/tcp_stream.h"

namespace ambient::grpc {

namespace asio = boost::asio;

namespace {

std::string endpoint_label(const asio::ip::tcp::endpoint& ep, const std::string& server_name) {
  if (!server_name.empty()) {
    const bool v6_literal = server_name.find(':') != std::string::npos && server_name.front() != '[';
    return v6_literal ? fmt::format("[{}]:{}", server_name, ep.port()) : fmt::format("{}:{}", server_name, ep.port());
  }
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

asio::awaitable<Result<std::shared_ptr<h2::Session>>> start_session(std::unique_ptr<h2::Transport> transport,
                                                                    std::string peer, h2::Settings settings) {
  auto ex = co_await asio::this_coro::executor;
  auto session = h2::Session::client(ex, std::move(transport), settings, std::move(peer));
  if (!session) co_return std::move(session).error();
  asio::co_spawn(ex, [s = *session]() -> asio::awaitable<void> {
        if (auto r = co_await s->run(); !r) spdlog::debug("grpc: connection to {} ended: {}", s->peer(), r.error());
      }, asio::detached);
  co_return std::move(*session);
}

asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial_plain(asio::ip::tcp::endpoint ep, std::string label,
                                                                 DialOptions options) {
  auto tcp = co_await net::connect(ep, options.connect_timeout);
  if (!tcp) co_return std::move(tcp).error();
  co_return co_await start_session(h2::make_transport(std::move(*tcp)), std::move(label), options.settings);
}

asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial_tls(asio::awaitable<Result<tls::TlsStream>> connecting,
                                                               std::string label, DialOptions options) {
  auto stream = co_await std::move(connecting);
  if (!stream) co_return std::move(stream).error();
  co_return co_await start_session(h2::make_transport(std::move(*stream)), std::move(label), options.settings);
}

}  // namespace

asio::awaitable<Result<std::shared_ptr<h2::Session>>> dial(asio::ip::tcp::endpoint endpoint, const ChannelTls* tls,
                                                           std::string server_name, DialOptions options) {
  std::string label = endpoint_label(endpoint, server_name);
  if (tls == nullptr) return dial_plain(endpoint, std::move(label), std::move(options));
  auto connecting = connect_tls(*tls, endpoint, std::move(server_name), options.connect_timeout);
  return dial_tls(std::move(connecting), std::move(label), std::move(options));
}

}  // namespace ambient::grpc
