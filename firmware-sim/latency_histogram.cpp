#include "latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace telegate::sim {

std::size_t LatencyHistogram::bucket_of(std::uint64_t micros) noexcept {
  micros = std::min(micros, kMaxMicros);
  if (micros < kLinear) return static_cast<std::size_t>(micros);
  const int octave = static_cast<int>(std::bit_width(micros)) - 1;  // ≥ 7
  const int shift = octave - kSubBucketBits;
  const auto sub = static_cast<std::size_t>(micros >> shift) - (std::size_t{1} << kSubBucketBits);
  return kLinear + static_cast<std::size_t>(octave - (kSubBucketBits + 1)) * (std::size_t{1} << kSubBucketBits) + sub;
}

std::uint64_t LatencyHistogram::bucket_low(std::size_t bucket) noexcept {
  if (bucket < kLinear) return bucket;
  const std::size_t octave = (bucket - kLinear) >> kSubBucketBits;
  const std::size_t sub = (bucket - kLinear) & ((std::size_t{1} << kSubBucketBits) - 1);
  return static_cast<std::uint64_t>((std::size_t{1} << kSubBucketBits) + sub) << (octave + 1);
}

std::uint64_t LatencyHistogram::bucket_width(std::size_t bucket) noexcept {
  return bucket < kLinear ? 1 : std::uint64_t{1} << (((bucket - kLinear) >> kSubBucketBits) + 1);
}

void LatencyHistogram::record(std::chrono::nanoseconds latency) noexcept {
  record_micros(static_cast<std::uint64_t>(std::max<std::int64_t>(0, latency.count() / 1000)));
}

void LatencyHistogram::record_micros(std::uint64_t micros) noexcept {
  micros = std::min(micros, kMaxMicros);
  ++counts_[bucket_of(micros)];
  ++count_;
  min_ = std::min(min_, micros);
  max_ = std::max(max_, micros);
}

void LatencyHistogram::merge(const LatencyHistogram& other) noexcept {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

double LatencyHistogram::percentile_micros(double p) const noexcept {
  if (count_ == 0) return 0;
  // The rank of the p-th percentile, as nearest-rank defines it (1-based).
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t bucket = 0; bucket < kBuckets; ++bucket) {
    seen += counts_[bucket];
    if (seen >= rank) {
      const double middle = static_cast<double>(bucket_low(bucket)) + static_cast<double>(bucket_width(bucket) - 1) / 2.0;
      return std::clamp(middle, static_cast<double>(min_), static_cast<double>(max_));
    }
  }
  return static_cast<double>(max_);
}

}  // namespace telegate::sim
