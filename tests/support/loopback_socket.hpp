// A blocking TCP or UDP socket connected to 127.0.0.1, for tests that speak a wire protocol
// byte for byte (binary trackers). Failures are doctest REQUIREs.
//
// Lifecycle: owned by the test thread; the destructor closes the socket.
#pragma once

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>

namespace telegate::testing {

class LoopbackSocket {
 public:
  LoopbackSocket(int type, std::uint16_t port) : fd_(::socket(AF_INET, type, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  }
  ~LoopbackSocket() { ::close(fd_); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  void send(const std::string& data) {
    REQUIRE(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size()));
  }

  // Up to `size` bytes within `timeout_ms`: fewer when the peer closed or time ran out.
  std::string receive(std::size_t size, int timeout_ms = 15'000) {
    std::string out;
    while (out.size() < size) {
      pollfd wait{fd_, POLLIN, 0};
      if (::poll(&wait, 1, timeout_ms) <= 0) break;
      char buffer[512];
      const ssize_t got = ::recv(fd_, buffer, std::min(sizeof(buffer), size - out.size()), 0);
      if (got <= 0) break;
      out.append(buffer, static_cast<std::size_t>(got));
    }
    return out;
  }

  // True when the gateway closed the connection (EOF or reset) within `timeout_ms`.
  bool closed_by_peer(int timeout_ms = 10'000) {
    pollfd wait{fd_, POLLIN, 0};
    if (::poll(&wait, 1, timeout_ms) <= 0) return false;
    char byte;
    return ::recv(fd_, &byte, 1, 0) <= 0;
  }

 private:
  int fd_;
};

}  // namespace telegate::testing
