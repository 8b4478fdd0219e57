#include "telegate/gateway/metrics.hpp"

#include "telegate/gateway/admission.hpp"

#include <prometheus/text_serializer.h>

#include <string>

namespace telegate::gateway {

namespace {

constexpr std::string_view kReasonNames[kRejectReasons] = {"validation", "decode",          "forbidden",
                                                           "overloaded", "sink_error",      "unauthenticated",
                                                           "quota_exceeded"};
constexpr envelope::SourceProtocol kProtocols[] = {envelope::SourceProtocol::http, envelope::SourceProtocol::mqtt,
                                                   envelope::SourceProtocol::coap, envelope::SourceProtocol::tcp};

}  // namespace

prometheus::Counter& ProtocolMetrics::requests_with_status(int status) const {
  const bool cacheable = status >= 0 && static_cast<std::size_t>(status) < kCachedStatuses;
  if (cacheable) {
    if (prometheus::Counter* cached = by_status[static_cast<std::size_t>(status)].load(std::memory_order_acquire)) {
      return *cached;
    }
  }
  // Add() returns the existing child when there is one.
  prometheus::Counter& counter = requests->Add({{"protocol", protocol}, {"status", std::to_string(status)}});
  if (cacheable) by_status[static_cast<std::size_t>(status)].store(&counter, std::memory_order_release);
  return counter;
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& received = prometheus::BuildCounter()
                       .Name("telegate_records_received_total")
                       .Help("Records decoded from device payloads")
                       .Register(*registry_);
  auto& accepted = prometheus::BuildCounter()
                       .Name("telegate_records_accepted_total")
                       .Help("Records durable in the sink and acknowledged to the device")
                       .Register(*registry_);
  auto& deduplicated = prometheus::BuildCounter()
                           .Name("telegate_records_deduplicated_total")
                           .Help("Retried records already committed: acknowledged again, not written again")
                           .Register(*registry_);
  auto& rejected = prometheus::BuildCounter()
                       .Name("telegate_records_rejected_total")
                       .Help("Records not accepted, by reason")
                       .Register(*registry_);
  auto& requests = prometheus::BuildCounter()
                       .Name("telegate_requests_total")
                       .Help("Device requests by protocol status code")
                       .Register(*registry_);
  auto& request_records = prometheus::BuildHistogram()
                              .Name("telegate_request_records")
                              .Help("Records per device request")
                              .Register(*registry_);
  auto& ack_latency = prometheus::BuildHistogram()
                          .Name("telegate_ack_latency_seconds")
                          .Help("From request received to acknowledgement sent")
                          .Register(*registry_);
  for (const envelope::SourceProtocol protocol : kProtocols) {
    const std::string name(envelope::to_string(protocol));
    ProtocolMetrics& metrics = protocols_[static_cast<std::size_t>(protocol) - 1];
    metrics.protocol = name;
    metrics.received = &received.Add({{"protocol", name}});
    metrics.accepted = &accepted.Add({{"protocol", name}});
    metrics.deduplicated = &deduplicated.Add({{"protocol", name}});
    for (std::size_t i = 0; i < kRejectReasons; ++i) {
      metrics.rejected[i] = &rejected.Add({{"protocol", name}, {"reason", std::string(kReasonNames[i])}});
    }
    metrics.requests = &requests;
    metrics.request_records = &request_records.Add(
        {{"protocol", name}}, prometheus::Histogram::BucketBoundaries{1, 5, 10, 50, 100, 500, 1000, 5000});
    metrics.ack_latency = &ack_latency.Add({{"protocol", name}},
                                           prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                                                   0.25, 0.5, 1, 2.5, 5, 10});
  }
  inflight_records_ = &prometheus::BuildGauge()
                           .Name("telegate_inflight_records")
                           .Help("Records accepted from devices and not yet durable")
                           .Register(*registry_)
                           .Add({});
  inflight_bytes_ = &prometheus::BuildGauge()
                         .Name("telegate_inflight_bytes")
                         .Help("Envelope bytes accepted from devices and not yet durable")
                         .Register(*registry_)
                         .Add({});
  tenant_records_ = &prometheus::BuildCounter()
                         .Name("telegate_tenant_records_total")
                         .Help("Records per listener and tenant by outcome (received, admitted, acknowledged, "
                               "deduplicated, failed, spooled); they reconcile, see docs/reliability.md")
                         .Register(*registry_);
  tenant_rejected_ = &prometheus::BuildCounter()
                          .Name("telegate_tenant_records_rejected_total")
                          .Help("Records per listener and tenant refused before the sink, by reason")
                          .Register(*registry_);
}

const TenantMetrics& Metrics::tenant(envelope::SourceProtocol protocol, std::string_view tenant) {
  const std::lock_guard lock(tenants_mutex_);
  const std::string protocol_name(envelope::to_string(protocol));
  auto [entry, created] = tenants_.try_emplace({std::string(tenant), protocol_name});
  TenantMetrics& metrics = entry->second;
  if (!created) return metrics;
  const auto counter = [&](std::string_view outcome) {
    return &tenant_records_->Add({{"protocol", protocol_name}, {"tenant", std::string(tenant)}, {"outcome", std::string(outcome)}});
  };
  metrics.received = counter("received");
  metrics.admitted = counter("admitted");
  metrics.acknowledged = counter("acknowledged");
  metrics.deduplicated = counter("deduplicated");
  metrics.failed = counter("failed");
  metrics.spooled = counter("spooled");
  for (std::size_t i = 0; i < kRejectReasons; ++i) {
    metrics.rejected[i] = &tenant_rejected_->Add(
        {{"protocol", protocol_name}, {"tenant", std::string(tenant)}, {"reason", std::string(kReasonNames[i])}});
  }
  return metrics;
}

std::string Metrics::tenant_stats_json() {
  const std::lock_guard lock(tenants_mutex_);
  const auto number = [](const prometheus::Counter* counter) {
    return std::to_string(static_cast<std::uint64_t>(counter->Value()));
  };
  std::string out = "{\"tenants\":[";
  bool first = true;
  for (const auto& [key, metrics] : tenants_) {
    out += first ? "{\"tenant\":" : ",{\"tenant\":";
    first = false;
    envelope::append_json_string(out, key.first);
    out += ",\"protocol\":";
    envelope::append_json_string(out, key.second);
    out += ",\"received\":" + number(metrics.received) + ",\"admitted\":" + number(metrics.admitted) +
           ",\"acknowledged\":" + number(metrics.acknowledged) + ",\"deduplicated\":" + number(metrics.deduplicated) +
           ",\"failed\":" + number(metrics.failed) + ",\"spooled\":" + number(metrics.spooled) + ",\"rejected\":{";
    for (std::size_t i = 0; i < kRejectReasons; ++i) {
      out += i ? ",\"" : "\"";
      out += kReasonNames[i];
      out += "\":" + number(metrics.rejected[i]);
    }
    out += "}}";
  }
  out += "]}";
  return out;
}

std::string Metrics::render() const {
  if (inflight_source_ != nullptr) {
    inflight_records_->Set(static_cast<double>(inflight_source_->records()));
    inflight_bytes_->Set(static_cast<double>(inflight_source_->bytes()));
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace telegate::gateway
