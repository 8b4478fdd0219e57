// librdkafka's in-process mock cluster and the helpers the sink tests share (the Kafka sink's
// and the spool's).
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "eventually.hpp"
#include "telegate/sinks/kafka_sink.hpp"

namespace telegate::testing {

// A mock cluster lives inside a librdkafka handle; this one exists only to own it.
class MockCluster {
 public:
  MockCluster() {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", error, sizeof error);
    handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    cluster_ = rd_kafka_mock_cluster_new(handle_, 1);
    rd_kafka_mock_topic_create(cluster_, "mock.topic", 2, 1);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(handle_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  rd_kafka_mock_cluster_t* get() const { return cluster_; }

  struct Message {
    std::string key;
    std::string value;
  };
  // Everything produced to `topic`/`partition` so far (the mock writes no transaction markers,
  // so this is what a read_uncommitted consumer sees).
  std::vector<Message> read(const std::string& topic, std::int32_t partition) const {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [key, value] : {std::pair<std::string, std::string>{"bootstrap.servers", bootstrap()},
                                     {"group.id", "mock-reader"}, {"log_level", "0"},
                                     {"enable.partition.eof", "true"}}) {
      rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error);
    }
    rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(assignment, topic.c_str(), partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(consumer, assignment);
    rd_kafka_topic_partition_list_destroy(assignment);
    std::vector<Message> messages;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 100);
      if (!message) continue;
      const bool eof = message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
      if (!message->err) {
        messages.push_back({std::string(static_cast<const char*>(message->key), message->key_len),
                            std::string(static_cast<const char*>(message->payload), message->len)});
      }
      rd_kafka_message_destroy(message);
      if (eof) break;
    }
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    return messages;
  }

 private:
  rd_kafka_t* handle_;
  rd_kafka_mock_cluster_t* cluster_;
};

inline sinks::KafkaSinkConfig config_for(const MockCluster& cluster) {
  sinks::KafkaSinkConfig config;
  config.bootstrap_servers = cluster.bootstrap();
  config.transactional_id_prefix = "mock-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  config.transaction_max_records = 100;
  config.transaction_max_interval = std::chrono::milliseconds(20);
  config.delivery_timeout = std::chrono::milliseconds(5000);
  config.librdkafka = {{"log_level", "0"}};
  return config;
}

struct Counts {
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<int> calls{0};
};

// Values are unique within the test process ("value-<n>"), so a test can tell a record written
// twice from two records.
inline sinks::SinkBatch batch(int records, Counts& counts) {
  static std::atomic<int> next_value{0};
  sinks::SinkBatch out;
  for (int i = 0; i < records; ++i) {
    auto& record = out.records.emplace_back();
    record.topic = "mock.topic";
    record.key = "device-" + std::to_string(i % 5);
    record.route_header = "v=1";
    record.value = "value-" + std::to_string(next_value++);
  }
  out.on_complete = [&counts](sinks::SinkResult result) {
    ++counts.calls;
    (result ? counts.ok : counts.failed)++;
  };
  return out;
}

inline double metric(prometheus::Registry& registry, const std::string& name, const std::string& result) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& sample : family.metric) {
      for (const auto& label : sample.label) {
        if (label.name == "result" && label.value == result) return sample.counter.value;
      }
    }
  }
  return -1;
}


}  // namespace telegate::testing
