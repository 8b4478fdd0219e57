#include "src/tcp_acceptor.hpp"

#include <boost/asio/socket_base.hpp>

#include <stdexcept>

namespace telegate::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

void open_reuseport_acceptor(tcp::acceptor& acceptor, const std::string& address, std::uint16_t port,
                             std::string_view port_key) {
  boost::system::error_code error;
  const auto ip = asio::ip::make_address(address, error);
  if (error) throw std::runtime_error(std::string(port_key) + ": bad address '" + address + "': " + error.message());
  const tcp::endpoint endpoint(ip, port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.set_option(ReusePort(true));
  acceptor.bind(endpoint, error);
  if (error) {
    throw std::runtime_error(std::string(port_key) + ": cannot listen on " + address + ":" + std::to_string(port) +
                             ": " + error.message());
  }
  acceptor.listen(asio::socket_base::max_listen_connections);
}

}  // namespace telegate::gateway
