#pragma once
// Test HBONE echo server for pool and outbound tests: mTLS on 127.0.0.1:0, echoes every CONNECT stream,
// counts TCP connections accepted and ended, and keeps each live server session so a test can GOAWAY it.
// It builds the server session itself, with the same steps as hbone::serve_connection (TLS handshake,
// peer identity, h2::Session::server). serve_connection does not hand out its session.
//
// Authority port 503 is answered "503" with no body (for non-200 tests). Other streams get 200 and an echo.
// `changed` wakes ONE waiting coroutine (the test) at every accept, stream and connection end: see wait_for().
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/h2/notify.h"
#include "common/h2/session.h"
#include "common/net/tcp_stream.h"
#include "common/tls/certified_key.h"
#include "common/tls/tls_context.h"
#include "common/tls/tls_stream.h"

namespace ambient::test {

// 200, then every byte back; END_STREAM after the client's. 16 KiB buffer: tests run 1000 of these at once.
inline boost::asio::awaitable<void> small_echo(std::shared_ptr<h2::Stream> s) {
  if (!s->respond(200)) co_return;
  std::vector<std::uint8_t> buf(16 << 10);
  for (;;) {
    auto n = co_await s->read_some(buf);
    if (!n) co_return;
    if (*n == 0) break;
    if (!co_await s->write_all(std::span<const std::uint8_t>(buf.data(), *n))) co_return;
  }
  (void)co_await s->shutdown_write();
}

class HboneEchoServer {
 public:
  // Binds 127.0.0.1:0 at once. With listen=false the port refuses connections (bound, not listening) until
  // start(): a "nothing listening" peer that later comes up on the same port without a race.
  HboneEchoServer(boost::asio::io_context& io, const tls::CertifiedKey& key, h2::Settings settings = default_settings(),
                  bool listen = true)
      : io_(io), ctx_(*tls::make_server_context(key)), acceptor_(io), settings_(settings), changed_(io.get_executor()) {
    namespace asio = boost::asio;
    acceptor_.open(asio::ip::tcp::v4());
    acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    if (listen) start();
  }
  ~HboneEchoServer() { stop(); }

  static h2::Settings default_settings() {
    h2::Settings s;
    s.max_concurrent_streams = 200;  // ztunnel's server advertises 200
    s.ping_interval = std::chrono::milliseconds(0);
    return s;
  }

  void start() {
    acceptor_.listen();
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
  }
  void stop() {
    boost::system::error_code ec;
    acceptor_.close(ec);
  }
  // Graceful drain of every live server session: GOAWAY(NO_ERROR); open streams finish.
  void goaway_all() {
    for (auto& s : sessions_) s->shutdown();
  }

  boost::asio::ip::tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }
  int accepted() const { return accepted_; }        // TCP connections accepted
  int ended() const { return ended_; }              // connections whose handshake or session has ended
  int streams() const { return streams_; }          // CONNECT streams received
  const std::vector<std::string>& peers() const { return peers_; }  // client identity per stream
  const std::vector<Result<void>>& outcomes() const { return outcomes_; }  // per ended connection

  // Waits until pred() holds (re-checked at every server event) or the timeout passes; returns pred().
  boost::asio::awaitable<bool> wait_for(std::function<bool()> pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred())
      if (!co_await changed_.wait_until(deadline)) co_return pred();
    co_return true;
  }

 private:
  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto c = co_await net::accept(acceptor_);
      if (!c) co_return;
      ++accepted_;
      changed_.notify();
      boost::asio::co_spawn(io_, serve(std::move(*c)), boost::asio::detached);
    }
  }

  boost::asio::awaitable<void> serve(net::TcpStream c) {
    auto r = co_await serve_one(std::move(c));
    outcomes_.push_back(std::move(r));
    ++ended_;
    changed_.notify();
  }

  boost::asio::awaitable<Result<void>> serve_one(net::TcpStream c) {
    const std::string address = c.peer().address().to_string() + ":" + std::to_string(c.peer().port());
    auto ssl = tls::new_server_ssl(ctx_.get());
    if (!ssl) co_return ssl.error();
    tls::TlsStream stream(std::move(c.socket()), std::move(*ssl));
    auto hs = co_await stream.handshake(std::chrono::seconds(5));
    if (!hs) co_return hs;
    auto id = stream.peer_identity();
    if (!id) co_return make_error(ErrorKind::PeerIdentity, "no SPIFFE identity");
    auto session = h2::Session::server(
        io_.get_executor(), h2::make_transport(std::move(stream)), settings_,
        [this, who = id->to_string()](std::shared_ptr<h2::Stream> s) -> boost::asio::awaitable<void> {
          ++streams_;
          peers_.push_back(who);
          changed_.notify();
          auto authority = h2::find_header(s->request_headers(), ":authority");
          if (authority && authority->ends_with(":503")) {
            const h2::Headers none;
            (void)s->respond(503, none, true);
            co_return;
          }
          co_await small_echo(std::move(s));
        },
        address);
    if (!session) co_return session.error();
    auto self = *session;
    sessions_.push_back(self);
    auto r = co_await self->run();
    std::erase(sessions_, self);
    co_return r;
  }

  boost::asio::io_context& io_;
  bssl::UniquePtr<SSL_CTX> ctx_;
  boost::asio::ip::tcp::acceptor acceptor_;
  h2::Settings settings_;
  h2::Notify changed_;
  int accepted_ = 0, ended_ = 0, streams_ = 0;
  std::vector<std::string> peers_;
  std::vector<Result<void>> outcomes_;
  std::vector<std::shared_ptr<h2::Session>> sessions_;
};

}  // namespace ambient::test
