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
