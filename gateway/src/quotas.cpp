#include "telegate/gateway/quotas.hpp"

#include <algorithm>
#include <functional>

namespace telegate::gateway {

TokenBucket::TokenBucket(const RateQuota& quota, Clock::time_point now) noexcept
    : rate_(quota.records_per_second), burst_(std::max(quota.burst, 1.0)), tokens_(burst_), last_(now) {}

std::optional<TokenBucket::Clock::duration> TokenBucket::take(double records, Clock::time_point now) {
  const std::lock_guard lock(mutex_);
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = now;
  }
  const double needed = std::min(records, burst_);
  if (tokens_ >= needed) {
    tokens_ -= records;
    return std::nullopt;
  }
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>((needed - tokens_) / rate_));
}

void TokenBucket::give_back(double records) {
  const std::lock_guard lock(mutex_);
  tokens_ = std::min(burst_, tokens_ + records);
}

bool TokenBucket::full(Clock::time_point now) {
  const std::lock_guard lock(mutex_);
  const double refilled = now > last_ ? std::chrono::duration<double>(now - last_).count() * rate_ : 0.0;
  return tokens_ + refilled >= burst_;
}

Quotas::Quotas(const QuotaConfig& config, InflightBudget& budget) : config_(config), budget_(budget) {}

Quotas::Layer Quotas::layer(std::string_view tenant, std::string_view device_type, const LayerQuota& quota) {
  Layer layer{&budget_.account(tenant, device_type, quota.weight), nullptr};
  if (!quota.rate.limited()) return layer;
  std::string key(tenant);
  if (!device_type.empty()) (key += '\x1f') += device_type;
  const std::lock_guard lock(layers_mutex_);
  auto& rate = layer_rates_[key];
  if (!rate) rate = std::make_unique<TokenBucket>(quota.rate, Clock::now());
  layer.rate = rate.get();
  return layer;
}

Quotas::Layer Quotas::tenant(std::string_view tenant) { return layer(tenant, {}, config_.tenant(tenant)); }

Quotas::Layer Quotas::device_type(std::string_view tenant, std::string_view device_type) {
  return layer(tenant, device_type, config_.device_type(device_type));
}

Quotas::Device& Quotas::device(std::string_view tenant, std::string_view device_id, std::string& key,
                               Clock::time_point now) {
  key.assign(tenant);
  key += '\x1f';
  key += device_id;
  Shard& shard = shards_[std::hash<std::string>{}(key) % shards_.size()];
  const std::lock_guard lock(shard.mutex);
  if (now >= shard.next_sweep) sweep_locked(shard, now);
  auto& device = shard.devices[key];  // allocates only the first time a device is seen (or after eviction)
  if (!device) {
    device = std::make_unique<Device>();
    if (config_.device.limited()) device->rate = std::make_unique<TokenBucket>(config_.device, now);
  }
  device->last_seen = now;  // an entry just handed out is never idle: no sweep can take it from the caller
  return *device;
}

std::size_t Quotas::devices() const {
  std::size_t total = 0;
  for (const Shard& shard : shards_) {
    const std::lock_guard lock(shard.mutex);
    total += shard.devices.size();
  }
  return total;
}

void Quotas::sweep_locked(Shard& shard, Clock::time_point now) {
  shard.next_sweep = now + kDeviceSweep;
  std::erase_if(shard.devices, [now](const auto& item) {
    const Device& device = *item.second;
    return now - device.last_seen >= kDeviceIdle && device.inflight.load(std::memory_order_acquire) == 0 &&
           (!device.rate || device.rate->full(now));
  });
}

std::optional<Quotas::Clock::duration> Quotas::take(const std::array<TokenBucket*, 3>& buckets, double records,
                                                    Clock::time_point now) {
  std::optional<Clock::duration> wait;
  std::size_t taken = 0;
  for (; taken < buckets.size(); ++taken) {
    if (buckets[taken] == nullptr) continue;
    if ((wait = buckets[taken]->take(records, now))) break;
  }
  if (!wait) return std::nullopt;
  for (std::size_t i = 0; i < taken; ++i) {
    if (buckets[i]) buckets[i]->give_back(records);
  }
  return wait;
}

void Quotas::give_back(const std::array<TokenBucket*, 3>& buckets, double records) {
  for (TokenBucket* bucket : buckets) {
    if (bucket) bucket->give_back(records);
  }
}

}  // namespace telegate::gateway
