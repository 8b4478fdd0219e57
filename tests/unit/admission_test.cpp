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
