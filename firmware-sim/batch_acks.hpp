// For transports whose positive answer names no msg_ids (an MQTT PUBACK, a CoAP 2.04): the
// gateway acknowledged the batch as a whole, so its acknowledged msg_ids are the batch's own.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "transport.hpp"

namespace telegate::sim {

// One per channel, used on its thread; the text buffer is reused from batch to batch.
class BatchAcks {
 public:
  // Sets outcome.acknowledged to the batch's msg_ids but those at the `rejected` record indexes
  // (sorted); none when the profile sends no msg_ids. The views stay valid until the next call.
  void acknowledge(const Batch& batch, Outcome& outcome, std::span<const std::size_t> rejected = {});

 private:
  std::string text_;
};

}  // namespace telegate::sim
