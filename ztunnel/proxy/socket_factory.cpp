#include "ztunnel/proxy/socket_factory.h"

#include "common/net/netns.h"
#include "common/net/socket_options.h"

namespace ambient::ztunnel {

namespace asio = boost::asio;
using asio::ip::tcp;

Result<tcp::acceptor> DefaultSocketFactory::listen(const asio::any_io_executor& ex, const tcp::endpoint& ep,
                                                   const net::ListenOptions& options) const {
  auto acc = net::listen(ex, ep, options);
  if (!acc) return std::move(acc).error();
  if (mark_ != 0) AMBIENT_TRY(net::set_mark(acc->native_handle(), mark_));
  return std::move(*acc);
}

Result<tcp::socket> DefaultSocketFactory::socket(const asio::any_io_executor& ex, const tcp& protocol) const {
  tcp::socket s(ex);
  boost::system::error_code ec;
  s.open(protocol, ec);
  if (ec) return errorf(ErrorKind::Io, "socket(): {}", ec.message());
  if (mark_ != 0) AMBIENT_TRY(net::set_mark(s.native_handle(), mark_));
  return s;
}

Result<tcp::acceptor> NetnsSocketFactory::listen(const asio::any_io_executor& ex, const tcp::endpoint& ep,
                                                 const net::ListenOptions& options) const {
  return net::in_netns(netns_->get(), [&] { return inner_.listen(ex, ep, options); });
}

Result<tcp::socket> NetnsSocketFactory::socket(const asio::any_io_executor& ex, const tcp& protocol) const {
  return net::in_netns(netns_->get(), [&] { return inner_.socket(ex, protocol); });
}

}  // namespace ambient::ztunnel
