// Sinks: where sealed records go, and the only place that decides when they are durable.
//
// Contract (docs/component-spec.md, "Sinks"):
//  - submit() never blocks and never throws; the gateway's admission budget bounds how much
//    is in flight, so a sink's own queue is bounded by construction;
//  - a batch's completion runs exactly once, on a sink thread, and reports success only after
//    every record of the batch is durable (Kafka: its transaction committed; local log: written
//    and synced per the fsync policy). Listeners ack devices from that completion and nowhere else;
//  - on failure the completion carries a SinkError and none of the batch's records becomes
//    visible to read_committed consumers;
//  - stop() drains: every batch accepted before stop() completes (committed or failed).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "telegate/envelope/envelope.hpp"

namespace prometheus {
class Counter;
class Registry;
}

namespace telegate::sinks {

// Error codes of the sinks component.
enum class SinkErrc : std::uint8_t {
  unavailable = 1,  // the destination cannot take records now (broker down, disk full)
  timed_out,        // not committed within the delivery timeout
  rejected,         // the destination refused the records (unknown topic, …)
  too_large,        // a record is larger than the destination takes: no retry can help it
  fenced,           // another producer took over our transactional id
  io_error,
  stopping,         // submitted after stop() began
  in_doubt,         // a commit timed out and the sink stopped before learning its outcome: may be
                    // durable, so not to be written elsewhere (spooled)
};
std::string_view to_string(SinkErrc code) noexcept;

struct SinkError {
  SinkErrc code;
  std::string message;
};

// Where a batch became durable: in the sink's own destination (a committed Kafka transaction,
// the local log), or in the Kafka sink's local spool, to be replayed into Kafka later. The
// gateway acknowledges either way; the reconciliation counters tell them apart.
enum class Durable : std::uint8_t { written, spooled };
using SinkResult = std::expected<Durable, SinkError>;
using Completion = std::function<void(SinkResult)>;

// A record of the gateway's own bookkeeping that must become durable atomically with a batch's
// records: the de-duplication journal (the batch's msg_id keys) and the spool's replay
// position. Placed explicitly (topic, partition, key) because its readers look it up by
// instance id, never by a device's key.
struct ControlRecord {
  std::string topic;
  std::int32_t partition = 0;
  std::string key;
  std::string value;
};

// Hands the record vectors of finished batches back to the worker that seals the next ones, so
// that sealing overwrites strings which already have their capacity instead of allocating four
// per record (topic, msg_id, tg-route, value: the top allocations of the HTTP → Kafka path,
// docs/benchmarks.md §11). It keeps at most `max_bytes` idle (the records and their strings'
// capacity, so a burst of large records cannot pin more); a vector given back beyond that is
// freed, so the bound limits idle memory, never throughput.
// Lifecycle: shared (shared_ptr) by the pipeline, which takes vectors on listener threads, and
// every SinkBatch holding one of its vectors, which gives it back when destroyed on whichever
// sink thread that is; thread-safe (one short lock per batch).
class RecordRecycler {
 public:
  explicit RecordRecycler(std::size_t max_bytes);
  // A vector holding some earlier batch's records (or none): overwrite them, then append.
  std::vector<envelope::SealedRecord> take();
  // `bytes`: what record_bytes() adds up to for `records` (plus the vector's own capacity), when
  // the caller has counted it; 0 has give() walk the records itself. Counting them where they
  // were just written saves the sink thread a pass over a batch it no longer has in cache.
  void give(std::vector<envelope::SealedRecord> records, std::size_t bytes = 0);
  // The heap bytes one record's strings hold, besides its slot in the vector.
  static std::size_t record_bytes(const envelope::SealedRecord& record) noexcept {
    std::size_t bytes = record.msg_id.capacity() + record.topic.capacity() + record.key.capacity() +
                        record.route_header.capacity() + record.value.capacity();
    for (const auto& header : record.headers) bytes += sizeof(header) + header.second.capacity();
    return bytes;
  }

 private:
  struct Idle {
    std::vector<envelope::SealedRecord> records;
    std::size_t bytes;
  };
  static constexpr std::size_t kMaxVectors = 1024;
  std::mutex mutex_;
  std::vector<Idle> idle_;
  std::size_t idle_bytes_ = 0;
  const std::size_t max_bytes_;
};

// Move-only: a destroyed batch gives its records to `recycler` (when set), from whichever thread
// the sink finishes with it on.
struct SinkBatch {
  SinkBatch() = default;
  SinkBatch(SinkBatch&&) noexcept = default;
  SinkBatch& operator=(SinkBatch&&) noexcept = default;
  ~SinkBatch() {
    if (recycler) recycler->give(std::move(records), recycle_bytes);
  }

  std::vector<envelope::SealedRecord> records;
  // Kafka: produced in the same transaction as the records. The spool keeps them with the
  // records and replays them together. The local log ignores them (it has no journal).
  std::vector<ControlRecord> control;
  Completion on_complete;
  std::shared_ptr<RecordRecycler> recycler;
  // For give(): the records' bytes as the recycler counts them, set by whoever filled `records`
  // last (0: not counted; the recycler walks them). Sinks only read the records.
  std::size_t recycle_bytes = 0;
};

// The metrics docs/component-spec.md requires of every sink, labelled {sink=<name>}:
// telegate_sink_records_total{result=<durable>|failed} and telegate_sink_batches_total.
struct SinkCounters {
  SinkCounters(prometheus::Registry& registry, std::string_view sink, std::string_view durable_result);
  prometheus::Counter& durable;
  prometheus::Counter& failed;
  prometheus::Counter& batches;
};

// Lifecycle: constructed and start()ed on the main thread at start-up (start() may throw with
// a message naming the config key at fault); submit() and ready() from any thread; stop()
// once, on the main thread, before destruction.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual std::string_view name() const noexcept = 0;
  virtual void start() = 0;
  virtual void submit(SinkBatch batch) = 0;
  // For /readyz: true while the sink can make records durable.
  virtual bool ready() const noexcept = 0;
  virtual void stop() = 0;
};

}  // namespace telegate::sinks
