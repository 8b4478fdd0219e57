// The TCP acceptor every stream listener (HTTP, MQTT) opens per I/O thread: SO_REUSEPORT on the
// same address and port, so that the kernel spreads connections over the threads and no
// connection's handlers ever cross threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace telegate::gateway {

// Opens, binds and listens on address:port (port 0: any; read the bound port back from the
// acceptor and pass it for the next thread's acceptor). Throws std::runtime_error naming
// `port_key` (e.g. "mqtt.port") when the address cannot be bound.
void open_reuseport_acceptor(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address, std::uint16_t port,
                             std::string_view port_key);

}  // namespace telegate::gateway
