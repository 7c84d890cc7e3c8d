#pragma once
// SocketFactory: where a proxy's sockets are created. Dedicated mode creates them in ztunnel's own network
// namespace; in-pod (shared) mode creates every listener and every outbound socket inside the pod's netns
// (setns on the calling thread, create, setns back), so the same Proxy code serves both.
// Every socket gets SO_MARK when a packet mark is configured (the in-pod rules skip marked traffic).
#include <cstdint>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/base/result.h"
#include "common/net/fd.h"
#include "common/net/tcp_stream.h"

namespace ambient::ztunnel {

class SocketFactory {
 public:
  virtual ~SocketFactory() = default;
  // A bound, listening acceptor.
  virtual Result<boost::asio::ip::tcp::acceptor> listen(const boost::asio::any_io_executor& ex,
                                                        const boost::asio::ip::tcp::endpoint& ep,
                                                        const net::ListenOptions& options) const = 0;
  // An open, unconnected socket of `protocol` (for upstream and HBONE connects).
  virtual Result<boost::asio::ip::tcp::socket> socket(const boost::asio::any_io_executor& ex,
                                                      const boost::asio::ip::tcp& protocol) const = 0;
};

// Sockets in the current (ztunnel's own) network namespace.
class DefaultSocketFactory final : public SocketFactory {
 public:
  explicit DefaultSocketFactory(std::uint32_t mark = 0) : mark_(mark) {}
  Result<boost::asio::ip::tcp::acceptor> listen(const boost::asio::any_io_executor& ex, const boost::asio::ip::tcp::endpoint& ep,
                                                const net::ListenOptions& options) const override;
  Result<boost::asio::ip::tcp::socket> socket(const boost::asio::any_io_executor& ex,
                                              const boost::asio::ip::tcp& protocol) const override;

 private:
  std::uint32_t mark_;
};

// Sockets inside another network namespace, given by an open netns fd (a pod's, from ZDS or a path). The fd is
// shared by every worker's factory for the same pod and closed with the last of them.
class NetnsSocketFactory final : public SocketFactory {
 public:
  NetnsSocketFactory(std::shared_ptr<const net::UniqueFd> netns, std::uint32_t mark) : netns_(std::move(netns)), inner_(mark) {}
  NetnsSocketFactory(net::UniqueFd netns, std::uint32_t mark)
      : NetnsSocketFactory(std::make_shared<const net::UniqueFd>(std::move(netns)), mark) {}
  Result<boost::asio::ip::tcp::acceptor> listen(const boost::asio::any_io_executor& ex, const boost::asio::ip::tcp::endpoint& ep,
                                                const net::ListenOptions& options) const override;
  Result<boost::asio::ip::tcp::socket> socket(const boost::asio::any_io_executor& ex,
                                              const boost::asio::ip::tcp& protocol) const override;

 private:
  std::shared_ptr<const net::UniqueFd> netns_;
  DefaultSocketFactory inner_;
};

}  // namespace ambient::ztunnel
