// HTTP/1.1 keep-alive transport (Boost.Beast) for the load driver.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "transport.hpp"

namespace telegate::sim {

// Where and how to reach the gateway; parsed once at start-up, read-only afterwards.
struct HttpEndpoint {
  std::string host;
  std::string port;
  std::string target;  // the --url path: the telegate profiles' route
  boost::asio::ip::tcp::resolver::results_type addresses;
  std::chrono::milliseconds timeout;  // the connect, or one request's write + answer
};

// Throws std::invalid_argument for a URL that is not http://host[:port][/path].
HttpEndpoint resolve_http_endpoint(boost::asio::io_context& io, const std::string& url,
                                   std::chrono::milliseconds timeout);

std::unique_ptr<Channel> make_http_channel(boost::asio::io_context& io, const HttpEndpoint& endpoint);

}  // namespace telegate::sim
