// Connection caps of one stream listener (HTTP or MQTT): at most max_connections open at once,
// and at most max_connections_per_source from one IP address, over all its I/O threads and
// ports (plain and TLS). A connection over a cap is closed right after accept, before a byte
// is read — reading a request is the very resource being protected — and counted in
// telegate_connections_refused_total{listener,reason} (reason: total, per_source; the listeners
// add tls_handshake for failed or timed-out handshakes).
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace telegate::gateway {

struct ConnectionLimits;

// Lifecycle: constructed by a listener (main thread) and outliving its I/O threads; admit() and
// the Slots' release run on any I/O thread (one mutex; an accept is rare next to the requests
// a connection carries).
class ConnectionLimiter {
 public:
  using SourceKey = std::array<unsigned char, 16>;  // IPv6 or IPv4-mapped

  // Holds one connection's place until destroyed (move-only; owned by the connection).
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : limiter_(std::exchange(other.limiter_, nullptr)), source_(other.source_) {}
    Slot& operator=(Slot&& other) noexcept;
    ~Slot();

   private:
    friend class ConnectionLimiter;
    Slot(ConnectionLimiter* limiter, const SourceKey& source) : limiter_(limiter), source_(source) {}
    ConnectionLimiter* limiter_ = nullptr;
    SourceKey source_{};
  };

  ConnectionLimiter(std::string_view listener, const ConnectionLimits& limits, prometheus::Registry& registry);

  // A Slot for a just-accepted connection, or an empty optional when a cap is reached (counted,
  // logged at most once a second); then the socket is closed here.
  std::optional<Slot> admit(boost::asio::ip::tcp::socket& socket);
  // The same decision for a source address (no socket to close).
  std::optional<Slot> admit(const boost::asio::ip::address& source);
  // A refusal decided elsewhere (the TLS handshake failed or timed out).
  void refused_tls_handshake();

 private:
  void release(const SourceKey& source);
  struct KeyHash {
    std::size_t operator()(const SourceKey& key) const noexcept {
      return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
    }
  };

  const std::string listener_;
  const std::size_t max_total_;
  const std::size_t max_per_source_;
  prometheus::Counter& refused_total_;
  prometheus::Counter& refused_per_source_;
  prometheus::Counter& refused_handshake_;
  std::mutex mutex_;
  std::size_t open_ = 0;
  std::unordered_map<SourceKey, std::size_t, KeyHash> by_source_;  // sources with ≥ 1 open connection
  std::chrono::steady_clock::time_point last_log_{};
};

}  // namespace telegate::gateway
