// Rate quotas with an injected clock, and the per-layer state the pipeline caches.
#include <doctest/doctest.h>

#include "telegate/gateway/quotas.hpp"

using namespace telegate::gateway;
using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;

TEST_CASE("a token bucket passes its burst, then refills at its rate and says how long to wait") {
  const Clock::time_point t0{};
  TokenBucket bucket(RateQuota{10, 20}, t0);
  CHECK_FALSE(bucket.take(20, t0).has_value());
  const auto wait = bucket.take(5, t0);
  REQUIRE(wait.has_value());
  CHECK(*wait == 500ms);  // 5 tokens at 10/s
  CHECK(bucket.take(5, t0 + 400ms).has_value());
  CHECK_FALSE(bucket.take(5, t0 + 500ms).has_value());
  CHECK_FALSE(bucket.take(20, t0 + 10s).has_value());  // refilled to the burst, no more
  CHECK(bucket.take(1, t0 + 10s).has_value());
}

TEST_CASE("a request larger than the burst passes on a full bucket and leaves it in debt") {
  const Clock::time_point t0{};
  TokenBucket bucket(RateQuota{10, 10}, t0);
  CHECK_FALSE(bucket.take(30, t0).has_value());
  const auto wait = bucket.take(1, t0);
  REQUIRE(wait.has_value());
  CHECK(*wait > 2090ms);  // from −20 to +1 at 10/s
  CHECK(*wait < 2110ms);
}

TEST_CASE("layers are taken all or nothing") {
  const Clock::time_point t0{};
  TokenBucket device(RateQuota{100, 100}, t0);
  TokenBucket tenant(RateQuota{1, 5}, t0);
  CHECK_FALSE(Quotas::take({&device, nullptr, &tenant}, 5, t0).has_value());
  const auto wait = Quotas::take({&device, nullptr, &tenant}, 5, t0);
  REQUIRE(wait.has_value());
  CHECK(*wait == 5s);
  // The device bucket got its tokens back: 95 remain, so 95 pass it alone.
  CHECK_FALSE(device.take(95, t0).has_value());
}

TEST_CASE("quotas hand out one account, bucket and device state per name") {
  QuotaConfig config;
  config.tenants["acme"] = LayerQuota{2, RateQuota{50, 50}};
  config.device = RateQuota{5, 5};
  InflightBudget budget(100, 1'000'000);
  Quotas quotas(config, budget);
  std::string scratch;
  const Quotas::Layer acme = quotas.tenant("acme");
  CHECK(acme.rate != nullptr);
  CHECK(quotas.tenant("acme").rate == acme.rate);
  CHECK(quotas.tenant("acme").share == acme.share);
  CHECK(quotas.tenant("other").rate == nullptr);  // no rate quota configured
  CHECK(quotas.device_type("acme", "tracker").share != acme.share);
  Quotas::Device& truck = quotas.device("acme", "truck-1", scratch);
  CHECK(&quotas.device("acme", "truck-1", scratch) == &truck);
  CHECK(&quotas.device("other", "truck-1", scratch) != &truck);
  CHECK(truck.rate != nullptr);
}

TEST_CASE("device state is bounded: idle devices are evicted, busy or indebted ones are kept") {
  QuotaConfig config;
  config.device = RateQuota{1, 100};  // 1 record/s, burst 100
  InflightBudget budget(1'000, 1'000'000);
  Quotas quotas(config, budget);
  std::string scratch;
  const Clock::time_point t0{};

  // A stream of distinct devices (churn: devices replaced over months) does not accumulate.
  for (int i = 0; i < 1000; ++i) (void)quotas.device("acme", "old-" + std::to_string(i), scratch, t0);
  CHECK(quotas.devices() == 1000);

  // Kept past the idle time: one with records in flight, one whose bucket is still in debt.
  Quotas::Device& busy = quotas.device("acme", "busy", scratch, t0);
  busy.inflight = 3;
  Quotas::Device& indebted = quotas.device("acme", "indebted", scratch, t0);
  CHECK_FALSE(indebted.rate->take(1000, t0).has_value());  // −900: 1000 s to refill at 1/s
  // Seen again shortly before the sweep: not idle.
  (void)quotas.device("acme", "recent", scratch, t0 + Quotas::kDeviceIdle);

  // Every shard is swept by its next request after kDeviceIdle: touch each shard with new devices.
  const Clock::time_point later = t0 + Quotas::kDeviceIdle + Quotas::kDeviceSweep;
  for (int i = 0; i < 2000; ++i) (void)quotas.device("acme", "new-" + std::to_string(i), scratch, later);
  CHECK(quotas.devices() == 2000 + 3);  // the old 1000 are gone; busy, indebted and recent remain
  // The kept entries are the same objects: their state (in flight, tokens) was not reset.
  CHECK(&quotas.device("acme", "busy", scratch, later) == &busy);
  CHECK(&quotas.device("acme", "indebted", scratch, later) == &indebted);
  CHECK(indebted.rate->take(1, later).has_value());

  // Once the flight ends and the bucket refills, they go too (a new entry starts full anyway).
  busy.inflight = 0;
  const Clock::time_point much_later = t0 + std::chrono::hours(1);
  for (int i = 0; i < 2000; ++i) (void)quotas.device("acme", "newer-" + std::to_string(i), scratch, much_later);
  CHECK(quotas.devices() == 2000);
}
