// Ack latencies in fixed memory: a log-linear (HDR-style) histogram from 1 µs to 1 h.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace telegate::sim {

// Values below 128 µs have a bucket each; above, every power of two is split into 64 equal
// buckets, so a bucket is at most 1/64 of its values wide and a percentile, reported as its
// bucket's midpoint, is within 0.8 % of the true value. 1,728 buckets (14 KB) whatever the
// count, where a vector of every latency grew by 8 bytes per request. Values above an hour
// count as an hour. Owned by one thread; merge() combines per-thread histograms.
class LatencyHistogram {
 public:
  static constexpr std::uint64_t kMaxMicros = 3'600'000'000;  // 1 h

  void record(std::chrono::nanoseconds latency) noexcept;
  void record_micros(std::uint64_t micros) noexcept;
  void merge(const LatencyHistogram& other) noexcept;

  std::uint64_t count() const noexcept { return count_; }
  // The value at percentile p (0 < p ≤ 100), in µs: the p-th percentile's bucket midpoint,
  // clamped to the exact smallest and largest value seen. 0 when empty.
  double percentile_micros(double p) const noexcept;
  double max_micros() const noexcept { return static_cast<double>(max_); }

  static std::size_t bucket_of(std::uint64_t micros) noexcept;

 private:
  static constexpr int kSubBucketBits = 6;                       // 64 buckets per octave
  static constexpr std::size_t kLinear = 2u << kSubBucketBits;   // 0…127 µs, exact
  static constexpr std::size_t kOctaves = 32 - (kSubBucketBits + 1);  // 2^7 … 2^32 µs
  static constexpr std::size_t kBuckets = kLinear + kOctaves * (1u << kSubBucketBits);

  static std::uint64_t bucket_low(std::size_t bucket) noexcept;
  static std::uint64_t bucket_width(std::size_t bucket) noexcept;

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace telegate::sim
