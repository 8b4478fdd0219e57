#include "kafka_reader.hpp"

#include "telegate/envelope/envelope.hpp"

#include <librdkafka/rdkafka.h>

#include <random>
#include <stdexcept>

namespace telegate::testing {

std::vector<KafkaMessage> read_committed(const std::string& bootstrap, const std::string& topic, std::size_t expected,
                                         std::chrono::milliseconds idle, std::chrono::milliseconds timeout) {
  char error_text[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::string group = "telegate-test-" + std::to_string(std::random_device{}());
  const std::pair<const char*, std::string> settings[] = {{"bootstrap.servers", bootstrap},
                                                          {"group.id", group},
                                                          {"isolation.level", "read_committed"},
                                                          {"auto.offset.reset", "earliest"},
                                                          {"enable.auto.commit", "false"},
                                                          {"topic.metadata.refresh.interval.ms", "500"}};
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), error_text, sizeof error_text) != RD_KAFKA_CONF_OK) {
      throw std::runtime_error(error_text);
    }
  }
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error_text, sizeof error_text);
  if (!consumer) throw std::runtime_error(error_text);
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);

  std::vector<KafkaMessage> messages;
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  auto last_message = Clock::now();
  while (messages.size() < expected) {
    const auto now = Clock::now();
    if (messages.empty() ? now - started > timeout : now - last_message > idle) break;
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 200);
    if (!message) continue;
    if (message->err) {
      rd_kafka_message_destroy(message);
      continue;  // partition EOF, topic not yet created: keep polling until the deadlines
    }
    KafkaMessage copy;
    copy.topic = rd_kafka_topic_name(message->rkt);
    copy.partition = message->partition;
    copy.offset = message->offset;
    if (message->key) copy.key.assign(static_cast<const char*>(message->key), message->key_len);
    if (message->payload) copy.value.assign(static_cast<const char*>(message->payload), message->len);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* value = nullptr;
      std::size_t size = 0;
      for (std::size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        copy.headers.emplace_back(name, std::string(static_cast<const char*>(value), size));
      }
    }
    messages.push_back(std::move(copy));
    rd_kafka_message_destroy(message);
    last_message = Clock::now();
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
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

}  // namespace telegate::testing
