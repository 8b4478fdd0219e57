// The gateway's Prometheus metrics (docs/component-spec.md lists what each listener must have).
//
// Built once at start-up on the main thread; counters are looked up here, not per request, so
// the data path only increments. prometheus-cpp metrics are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>

#include "telegate/envelope/envelope.hpp"

namespace telegate::gateway {

// Why records were not accepted (the `reason` label).
enum class RejectReason : std::uint8_t { validation, decode, forbidden, overloaded, sink_error, unauthenticated };
inline constexpr std::size_t kRejectReasons = 6;

struct ProtocolMetrics {
  std::string protocol;
  prometheus::Counter* received = nullptr;
  prometheus::Counter* accepted = nullptr;
  prometheus::Counter* deduplicated = nullptr;  // retries of committed records, acknowledged again
  std::array<prometheus::Counter*, kRejectReasons> rejected{};
  prometheus::Histogram* request_records = nullptr;
  prometheus::Histogram* ack_latency = nullptr;
  prometheus::Family<prometheus::Counter>* requests = nullptr;  // by status, added on first use

  prometheus::Counter& requests_with_status(int status) const;
  void reject(RejectReason reason, std::size_t records) const {
    rejected[static_cast<std::size_t>(reason)]->Increment(static_cast<double>(records));
  }
};

class Metrics {
 public:
  Metrics();
  prometheus::Registry& registry() noexcept { return *registry_; }
  const ProtocolMetrics& protocol(envelope::SourceProtocol protocol) const {
    return protocols_[static_cast<std::size_t>(protocol) - 1];
  }
  prometheus::Gauge& inflight_records() const noexcept { return *inflight_records_; }
  prometheus::Gauge& inflight_bytes() const noexcept { return *inflight_bytes_; }
  // The text exposition format, for GET /metrics.
  std::string render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::array<ProtocolMetrics, 4> protocols_;
  prometheus::Gauge* inflight_records_;
  prometheus::Gauge* inflight_bytes_;
};

}  // namespace telegate::gateway
