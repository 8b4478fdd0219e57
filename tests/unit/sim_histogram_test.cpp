// telegate-sim's latency histogram: percentiles of known distributions within its precision
// bound, merge, and the range ends.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "latency_histogram.hpp"

using telegate::sim::LatencyHistogram;

namespace {

// Nearest-rank percentile of sorted values, what the histogram approximates.
double exact(const std::vector<std::uint64_t>& sorted, double p) {
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[std::max<std::size_t>(rank, 1) - 1]);
}

void check_within_bound(std::vector<std::uint64_t> values) {
  LatencyHistogram histogram;
  for (const auto v : values) histogram.record_micros(v);
  std::sort(values.begin(), values.end());
  for (const double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
    const double truth = exact(values, p);
    const double estimate = histogram.percentile_micros(p);
    // A bucket is at most 1/64 of its values wide and reports its midpoint: ≤ 0.8 %, or 0.5 µs
    // in the exact range below 128 µs.
    CHECK_MESSAGE(std::abs(estimate - truth) <= std::max(truth * 0.008, 0.5), "p", p, " truth ", truth, " got ", estimate);
  }
  CHECK(histogram.max_micros() == static_cast<double>(values.back()));
}

}  // namespace

TEST_CASE("histogram percentiles of uniform, exponential and log-normal latencies are within 0.8 %") {
  std::mt19937_64 random(7);
  std::vector<std::uint64_t> uniform, exponential, lognormal;
  std::uniform_int_distribution<std::uint64_t> u(1, 2'000'000);
  std::exponential_distribution<double> e(1.0 / 5000.0);
  std::lognormal_distribution<double> l(9.0, 1.5);
  for (int i = 0; i < 200'000; ++i) {
    uniform.push_back(u(random));
    exponential.push_back(static_cast<std::uint64_t>(e(random)));
    lognormal.push_back(static_cast<std::uint64_t>(l(random)));
  }
  check_within_bound(uniform);
  check_within_bound(exponential);
  check_within_bound(lognormal);
}

TEST_CASE("every value from 1 µs to an hour lands in a bucket no wider than 1/64 of it") {
  for (std::uint64_t v = 1; v < LatencyHistogram::kMaxMicros; v = v * 3 / 2 + 1) {
    // The median of three is v itself; the extremes keep the min/max clamp out of the way.
    LatencyHistogram spread;
    spread.record_micros(1);
    spread.record_micros(v);
    spread.record_micros(LatencyHistogram::kMaxMicros);
    CHECK(std::abs(spread.percentile_micros(50) - static_cast<double>(v)) <= std::max(static_cast<double>(v) / 128.0, 0.5));
  }
  CHECK(LatencyHistogram::bucket_of(127) + 1 == LatencyHistogram::bucket_of(128));
  CHECK(LatencyHistogram::bucket_of(LatencyHistogram::kMaxMicros) == LatencyHistogram::bucket_of(LatencyHistogram::kMaxMicros * 10));
}

TEST_CASE("merging histograms equals recording everything in one") {
  LatencyHistogram a, b, all;
  for (std::uint64_t v = 1; v < 100'000; v += 7) {
    (v % 3 ? a : b).record_micros(v);
    all.record_micros(v);
  }
  a.merge(b);
  CHECK(a.count() == all.count());
  for (const double p : {50.0, 90.0, 99.0, 99.9}) CHECK(a.percentile_micros(p) == all.percentile_micros(p));
  CHECK(a.max_micros() == all.max_micros());
}

TEST_CASE("an empty histogram reports zeros; values past an hour count as an hour") {
  LatencyHistogram histogram;
  CHECK(histogram.percentile_micros(99) == 0);
  histogram.record(std::chrono::hours(5));
  CHECK(histogram.max_micros() == static_cast<double>(LatencyHistogram::kMaxMicros));
  CHECK(histogram.percentile_micros(50) == static_cast<double>(LatencyHistogram::kMaxMicros));
}
