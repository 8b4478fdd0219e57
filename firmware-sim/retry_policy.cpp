#include "retry_policy.hpp"

namespace telegate::sim {

Verdict RetryPolicy::decide(const Outcome& outcome, std::size_t retries) const {
  if (outcome.kind == OutcomeKind::answered) {
    // 422: nothing was valid, so resending cannot help; the answer still counts its records.
    if (outcome.status == 200 || outcome.status == 207 || outcome.status == 422) return Verdict::delivered;
    // 408: HTTP's Request Timeout, or CoAP's 4.08 Request Entity Incomplete, a Block1 transfer
    // the gateway lost (restarted mid-transfer): the whole body is sent again.
    if (outcome.status != 408 && outcome.status != 429 && outcome.status != 503) return Verdict::give_up;
  }
  // A lost connection may have committed the batch: resent as it was, the gateway
  // acknowledges a committed one again without writing it twice.
  return retries < max_retries_ ? Verdict::retry : Verdict::give_up;
}
}  // namespace telegate::sim
