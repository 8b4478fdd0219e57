// Waiting in tests for what another thread or process does: poll a condition until it holds or
// the patience runs out, instead of sleeping a guessed time.
#pragma once

#include <chrono>
#include <thread>

namespace telegate::testing {

// Polls `predicate` every `poll` until it holds (true) or `patience` has passed (false).
template <class Predicate>
bool eventually(Predicate&& predicate, std::chrono::milliseconds patience = std::chrono::seconds(30),
                std::chrono::milliseconds poll = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

}  // namespace telegate::testing
