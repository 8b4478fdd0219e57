#include "batch_acks.hpp"

#include <fmt/format.h>

#include <iterator>

namespace telegate::sim {

void BatchAcks::acknowledge(const Batch& batch, Outcome& outcome, std::span<const std::size_t> rejected) {
  outcome.acknowledged.clear();
  if (batch.msg_id_prefix.empty()) return;
  text_.clear();
  std::size_t skip = 0;
  for (std::size_t i = 0; i < batch.records; ++i) {
    if (skip < rejected.size() && rejected[skip] == i) {
      ++skip;
      continue;
    }
    fmt::format_to(std::back_inserter(text_), "{}-{}\n", batch.msg_id_prefix, batch.first_sequence + i);
  }
  // Views only once the text is complete: appending may have moved it.
  for (std::size_t at = 0; at < text_.size();) {
    const std::size_t end = text_.find('\n', at);
    outcome.acknowledged.emplace_back(text_.data() + at, end - at);
    at = end + 1;
  }
}

}  // namespace telegate::sim
