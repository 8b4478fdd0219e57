#include "kafka_reader.hpp"

#include "telegate/envelope/envelope.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

namespace telegate::testing {

namespace {

using Clock = std::chrono::steady_clock;

struct ConsumerDeleter {
  void operator()(rd_kafka_t* consumer) const {
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
  }
};
using Consumer = std::unique_ptr<rd_kafka_t, ConsumerDeleter>;

// A read_committed consumer in a group of its own that starts from the earliest offset and
// commits nothing, plus `extra` settings.
Consumer make_consumer(const std::string& bootstrap, const std::map<std::string, std::string>& extra = {}) {
  char error_text[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::map<std::string, std::string> settings{{"bootstrap.servers", bootstrap},
                                              {"group.id", "telegate-test-" + std::to_string(std::random_device{}())},
                                              {"isolation.level", "read_committed"},
                                              {"auto.offset.reset", "earliest"},
                                              {"enable.auto.commit", "false"},
                                              {"topic.metadata.refresh.interval.ms", "500"}};
  for (const auto& [name, value] : extra) settings[name] = value;
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error_text, sizeof error_text) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(error_text);
    }
  }
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error_text, sizeof error_text);
  if (!consumer) throw std::runtime_error(error_text);
  rd_kafka_poll_set_consumer(consumer);
  return Consumer(consumer);
}

KafkaMessage copy_message(const rd_kafka_message_t& message) {
  KafkaMessage copy;
  copy.topic = rd_kafka_topic_name(message.rkt);
  copy.partition = message.partition;
  copy.offset = message.offset;
  if (message.key) copy.key.assign(static_cast<const char*>(message.key), message.key_len);
  if (message.payload) copy.value.assign(static_cast<const char*>(message.payload), message.len);
  rd_kafka_timestamp_type_t timestamp_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  const std::int64_t timestamp = rd_kafka_message_timestamp(&message, &timestamp_type);
  if (timestamp_type == RD_KAFKA_TIMESTAMP_CREATE_TIME) copy.timestamp_ms = timestamp;
  rd_kafka_headers_t* headers = nullptr;
  // rd_kafka_message_headers() takes a non-const message: it parses the headers lazily.
  if (rd_kafka_message_headers(const_cast<rd_kafka_message_t*>(&message), &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    for (std::size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      copy.headers.emplace_back(name, std::string(static_cast<const char*>(value), size));
    }
  }
  return copy;
}

// Partition count of `topic`, waiting up to `timeout` for it to exist.
int partition_count(rd_kafka_t* client, const std::string& topic, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string last_error = "no metadata";
  while (true) {
    rd_kafka_topic_t* handle = rd_kafka_topic_new(client, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* metadata = nullptr;
    const rd_kafka_resp_err_t error = rd_kafka_metadata(client, 0, handle, &metadata, 5000);
    int partitions = 0;
    if (error) {
      last_error = rd_kafka_err2str(error);
    } else {
      if (metadata->topic_cnt == 1 && !metadata->topics[0].err) partitions = metadata->topics[0].partition_cnt;
      if (metadata->topic_cnt == 1 && metadata->topics[0].err) last_error = rd_kafka_err2str(metadata->topics[0].err);
      rd_kafka_metadata_destroy(metadata);
    }
    rd_kafka_topic_destroy(handle);
    if (partitions > 0) return partitions;
    if (Clock::now() > deadline) throw std::runtime_error(topic + ": no such topic (" + last_error + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace

std::vector<KafkaMessage> read_committed(const std::string& bootstrap, const std::string& topic, std::size_t expected,
                                         std::chrono::milliseconds idle, std::chrono::milliseconds timeout) {
  const Consumer consumer = make_consumer(bootstrap);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(consumer.get(), topics);
  rd_kafka_topic_partition_list_destroy(topics);

  std::vector<KafkaMessage> messages;
  const auto started = Clock::now();
  auto last_message = Clock::now();
  while (messages.size() < expected) {
    const auto now = Clock::now();
    if (messages.empty() ? now - started > timeout : now - last_message > idle) break;
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer.get(), 200);
    if (!message) continue;
    // Partition EOF, topic not yet created: keep polling until the deadlines.
    if (!message->err) {
      messages.push_back(copy_message(*message));
      last_message = Clock::now();
    }
    rd_kafka_message_destroy(message);
  }
  return messages;
}

std::vector<KafkaMessage> read_committed_to_end(const std::string& bootstrap, const std::string& topic,
                                                std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const Consumer consumer = make_consumer(bootstrap, {{"enable.partition.eof", "true"}});
  const int partitions = partition_count(consumer.get(), topic, timeout);
  rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(partitions);
  for (int partition = 0; partition < partitions; ++partition) {
    rd_kafka_topic_partition_list_add(assignment, topic.c_str(), partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  const rd_kafka_resp_err_t assigned = rd_kafka_assign(consumer.get(), assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  if (assigned) throw std::runtime_error(topic + ": assign: " + rd_kafka_err2str(assigned));

  // A partition is done when its EOF event is the last thing it reported: with read_committed
  // librdkafka reports EOF at the last stable offset.
  std::set<std::int32_t> at_end;
  std::vector<KafkaMessage> messages;
  while (static_cast<int>(at_end.size()) < partitions) {
    if (Clock::now() > deadline) {
      throw std::runtime_error(topic + ": " + std::to_string(partitions - static_cast<int>(at_end.size())) +
                               " partition(s) not read to the end in time");
    }
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer.get(), 200);
    if (!message) continue;
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end.insert(message->partition);
    } else if (!message->err) {
      at_end.erase(message->partition);
      messages.push_back(copy_message(*message));
    }  // other errors (a leader moving) are retried by librdkafka: keep polling until the deadline
    rd_kafka_message_destroy(message);
  }
  return messages;
}

std::map<std::string, int> msg_id_copies(const std::vector<KafkaMessage>& messages,
                                         const std::optional<ExpectedOrigin>& origin) {
  std::map<std::string, int> copies;
  for (const KafkaMessage& message : messages) {
    const auto decoded = envelope::decode_envelope(message.value, envelope::Format::protobuf);
    if (!decoded) throw std::runtime_error(message.topic + ": a value is not an envelope: " + decoded.error().message);
    if (origin && (decoded->tenant != origin->tenant || decoded->protocol != origin->protocol)) {
      throw std::runtime_error(message.topic + ": record '" + decoded->record.msg_id + "' came from tenant '" +
                               decoded->tenant + "' over " + std::string(envelope::to_string(decoded->protocol)) +
                               ", expected tenant '" + origin->tenant + "' over " +
                               std::string(envelope::to_string(origin->protocol)));
    }
    ++copies[decoded->record.msg_id];
  }
  return copies;
}

std::map<std::string, int> committed_copies(const std::string& bootstrap, const std::string& topic,
                                            std::size_t expected, const std::optional<ExpectedOrigin>& origin) {
  return msg_id_copies(read_committed(bootstrap, topic, expected + 1), origin);
}

std::map<std::string, int> route_msg_id_copies(const std::vector<KafkaMessage>& messages) {
  std::map<std::string, int> copies;
  for (const KafkaMessage& message : messages) {
    const auto header = std::find_if(message.headers.begin(), message.headers.end(),
                                     [](const auto& entry) { return entry.first == envelope::kRouteHeader; });
    if (header == message.headers.end()) {
      throw std::runtime_error(message.topic + ": offset " + std::to_string(message.offset) + " has no tg-route header");
    }
    const auto route = envelope::decode_route_header(header->second);
    if (!route) throw std::runtime_error(message.topic + ": unreadable tg-route header: " + route.error().message);
    ++copies[route->msg_id];
  }
  return copies;
}

}  // namespace telegate::testing
