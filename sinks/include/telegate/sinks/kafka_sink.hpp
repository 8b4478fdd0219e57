// Kafka sink: exactly-once production with librdkafka's idempotent, transactional producer.
//
// Records are produced inside transactions that are handed to a committer as soon as
// `transaction_min_interval` has passed since the previous hand-over and the next producer is
// free (group commit: the previous commit has finished), and at the latest at
// `transaction_max_records` records or `transaction_max_interval`; a batch completes only when
// the transaction holding it has committed. commit_transaction() blocks and flushes, so
// `producers` (default 2) transactional producers alternate: while one commits, the next one
// takes records. To keep per-device (per-partition) order across that hand-over, the active
// producer is flushed (every record acknowledged by the broker) before the next one starts
// producing; only the EndTxn round trip overlaps with new traffic. Design: docs/kafka-sink.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "telegate/sinks/sink.hpp"

namespace telegate::sinks {

struct KafkaSinkConfig {
  std::string bootstrap_servers;
  // Producer i uses "<transactional_id_prefix>-<i>"; stable per gateway instance, so a restart
  // fences the previous incarnation and aborts its open transactions.
  std::string transactional_id_prefix = "telegate";
  std::size_t producers = 2;
  std::size_t transaction_max_records = 50'000;
  // Group commit: the least time between two hand-overs (from the end of the previous one), used
  // when the next producer is free; bounds the commit rate. At or above transaction_max_interval
  // the maximum alone decides: every transaction stays open that long from its first record.
  std::chrono::milliseconds transaction_min_interval{10};
  std::chrono::milliseconds transaction_max_interval{100};
  std::chrono::milliseconds delivery_timeout{30'000};
  // Passed to librdkafka as-is after telegate's defaults (lz4, linger.ms=100, …); exactly-once
  // settings (enable.idempotence, acks, transactional.id) cannot be overridden.
  std::map<std::string, std::string> librdkafka;
};

// telegate's librdkafka settings for `config`, before config.librdkafka and the exactly-once
// settings: what every producer of the sink starts from (docs/kafka-sink.md, "Settings"), and
// what the plain-producer benchmarks use so that their baseline has the same settings.
std::vector<std::pair<std::string, std::string>> default_producer_settings(const KafkaSinkConfig& config);

std::unique_ptr<Sink> make_kafka_sink(KafkaSinkConfig config, prometheus::Registry& metrics);

}  // namespace telegate::sinks
