#include "telegate/sinks/sink.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

namespace telegate::sinks {

std::string_view to_string(SinkErrc code) noexcept {
  switch (code) {
    case SinkErrc::unavailable: return "unavailable";
    case SinkErrc::timed_out: return "timed_out";
    case SinkErrc::rejected: return "rejected";
    case SinkErrc::too_large: return "too_large";
    case SinkErrc::fenced: return "fenced";
    case SinkErrc::io_error: return "io_error";
    case SinkErrc::stopping: return "stopping";
    case SinkErrc::in_doubt: return "in_doubt";
  }
  return "unknown";
}

// Room for every vector up front: give() runs in SinkBatch's destructor and must not allocate.
RecordRecycler::RecordRecycler(std::size_t max_bytes) : max_bytes_(max_bytes) { idle_.reserve(kMaxVectors); }

std::vector<envelope::SealedRecord> RecordRecycler::take() {
  const std::lock_guard lock(mutex_);
  if (idle_.empty()) return {};
  Idle idle = std::move(idle_.back());
  idle_.pop_back();
  idle_bytes_ -= idle.bytes;
  return std::move(idle.records);
}

void RecordRecycler::give(std::vector<envelope::SealedRecord> records, std::size_t bytes) {
  if (records.empty()) return;
  if (bytes == 0) {
    bytes = records.capacity() * sizeof(envelope::SealedRecord);
    for (const envelope::SealedRecord& record : records) bytes += record_bytes(record);
  }
  const std::lock_guard lock(mutex_);
  // Over either bound: `records` is freed with the parameter, after the lock.
  if (idle_bytes_ + bytes > max_bytes_ || idle_.size() == kMaxVectors) return;
  idle_bytes_ += bytes;
  idle_.push_back(Idle{std::move(records), bytes});
}

namespace {

prometheus::Family<prometheus::Counter>& records_family(prometheus::Registry& registry) {
  return prometheus::BuildCounter()
      .Name("telegate_sink_records_total")
      .Help("Records handed to a sink, by outcome")
      .Register(registry);
}

}  // namespace

SinkCounters::SinkCounters(prometheus::Registry& registry, std::string_view sink, std::string_view durable_result)
    : durable(records_family(registry).Add({{"sink", std::string(sink)}, {"result", std::string(durable_result)}})),
      failed(records_family(registry).Add({{"sink", std::string(sink)}, {"result", "failed"}})),
      batches(prometheus::BuildCounter()
                  .Name("telegate_sink_batches_total")
                  .Help("Batches handed to a sink")
                  .Register(registry)
                  .Add({{"sink", std::string(sink)}})) {}

}  // namespace telegate::sinks
