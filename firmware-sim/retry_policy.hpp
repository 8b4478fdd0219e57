// When a batch is resent and how long the device waits first; shared by every transport.
#pragma once

#include <cstddef>
#include <random>

#include "transport.hpp"

namespace telegate::sim {

enum class Verdict {
  delivered,  // answered for good (2xx, or a 422 whose records are all invalid)
  retry,      // resend the same batch after backoff()
  give_up,    // its records count as refused
};

// Retries 408, 429 and 503 answers and every lost, refused or timed-out connection, up to
// `max_retries` times per batch, with the same msg_ids. Stateless; any thread.
class RetryPolicy {
 public:
  explicit RetryPolicy(std::size_t max_retries) : max_retries_(max_retries) {}

  // `retries`: how often this batch was already resent.
  Verdict decide(const Outcome& outcome, std::size_t retries) const;

  // Exponential: 100 ms doubling to 3.2 s for the 1st…6th retry and after, plus up to 50 ms
  // of jitter so that devices refused together do not come back together.
  template <typename Random>
  Clock::duration backoff(std::size_t retry, Random& random) const {
    std::uniform_int_distribution<int> jitter(0, 50);
    return std::chrono::milliseconds((50 << std::min<std::size_t>(retry, 6)) + jitter(random));
  }

 private:
  std::size_t max_retries_;
};

}  // namespace telegate::sim
