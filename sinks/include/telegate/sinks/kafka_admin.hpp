// Small Kafka control-plane helpers shared by the gateway's own topics (the catalog, the
// de-duplication journal): create a topic if missing, and read one key's records back.
//
// Start-up and admin paths only: they block (bounded by their timeouts) and throw
// std::runtime_error with the topic and the broker's words.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "telegate/sinks/kafka_sink.hpp"

namespace telegate::sinks {

// Settings of a client that reaches the same cluster as the sink: bootstrap servers and the
// security settings (security.protocol, ssl.*, sasl.*) of `sink`'s librdkafka pass-through.
std::map<std::string, std::string> cluster_settings(const KafkaSinkConfig& sink);

// The partition of a `partitions`-partition control topic (de-duplication journal, spool
// positions) that instance `instance_id` writes to. FNV-1a, not std::hash: the partition must
// not move when the standard library changes.
std::int32_t instance_partition(std::string_view instance_id, int partitions) noexcept;

// Creates `topic` unless it exists (an existing topic is left as it is).
void ensure_topic(const KafkaSinkConfig& sink, const std::string& topic, int partitions, int replication_factor,
                  const std::map<std::string, std::string>& topic_configs);

// Low and high watermarks of `topic`/`partition`. A topic created a moment ago has no leader
// yet ("Unknown partition", "Leader not available"), so errors are retried until `patience`
// runs out; then it throws with the last one.
std::pair<std::int64_t, std::int64_t> wait_for_watermarks(rd_kafka_t* client, const std::string& topic,
                                                          std::int32_t partition,
                                                          std::chrono::seconds patience = std::chrono::seconds(30));

// Values of the committed records of `topic`/`partition` whose key is `key`, from the first
// record at or after `since` to the partition's end at the time of the call.
std::vector<std::string> read_key_since(const KafkaSinkConfig& sink, const std::string& topic, std::int32_t partition,
                                        const std::string& key, std::chrono::system_clock::time_point since);

}  // namespace telegate::sinks
