#include "telegate/sinks/kafka_admin.hpp"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <stdexcept>
#include <thread>

namespace telegate::sinks {

std::map<std::string, std::string> cluster_settings(const KafkaSinkConfig& sink) {
  std::map<std::string, std::string> settings{{"bootstrap.servers", sink.bootstrap_servers}};
  for (const auto& [name, value] : sink.librdkafka) {
    if (name.starts_with("sasl.") || name.starts_with("ssl.") || name == "security.protocol") settings[name] = value;
  }
  return settings;
}

KafkaHandle make_cluster_client(rd_kafka_type_t type, const KafkaSinkConfig& sink,
                                const std::map<std::string, std::string>& extra, DeliveryCallback on_delivery) {
  char error_text[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::map<std::string, std::string> settings = cluster_settings(sink);
  for (const auto& [name, value] : extra) settings[name] = value;
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error_text, sizeof error_text) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(fmt::format("kafka client setting {}: {}", name, error_text));
    }
  }
  if (on_delivery) rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  KafkaHandle handle(rd_kafka_new(type, conf, error_text, sizeof error_text));
  if (!handle) throw std::runtime_error(fmt::format("cannot create a Kafka client: {}", error_text));
  return handle;
}

std::int32_t instance_partition(std::string_view instance_id, int partitions) noexcept {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : instance_id) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return static_cast<std::int32_t>(hash % static_cast<std::uint64_t>(partitions));
}

void ensure_topic(const KafkaSinkConfig& sink, const std::string& topic, int partitions, int replication_factor,
                  const std::map<std::string, std::string>& topic_configs) {
  const KafkaHandle client = make_cluster_client(RD_KAFKA_PRODUCER, sink, {});
  char error_text[512];
  rd_kafka_NewTopic_t* request = rd_kafka_NewTopic_new(topic.c_str(), partitions, replication_factor, error_text, sizeof error_text);
  if (!request) throw std::runtime_error(fmt::format("topic {}: {}", topic, error_text));
  for (const auto& [name, value] : topic_configs) rd_kafka_NewTopic_set_config(request, name.c_str(), value.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(client.get());
  rd_kafka_CreateTopics(client.get(), &request, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30'000);
  std::string problem;
  if (!event) {
    problem = "no answer from the broker within 30 s";
  } else if (const auto* result = rd_kafka_event_CreateTopics_result(event)) {
    std::size_t count = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
    const rd_kafka_resp_err_t error = count == 1 ? rd_kafka_topic_result_error(results[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (error && error != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) problem = rd_kafka_topic_result_error_string(results[0]);
  } else if (rd_kafka_event_error(event)) {
    problem = rd_kafka_event_error_string(event);
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(request);
  if (!problem.empty()) throw std::runtime_error(fmt::format("cannot create topic {}: {}", topic, problem));
}

std::expected<std::vector<std::string>, std::string> missing_topics(const KafkaSinkConfig& sink,
                                                                    const std::set<std::string>& topics) {
  const KafkaHandle client = make_cluster_client(RD_KAFKA_PRODUCER, sink, {});
  const rd_kafka_metadata_t* metadata = nullptr;
  // all_topics=1 lists the existing topics without asking the broker to create any.
  if (const rd_kafka_resp_err_t error = rd_kafka_metadata(client.get(), 1, nullptr, &metadata, 10'000)) {
    return std::unexpected(std::string(rd_kafka_err2str(error)));
  }
  std::set<std::string> missing = topics;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    if (metadata->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) missing.erase(metadata->topics[i].topic);
  }
  rd_kafka_metadata_destroy(metadata);
  return std::vector<std::string>(missing.begin(), missing.end());
}

std::pair<std::int64_t, std::int64_t> wait_for_watermarks(rd_kafka_t* client, const std::string& topic,
                                                          std::int32_t partition, std::chrono::seconds patience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    std::int64_t low = 0, high = 0;
    const rd_kafka_resp_err_t error =
        rd_kafka_query_watermark_offsets(client, topic.c_str(), partition, &low, &high, 10'000);
    if (!error) return {low, high};
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error(fmt::format("{}[{}]: cannot read its end: {}", topic, partition, rd_kafka_err2str(error)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

namespace {

// The first offset of each partition at or after `since`; the end for a partition with nothing
// newer, so that the follower waits there for what comes next.
rd_kafka_topic_partition_list_t* offsets_since(rd_kafka_t* consumer, const std::string& topic, int partitions,
                                               std::chrono::system_clock::time_point since) {
  const auto since_ms = std::chrono::duration_cast<std::chrono::milliseconds>(since.time_since_epoch()).count();
  rd_kafka_topic_partition_list_t* start = rd_kafka_topic_partition_list_new(partitions);
  for (int partition = 0; partition < partitions; ++partition) {
    wait_for_watermarks(consumer, topic, partition);  // a fresh topic's partitions need a leader first
    rd_kafka_topic_partition_list_add(start, topic.c_str(), partition)->offset = since_ms;
  }
  const rd_kafka_resp_err_t error = rd_kafka_offsets_for_times(consumer, start, 10'000);
  if (error) {
    rd_kafka_topic_partition_list_destroy(start);
    throw std::runtime_error(fmt::format("{}: cannot look up offsets: {}", topic, rd_kafka_err2str(error)));
  }
  for (int i = 0; i < start->cnt; ++i) {
    if (start->elems[i].offset < 0) start->elems[i].offset = RD_KAFKA_OFFSET_END;
  }
  return start;
}

}  // namespace

TopicFollower::TopicFollower(const KafkaSinkConfig& sink, const std::string& topic, int partitions,
                             std::chrono::system_clock::time_point since, OnRecord on_record)
    : consumer_(make_cluster_client(RD_KAFKA_CONSUMER, sink,
                            {{"group.id", "telegate-follower-unused"},
                             {"enable.auto.commit", "false"},
                             {"isolation.level", "read_committed"}})) {
  rd_kafka_topic_partition_list_t* start = offsets_since(consumer_.get(), topic, partitions, since);
  const rd_kafka_resp_err_t assigned = rd_kafka_assign(consumer_.get(), start);
  rd_kafka_topic_partition_list_destroy(start);
  if (assigned) throw std::runtime_error(fmt::format("{}: cannot follow it: {}", topic, rd_kafka_err2str(assigned)));
  thread_ = std::thread([this, topic, on_record = std::move(on_record)] {
    while (!stopping_.load()) {
      rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer_.get(), 200);
      if (!message) continue;
      if (!message->err) {
        on_record(std::string_view(static_cast<const char*>(message->key), message->key ? message->key_len : 0),
                  std::string_view(static_cast<const char*>(message->payload), message->payload ? message->len : 0));
      } else if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        spdlog::warn("following {}: {}", topic, rd_kafka_message_errstr(message));
      }
      rd_kafka_message_destroy(message);
    }
  });
}

TopicFollower::~TopicFollower() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  rd_kafka_consumer_close(consumer_.get());
}

std::vector<std::string> read_key_since(const KafkaSinkConfig& sink, const std::string& topic, std::int32_t partition,
                                        const std::string& key, std::chrono::system_clock::time_point since) {
  const KafkaHandle consumer = make_cluster_client(RD_KAFKA_CONSUMER, sink,
                                      {{"group.id", "telegate-read-back-unused"},
                                       {"enable.auto.commit", "false"},
                                       {"isolation.level", "read_committed"}});
  const auto since_ms = std::chrono::duration_cast<std::chrono::milliseconds>(since.time_since_epoch()).count();
  const std::int64_t high = wait_for_watermarks(consumer.get(), topic, partition).second;
  std::int64_t first = high;
  if (high > 0) {
    rd_kafka_topic_partition_list_t* start = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(start, topic.c_str(), partition)->offset = since_ms;
    const rd_kafka_resp_err_t error = rd_kafka_offsets_for_times(consumer.get(), start, 10'000);
    first = start->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(start);
    if (error) throw std::runtime_error(fmt::format("{}[{}]: cannot look up offsets: {}", topic, partition, rd_kafka_err2str(error)));
  }
  std::vector<std::string> values;
  if (first < 0 || first >= high) return values;  // nothing written since `since`

  rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(assignment, topic.c_str(), partition)->offset = first;
  rd_kafka_assign(consumer.get(), assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  // The end offset includes transaction markers and aborted records, which read_committed
  // skips: stop at the end of the partition, not at a count.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::int64_t position = first;
  while (position < high) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error(fmt::format("{}[{}]: reading back took over 60 s", topic, partition));
    }
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer.get(), 200);
    if (!message) {
      // Past the last committed record only markers may remain; the position tells.
      rd_kafka_topic_partition_list_t* at = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(at, topic.c_str(), partition);
      if (!rd_kafka_position(consumer.get(), at) && at->elems[0].offset >= 0) position = at->elems[0].offset;
      rd_kafka_topic_partition_list_destroy(at);
      continue;
    }
    if (!message->err) {
      position = message->offset + 1;
      if (message->key && std::string_view(static_cast<const char*>(message->key), message->key_len) == key) {
        values.emplace_back(static_cast<const char*>(message->payload), message->len);
      }
    } else if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      position = high;
    }
    rd_kafka_message_destroy(message);
  }
  rd_kafka_consumer_close(consumer.get());
  return values;
}

}  // namespace telegate::sinks
