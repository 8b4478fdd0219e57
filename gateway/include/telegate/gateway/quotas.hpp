// Quotas: the per-layer state behind admission's fair shares and the optional rate quotas
// (tenant → device type → device). docs/reliability.md, Backpressure, says what each refusal
// tells a device.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "telegate/gateway/admission.hpp"
#include "telegate/gateway/config.hpp"

namespace telegate::gateway {

// A token bucket of records. Lifecycle: owned by Quotas for the gateway's life and shared by
// every listener thread; a mutex guards one short critical section per request. The caller
// passes the time, so tests drive it with a clock of their own.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(const RateQuota& quota, Clock::time_point now) noexcept;
  // Takes `records` tokens and returns nullopt, or takes nothing and returns how long until the
  // bucket will hold them. A request larger than the burst passes when the bucket is full and
  // leaves it in debt, so that it is slowed down rather than refused forever.
  std::optional<Clock::duration> take(double records, Clock::time_point now);
  // Returns tokens taken for a request that was refused further on.
  void give_back(double records);

 private:
  std::mutex mutex_;
  const double rate_;   // tokens per second
  const double burst_;  // most tokens saved up
  double tokens_;
  Clock::time_point last_;
};

// Lifecycle: built at start-up on the main thread from the config, before the pipeline that
// uses it; shared by every pipeline worker (thread-safe) and outlives them. Its entries are
// created on first use and never removed (tenants, device types and provisioned devices are
// bounded by the catalog), so workers may cache the pointers it hands out.
class Quotas {
 public:
  using Clock = TokenBucket::Clock;

  // A tenant, or one device type inside a tenant.
  struct Layer {
    InflightBudget::ShareAccount* share = nullptr;
    TokenBucket* rate = nullptr;  // nullptr: no rate quota
  };
  // A device: its records in flight (admission's device cap) and its rate bucket.
  struct Device {
    std::atomic<std::size_t> inflight{0};
    std::unique_ptr<TokenBucket> rate;
  };

  Quotas(const QuotaConfig& config, InflightBudget& budget);
  Layer tenant(std::string_view tenant);
  Layer device_type(std::string_view tenant, std::string_view device_type);
  // Takes one of 64 shard locks. `key` is the caller's scratch string (no allocation per call).
  Device& device(std::string_view tenant, std::string_view device_id, std::string& key);

  // Takes `records` from every bucket given (nullptr: none), all or nothing; otherwise the
  // wait the first refusing bucket names (layers are checked device first, tenant last).
  static std::optional<Clock::duration> take(const std::array<TokenBucket*, 3>& buckets, double records,
                                             Clock::time_point now);
  static void give_back(const std::array<TokenBucket*, 3>& buckets, double records);

 private:
  Layer layer(std::string_view tenant, std::string_view device_type, const LayerQuota& quota);

  const QuotaConfig& config_;
  InflightBudget& budget_;
  std::mutex layers_mutex_;
  std::unordered_map<std::string, std::unique_ptr<TokenBucket>> layer_rates_;  // same keys as the budget's accounts
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::unique_ptr<Device>> devices;  // "tenant\x1fdevice"
  };
  std::array<Shard, 64> shards_;
};

}  // namespace telegate::gateway
