// CoAP transport (libcoap 3): confirmable POSTs to the gateway's CoAP listener, Block1 by
// libcoap when a body exceeds a datagram. Plain UDP authenticates with the Uri-Query
// t=<device token>; DTLS-PSK (--psk) with identity = device id, key = the lower-case hex SHA-256
// of its token (gateway/coap/README.md).
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "shared_channel.hpp"

namespace telegate::sim {

// Parsed once at start-up, read-only afterwards.
struct CoapSettings {
  std::string host;
  std::string port;
  std::vector<std::string> path;      // Uri-Path segments
  bool dtls = false;
  std::chrono::milliseconds timeout;  // a request's answer, libcoap's retransmissions included
};

// Throws std::invalid_argument for a URI that is not coap[s]://host[:port][/path], or coaps
// without --psk (and the reverse).
CoapSettings parse_coap_uri(const std::string& uri, bool psk, std::chrono::milliseconds timeout);

// Throws std::invalid_argument for a profile that has no CoAP Content-Format.
void check_coap_profile(const WireFormat& format);

// One libcoap context for the whole run, on the io_context thread (libcoap is not thread-safe):
// its epoll descriptor and timers are driven by Asio. Sessions: one per lane over plain UDP
// (any device may use it: the token is in the request), one per device over DTLS (the PSK
// identity is the device). Throws std::invalid_argument when the host does not resolve or DTLS
// is asked of a libcoap without it.
std::unique_ptr<SharedTransport> make_coap_client(boost::asio::io_context& io, const CoapSettings& settings,
                                                  std::size_t devices);

}  // namespace telegate::sim
