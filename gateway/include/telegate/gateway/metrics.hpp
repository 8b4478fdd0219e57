// The gateway's Prometheus metrics (docs/component-spec.md lists what each listener must have).
//
// Built once at start-up on the main thread; counters are looked up here, not per request, so
// the data path only increments. Per-tenant children are added on a tenant's first request
// (Metrics::tenant, under a mutex) and cached by each pipeline worker. prometheus-cpp metrics
// are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "telegate/envelope/envelope.hpp"

namespace telegate::gateway {

// Why records were not accepted (the `reason` label).
enum class RejectReason : std::uint8_t {
  validation,
  decode,
  forbidden,
  overloaded,      // the in-flight budget, a fair share or the device cap: retry later
  sink_error,
  unauthenticated,
  quota_exceeded,  // a rate quota (tenant, device type or device): retry after the advertised time
};
inline constexpr std::size_t kRejectReasons = 7;

// Adds `records` unless there are none: a prometheus-cpp counter's increment is an atomic
// compare-and-swap loop even for 0, and most requests have no rejected or duplicate record.
inline void add_records(prometheus::Counter& counter, std::size_t records) {
  if (records != 0) counter.Increment(static_cast<double>(records));
}

struct ProtocolMetrics {
  std::string protocol;
  prometheus::Counter* received = nullptr;
  prometheus::Counter* accepted = nullptr;
  prometheus::Counter* deduplicated = nullptr;  // retries of committed records, acknowledged again
  std::array<prometheus::Counter*, kRejectReasons> rejected{};
  prometheus::Histogram* request_records = nullptr;
  prometheus::Histogram* ack_latency = nullptr;
  prometheus::Family<prometheus::Counter>* requests = nullptr;  // by status, added on first use

  // The `requests` child of a status, from `by_status` once a status has been seen: the family's
  // Add() builds a label map (three heap nodes) and takes the family's lock, once per request
  // on every listener before this cache (docs/benchmarks.md §18.alloc). Any thread.
  prometheus::Counter& requests_with_status(int status) const;
  // Statuses below this are cached: HTTP 100–599, CoAP codes as class × 100 + detail (≤ 731),
  // MQTT reason codes 0–255. Others (none today) go to the family every time.
  static constexpr std::size_t kCachedStatuses = 800;
  // Filled on first use by whichever thread answers with that status first; a race stores the
  // same child twice (Add() returns the existing one).
  mutable std::array<std::atomic<prometheus::Counter*>, kCachedStatuses> by_status{};
  void reject(RejectReason reason, std::size_t records) const {
    add_records(*rejected[static_cast<std::size_t>(reason)], records);
  }
};

// What became of the records one tenant sent through one listener (the reconciliation counters,
// docs/reliability.md "Loss accounting"). At a quiet moment (nothing in flight):
//   received = acknowledged + Σ rejected + failed
//   acknowledged − deduplicated = records written (Kafka committed, or spooled)
// Created on first use by Metrics::tenant() and never removed; workers cache the pointer.
struct TenantMetrics {
  prometheus::Counter* received = nullptr;      // records in requests that reached the pipeline
  prometheus::Counter* admitted = nullptr;      // handed to the sink (the in-flight budget granted)
  prometheus::Counter* acknowledged = nullptr;  // told durable, including deduplicated
  prometheus::Counter* deduplicated = nullptr;  // acknowledged retries of records already written
  prometheus::Counter* failed = nullptr;        // admitted, then the sink failed: told not durable
  // Of the records written, how many went to the Kafka sink's local spool (acknowledged once
  // spooled, replayed into Kafka later) rather than straight into a Kafka transaction.
  prometheus::Counter* spooled = nullptr;
  std::array<prometheus::Counter*, kRejectReasons> rejected{};

  void reject(RejectReason reason, std::size_t records) const {
    add_records(*rejected[static_cast<std::size_t>(reason)], records);
  }
};

class InflightBudget;

class Metrics {
 public:
  Metrics();
  // Thread-safe (a mutex; the first call per tenant and protocol builds the children): cache it.
  const TenantMetrics& tenant(envelope::SourceProtocol protocol, std::string_view tenant);
  // Per tenant and protocol, as JSON for GET /admin/v1/stats.
  std::string tenant_stats_json();
  prometheus::Registry& registry() noexcept { return *registry_; }
  const ProtocolMetrics& protocol(envelope::SourceProtocol protocol) const {
    return protocols_[static_cast<std::size_t>(protocol) - 1];
  }
  // telegate_inflight_records and _bytes are read off `budget` by each render() rather than
  // kept up to date by every request (four atomic read-modify-writes per batch). `budget` must
  // outlive every later render() call.
  void report_inflight(const InflightBudget& budget) noexcept { inflight_source_ = &budget; }
  // The text exposition format, for GET /metrics.
  std::string render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::array<ProtocolMetrics, 4> protocols_;
  prometheus::Gauge* inflight_records_;
  prometheus::Gauge* inflight_bytes_;
  const InflightBudget* inflight_source_ = nullptr;
  prometheus::Family<prometheus::Counter>* tenant_records_;
  prometheus::Family<prometheus::Counter>* tenant_rejected_;
  std::mutex tenants_mutex_;
  std::map<std::pair<std::string, std::string>, TenantMetrics> tenants_;  // (tenant, protocol); nodes stay put
};

}  // namespace telegate::gateway
