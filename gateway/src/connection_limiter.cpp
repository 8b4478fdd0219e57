#include "src/connection_limiter.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "telegate/gateway/config.hpp"

namespace telegate::gateway {

namespace {

ConnectionLimiter::SourceKey key_of(const boost::asio::ip::address& address) {
  if (address.is_v4()) return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, address.to_v4()).to_bytes();
  return address.to_v6().to_bytes();
}

prometheus::Family<prometheus::Counter>& refused_family(prometheus::Registry& registry) {
  return prometheus::BuildCounter()
      .Name("telegate_connections_refused_total")
      .Help("Connections closed by the gateway before serving them, by listener and reason")
      .Register(registry);
}

}  // namespace

ConnectionLimiter::Slot& ConnectionLimiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (limiter_) limiter_->release(source_);
    limiter_ = std::exchange(other.limiter_, nullptr);
    source_ = other.source_;
  }
  return *this;
}

ConnectionLimiter::Slot::~Slot() {
  if (limiter_) limiter_->release(source_);
}

ConnectionLimiter::ConnectionLimiter(std::string_view listener, const ConnectionLimits& limits,
                                     prometheus::Registry& registry)
    : listener_(listener),
      max_total_(limits.max_connections),
      max_per_source_(limits.max_connections_per_source),
      refused_total_(refused_family(registry).Add({{"listener", listener_}, {"reason", "total"}})),
      refused_per_source_(refused_family(registry).Add({{"listener", listener_}, {"reason", "per_source"}})),
      refused_handshake_(refused_family(registry).Add({{"listener", listener_}, {"reason", "tls_handshake"}})) {}

std::optional<ConnectionLimiter::Slot> ConnectionLimiter::admit(boost::asio::ip::tcp::socket& socket) {
  boost::system::error_code error;
  const auto peer = socket.remote_endpoint(error);
  std::optional<Slot> slot = error ? std::nullopt : admit(peer.address());  // error: reset already
  if (!slot) socket.close(error);
  return slot;
}

std::optional<ConnectionLimiter::Slot> ConnectionLimiter::admit(const boost::asio::ip::address& source) {
  const SourceKey key = key_of(source);
  std::string_view refusal;
  {
    const std::lock_guard lock(mutex_);
    std::size_t& from_source = by_source_[key];
    if (max_total_ != 0 && open_ >= max_total_) {
      refusal = "total";
      refused_total_.Increment();
    } else if (max_per_source_ != 0 && from_source >= max_per_source_) {
      refusal = "per_source";
      refused_per_source_.Increment();
    } else {
      ++from_source;
      ++open_;
      return Slot(this, key);
    }
    if (from_source == 0) by_source_.erase(key);
    // One line a second at most: a flood of refusals must not become a flood of logs.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_log_ < std::chrono::seconds(1)) return std::nullopt;
    last_log_ = now;
  }
  spdlog::warn("{}: connection from {} refused: {}", listener_, source.to_string(),
               refusal == "total" ? "max_connections reached" : "max_connections_per_source reached");
  return std::nullopt;
}

void ConnectionLimiter::refused_tls_handshake() { refused_handshake_.Increment(); }

void ConnectionLimiter::release(const SourceKey& source) {
  const std::lock_guard lock(mutex_);
  --open_;
  const auto found = by_source_.find(source);
  if (found != by_source_.end() && --found->second == 0) by_source_.erase(found);
}

}  // namespace telegate::gateway
