// Small Kafka control-plane helpers shared by the gateway's own topics (the catalog, the
// de-duplication journal): create a topic if missing, read one key's records back, follow a
// topic as it grows.
//
// Start-up and admin paths only: they block (bounded by their timeouts) and throw
// std::runtime_error with the topic and the broker's words.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "telegate/sinks/kafka_sink.hpp"

namespace telegate::sinks {

// An owned librdkafka client.
struct KafkaHandleDeleter {
  void operator()(rd_kafka_t* handle) const { rd_kafka_destroy(handle); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaHandleDeleter>;

// Settings of a client that reaches the same cluster as the sink: bootstrap servers and the
// security settings (security.protocol, ssl.*, sasl.*) of `sink`'s librdkafka pass-through.
std::map<std::string, std::string> cluster_settings(const KafkaSinkConfig& sink);

// The partition of a `partitions`-partition control topic (de-duplication journal, spool
// positions) that instance `instance_id` writes to. FNV-1a, not std::hash: the partition must
// not move when the standard library changes.
std::int32_t instance_partition(std::string_view instance_id, int partitions) noexcept;

// A client of that cluster with `extra` settings on top, and `on_delivery` as a producer's
// delivery-report callback when given.
using DeliveryCallback = void (*)(rd_kafka_t*, const rd_kafka_message_t*, void*);
KafkaHandle make_cluster_client(rd_kafka_type_t type, const KafkaSinkConfig& sink,
                                const std::map<std::string, std::string>& extra, DeliveryCallback on_delivery = nullptr);

// Creates `topic` unless it exists (an existing topic is left as it is).
void ensure_topic(const KafkaSinkConfig& sink, const std::string& topic, int partitions, int replication_factor,
                  const std::map<std::string, std::string>& topic_configs);

// Those of `topics` the cluster does not have (one metadata request for every topic), or why
// it could not tell.
std::expected<std::vector<std::string>, std::string> missing_topics(const KafkaSinkConfig& sink,
                                                                    const std::set<std::string>& topics);

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

// Follows partitions 0 … partitions-1 of `topic` as they grow, from the first record at or after
// `since`, handing each committed record to `on_record(key, value)`. Read errors are logged and
// retried: the broker coming and going only delays what the follower sees.
// Lifecycle: the constructor looks up the start offsets (blocking, throws like the helpers
// above) and starts its own thread, the only one that calls `on_record`; the destructor stops
// and joins it.
class TopicFollower {
 public:
  using OnRecord = std::function<void(std::string_view key, std::string_view value)>;
  TopicFollower(const KafkaSinkConfig& sink, const std::string& topic, int partitions,
                std::chrono::system_clock::time_point since, OnRecord on_record);
  ~TopicFollower();
  TopicFollower(const TopicFollower&) = delete;
  TopicFollower& operator=(const TopicFollower&) = delete;

 private:
  KafkaHandle consumer_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace telegate::sinks
