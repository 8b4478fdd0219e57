// The Kafka spool: rides out a Kafka outage by accepting batches into a local durable log and
// replaying them into Kafka, exactly once and in order, when it is back. Design and guarantees:
// docs/reliability.md ("Spool"), sinks/README.md.
//
// Modes (telegate_spool_mode): direct (0) — batches go to the Kafka sink; spooling (1) — Kafka
// is not ready or failed a batch retryably, so batches are appended to the spool and completed
// once written (and synced per the fsync policy); replaying (2) — Kafka is back and the
// replayer re-submits the spool, oldest first, one transaction at a time, each carrying the
// spool position after it as a control record in the same transaction. New batches keep going
// to the spool until the replay has caught up, so a device's later records never overtake its
// spooled ones; then, under the spool's lock, the sink hands over to direct mode.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "telegate/sinks/kafka_sink.hpp"
#include "telegate/sinks/local_log.hpp"
#include "telegate/sinks/sink.hpp"

namespace telegate::sinks {

struct SpoolConfig {
  std::filesystem::path directory = "data/spool";
  FsyncPolicy fsync = FsyncPolicy::always;
  std::chrono::milliseconds fsync_interval{100};
  std::uint64_t max_bytes = 1ull << 30;  // full: batches fail as unavailable (push-back)
  std::uint64_t segment_bytes = 64ull << 20;
  // Spool bytes per replay transaction (at least one spooled batch each).
  std::uint64_t replay_batch_bytes = 4ull << 20;
  std::string position_topic = "_telegate_spool";
  int position_partitions = 12;
  int position_replication_factor = 1;
};

// Lifecycle: as every Sink (start() on the main thread may throw naming the config key; it
// starts the wrapped Kafka sink first). The spool's writer thread and its replayer thread are
// owned by it; stop() stops the replayer, drains the Kafka sink (a batch failing then is still
// spooled), then drains the spool.
class SpoolingSink : public Sink {
 public:
  // After start(): the control records of every spooled batch not yet replayed (the gateway
  // restores its de-duplication window from their journals).
  virtual void visit_unreplayed_control(const std::function<void(const ControlRecord&)>& visit) const = 0;
};

// `position` places the replay position record (topic, partition, key = instance id; value
// ignored). `read_position` returns the last committed replay position (none: nothing was ever
// replayed); start() calls it after starting `kafka`, whose init_transactions has aborted
// whatever a killed predecessor left open.
std::unique_ptr<SpoolingSink> make_spooling_sink(SpoolConfig config, std::unique_ptr<Sink> kafka,
                                                 ControlRecord position,
                                                 std::function<std::optional<std::uint64_t>()> read_position,
                                                 prometheus::Registry& metrics);

// The last replay position committed to `position.topic` for `position.key` (read_committed).
std::optional<std::uint64_t> read_spool_position(const KafkaSinkConfig& kafka, const ControlRecord& position);

}  // namespace telegate::sinks
