#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "telegate/gateway/admission.hpp"

using telegate::gateway::InflightBudget;

TEST_CASE("the budget grants up to its limits and gets everything back") {
  InflightBudget budget(100, 10'000);
  auto a = budget.try_acquire(60, 1000);
  REQUIRE(a.has_value());
  CHECK(budget.records() == 60);
  CHECK_FALSE(budget.try_acquire(41, 10).has_value());  // records limit
  auto b = budget.try_acquire(40, 1000);
  REQUIRE(b.has_value());
  CHECK(budget.records() == 100);
  a.reset();
  CHECK(budget.records() == 40);
  CHECK(budget.bytes() == 1000);
  CHECK_FALSE(budget.try_acquire(1, 9'500).has_value());  // bytes limit
  b.reset();
  CHECK(budget.records() == 0);
  CHECK(budget.bytes() == 0);
}

TEST_CASE("a request larger than the whole budget passes when nothing else is in flight") {
  InflightBudget budget(10, 100);
  auto big = budget.try_acquire(50, 5000);
  REQUIRE(big.has_value());
  CHECK_FALSE(budget.try_acquire(1, 1).has_value());
}

TEST_CASE("watermarks: pause when refused, resume below the low watermark") {
  InflightBudget budget(100, 1'000'000, 0.5);
  std::vector<bool> events;
  budget.on_watermark([&](bool pause) { events.push_back(pause); });
  auto held = budget.try_acquire(90, 10);
  CHECK_FALSE(budget.try_acquire(20, 10).has_value());
  CHECK(budget.above_high_watermark());
  CHECK_FALSE(budget.try_acquire(20, 10).has_value());  // one pause event, not one per refusal
  auto small = budget.try_acquire(5, 1);
  held.reset();  // 5 left: below 50
  CHECK_FALSE(budget.above_high_watermark());
  CHECK(events == std::vector<bool>{true, false});
}

TEST_CASE("a refusal does not pause when too little is in flight to resume later") {
  InflightBudget budget(10, 1000, 0.5);
  std::vector<bool> events;
  budget.on_watermark([&](bool pause) { events.push_back(pause); });
  auto held = budget.try_acquire(2, 10);
  CHECK_FALSE(budget.try_acquire(9, 10).has_value());  // refused, yet 2 <= the low watermark of 5
  CHECK_FALSE(budget.above_high_watermark());
  CHECK(events.empty());
}

// Pause and resume race between threads that refuse and threads that release. Listeners must
// hear strictly alternating events, and once everything is released they must have been told
// to resume: a listener left paused with nothing in flight would never read again.
TEST_CASE("concurrent refusals and releases: ordered watermark events, never stuck paused") {
  for (unsigned round = 0; round < 50; ++round) {
    InflightBudget budget(64, 1'000'000, 0.5);
    std::mutex events_mutex;
    std::vector<bool> events;
    budget.on_watermark([&](bool pause) {
      const std::lock_guard lock(events_mutex);
      events.push_back(pause);
    });
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; ++t) {
      threads.emplace_back([&budget, seed = round * 8 + t] {
        std::mt19937 random(seed);
        for (int i = 0; i < 2000; ++i) auto permit = budget.try_acquire(1 + random() % 40, 10);
      });
    }
    for (auto& thread : threads) thread.join();
    REQUIRE(budget.records() == 0);
    CHECK_FALSE(budget.above_high_watermark());
    for (std::size_t i = 0; i < events.size(); ++i) REQUIRE(events[i] == (i % 2 == 0));
    CHECK(events.size() % 2 == 0);  // the last word was "resume"
  }
}

TEST_CASE("concurrent acquire and release never exceed the limit and balance to zero") {
  InflightBudget budget(1000, 1'000'000'000);
  std::atomic<std::size_t> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20'000; ++i) {
        if (auto permit = budget.try_acquire(7, 100)) {
          std::size_t seen = budget.records();
          std::size_t previous = peak.load();
          while (seen > previous && !peak.compare_exchange_weak(previous, seen)) {
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(peak.load() <= 1000);
  CHECK(budget.records() == 0);
  CHECK(budget.bytes() == 0);
}

TEST_CASE("moving a permit moves the obligation to release") {
  InflightBudget budget(10, 100);
  auto first = budget.try_acquire(4, 4);
  REQUIRE(first.has_value());
  InflightBudget::Permit moved = std::move(*first);
  first.reset();
  CHECK(budget.records() == 4);
  { InflightBudget::Permit sink = std::move(moved); }
  CHECK(budget.records() == 0);
}

// ---- layered fair shares. Above the low watermark a tenant holds at most
//   budget × weight / (Σ weights of tenants holding records, the asker's included, + 1)

namespace {
using Refusal = InflightBudget::Refusal;
constexpr std::size_t kBytes = 1'000'000;
}  // namespace

TEST_CASE("a lone tenant borrows up to the low watermark; the headroom stays open to a newcomer") {
  InflightBudget budget(100, kBytes, 0.8);
  auto& acme = budget.account("acme", {}, 1);
  auto& late = budget.account("late", {}, 1);
  auto a = budget.try_acquire(60, 10, {&acme, nullptr, nullptr});
  auto b = budget.try_acquire(20, 10, {&acme, nullptr, nullptr});
  CHECK(a.has_value());
  CHECK(b.has_value());
  CHECK(acme.records() == 80);
  CHECK(budget.try_acquire(1, 1, {&acme, nullptr, nullptr}).error() == Refusal::fair_share);  // share: 50
  auto newcomer = budget.try_acquire(15, 1, {&late, nullptr, nullptr});
  CHECK(newcomer.has_value());
  CHECK(budget.try_acquire(10, 1, {&late, nullptr, nullptr}).error() == Refusal::budget);  // 105: the hard limit
}

TEST_CASE("a noisy tenant is held to its share while another tenant holds records") {
  InflightBudget budget(100, kBytes, 0.5);
  auto& noisy = budget.account("noisy", {}, 1);
  auto& quiet = budget.account("quiet", {}, 1);
  auto borrowed = budget.try_acquire(45, 10, {&noisy, nullptr, nullptr});  // below the low watermark: no share
  REQUIRE(borrowed.has_value());
  auto first = budget.try_acquire(2, 10, {&quiet, nullptr, nullptr});
  REQUIRE(first.has_value());
  // 47 in flight; 10 more passes the low watermark: contended, shares of 100 / 3
  auto over = budget.try_acquire(10, 10, {&noisy, nullptr, nullptr});
  REQUIRE_FALSE(over.has_value());
  CHECK(over.error() == Refusal::fair_share);
  auto quiet_more = budget.try_acquire(31, 10, {&quiet, nullptr, nullptr});  // 33: exactly its share
  CHECK(quiet_more.has_value());
  CHECK(budget.try_acquire(1, 1, {&quiet, nullptr, nullptr}).error() == Refusal::fair_share);
  CHECK(noisy.records() == 45);  // the refused requests left nothing behind
  CHECK(quiet.records() == 33);
  CHECK(budget.records() == 78);
}

TEST_CASE("once the other tenant stops holding records, the share grows again") {
  InflightBudget budget(100, kBytes, 0.0);  // contended from the first record
  auto& noisy = budget.account("noisy", {}, 1);
  auto& quiet = budget.account("quiet", {}, 1);
  auto held = budget.try_acquire(30, 10, {&noisy, nullptr, nullptr});
  {
    auto other = budget.try_acquire(1, 10, {&quiet, nullptr, nullptr});
    CHECK(budget.try_acquire(10, 10, {&noisy, nullptr, nullptr}).error() == Refusal::fair_share);  // 40 > 33
  }
  CHECK(budget.try_acquire(10, 10, {&noisy, nullptr, nullptr}).has_value());  // 40 <= 50
}

TEST_CASE("weights: a tenant of weight 3 gets three times the share of one of weight 1") {
  InflightBudget budget(100, kBytes, 0.0);
  auto& big = budget.account("big", {}, 3);
  auto& small = budget.account("small", {}, 1);
  auto s = budget.try_acquire(1, 1, {&small, nullptr, nullptr});
  auto b = budget.try_acquire(60, 1, {&big, nullptr, nullptr});  // 100 × 3 / 5
  REQUIRE(b.has_value());
  CHECK(budget.try_acquire(1, 1, {&big, nullptr, nullptr}).error() == Refusal::fair_share);
  auto s2 = budget.try_acquire(19, 1, {&small, nullptr, nullptr});  // 100 × 1 / 5
  CHECK(s2.has_value());
  CHECK(budget.try_acquire(1, 1, {&small, nullptr, nullptr}).error() == Refusal::fair_share);
}

TEST_CASE("inside a tenant, device types split the tenant's share") {
  InflightBudget budget(100, kBytes, 0.0);
  auto& acme = budget.account("acme", {}, 1);
  auto& other = budget.account("other", {}, 1);
  auto& trackers = budget.account("acme", "tracker", 1);
  auto& meters = budget.account("acme", "meter", 1);
  CHECK(&budget.account("acme", {}, 7) == &acme);  // one account per tenant; the first weight counts
  auto o = budget.try_acquire(1, 1, {&other, nullptr, nullptr});
  auto m = budget.try_acquire(1, 1, {&acme, &meters, nullptr});
  // acme's share is 33, split between its two active types: 16 each
  auto t = budget.try_acquire(16, 1, {&acme, &trackers, nullptr});
  REQUIRE(t.has_value());
  CHECK(budget.try_acquire(1, 1, {&acme, &trackers, nullptr}).error() == Refusal::fair_share);
  auto m2 = budget.try_acquire(15, 1, {&acme, &meters, nullptr});
  CHECK(m2.has_value());
  CHECK(budget.try_acquire(1, 1, {&acme, &meters, nullptr}).error() == Refusal::fair_share);
  CHECK(acme.records() == 32);
}

TEST_CASE("a device is capped whether or not the budget is contended") {
  InflightBudget budget(1000, kBytes, 0.8, 10);
  std::atomic<std::size_t> device{0};
  auto a = budget.try_acquire(8, 1, {nullptr, nullptr, &device});
  REQUIRE(a.has_value());
  CHECK(budget.try_acquire(3, 1, {nullptr, nullptr, &device}).error() == Refusal::device_cap);
  CHECK(device.load() == 8);
  auto b = budget.try_acquire(2, 1, {nullptr, nullptr, &device});
  CHECK(b.has_value());
  a = InflightBudget::Permit();  // released
  CHECK(device.load() == 2);
  std::atomic<std::size_t> big_device{0};
  CHECK(budget.try_acquire(50, 1, {nullptr, nullptr, &big_device}).has_value());  // holds nothing: passes once
}

TEST_CASE("a share refusal does not pause the listeners; only the global budget does") {
  InflightBudget budget(100, kBytes, 0.0);
  std::vector<bool> events;
  budget.on_watermark([&](bool pause) { events.push_back(pause); });
  auto& noisy = budget.account("noisy", {}, 1);
  auto& quiet = budget.account("quiet", {}, 1);
  auto q = budget.try_acquire(1, 1, {&quiet, nullptr, nullptr});
  auto n = budget.try_acquire(50, 1, {&noisy, nullptr, nullptr});
  CHECK(budget.try_acquire(1, 1, {&noisy, nullptr, nullptr}).error() == Refusal::fair_share);
  CHECK(events.empty());
}

TEST_CASE("refuses_one: the answer before decoding, reserving nothing") {
  InflightBudget budget(100, kBytes, 0.5);
  auto& noisy = budget.account("noisy", {}, 1);
  auto& quiet = budget.account("quiet", {}, 1);
  CHECK_FALSE(budget.refuses_one({&noisy, nullptr, nullptr}).has_value());
  auto n = budget.try_acquire(60, 1, {&noisy, nullptr, nullptr});
  CHECK(budget.refuses_one({&noisy, nullptr, nullptr}) == Refusal::fair_share);  // 61 > 50 (100 / 2)
  CHECK_FALSE(budget.refuses_one({&quiet, nullptr, nullptr}).has_value());
  auto q = budget.try_acquire(40, 1, {&quiet, nullptr, nullptr});
  CHECK(budget.refuses_one({&quiet, nullptr, nullptr}) == Refusal::budget);
  CHECK(budget.above_high_watermark());
  CHECK(budget.records() == 100);
}
