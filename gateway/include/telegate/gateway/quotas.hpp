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
  // True when the bucket has refilled to its burst by `now`: forgetting it then changes nothing,
  // since a new bucket starts full.
  bool full(Clock::time_point now);

 private:
  std::mutex mutex_;
  const double rate_;   // tokens per second
  const double burst_;  // most tokens saved up
  double tokens_;
  Clock::time_point last_;
};

// Lifecycle: built at start-up on the main thread from the config, before the pipeline that
// uses it; shared by every pipeline worker (thread-safe) and outlives them. Tenant and device
// type entries are created on first use and never removed (bounded by the catalog's tenants ×
// types), so workers may cache those pointers. Device entries are created on first use and
// evicted once idle for kDeviceIdle with nothing in flight and a full rate bucket: devices come
// and go over a gateway's life (deleted, replaced, renamed), and a device's state must not
// outlive it forever. A Device& is therefore valid only for the request that looked it up (its
// permit's in-flight count keeps it from eviction while its records are in flight).
class Quotas {
 public:
  using Clock = TokenBucket::Clock;
  // A device's state is forgotten after this long without a request (and re-created, equal to
  // what was forgotten, on its next one). Each shard is swept at most once per kDeviceSweep.
  static constexpr std::chrono::minutes kDeviceIdle{10};
  static constexpr std::chrono::minutes kDeviceSweep{1};

  // A tenant, or one device type inside a tenant.
  struct Layer {
    InflightBudget::ShareAccount* share = nullptr;
    TokenBucket* rate = nullptr;  // nullptr: no rate quota
  };
  // A device: its records in flight (admission's device cap) and its rate bucket.
  struct Device {
    std::atomic<std::size_t> inflight{0};
    std::unique_ptr<TokenBucket> rate;
    Clock::time_point last_seen{};  // guarded by its shard's mutex
  };

  Quotas(const QuotaConfig& config, InflightBudget& budget);
  Layer tenant(std::string_view tenant);
  Layer device_type(std::string_view tenant, std::string_view device_type);
  // Takes one of 64 shard locks. `key` is the caller's scratch string (no allocation per call).
  // `now` is the request's time (tests pass their own clock); it may sweep this shard's idle devices.
  Device& device(std::string_view tenant, std::string_view device_id, std::string& key,
                 Clock::time_point now = Clock::now());
  // Device entries held (all shards): what eviction bounds.
  std::size_t devices() const;

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
    mutable std::mutex mutex;
    std::unordered_map<std::string, std::unique_ptr<Device>> devices;  // "tenant\x1fdevice"
    Clock::time_point next_sweep{};
  };
  static void sweep_locked(Shard& shard, Clock::time_point now);
  std::array<Shard, 64> shards_;
};

}  // namespace telegate::gateway
