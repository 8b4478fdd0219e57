#include "sim_audit.hpp"

#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "kafka_reader.hpp"

namespace po = boost::program_options;

namespace telegate::sim {

namespace {

const std::string& required(const po::variables_map& options, const char* name) {
  if (!options.count(name)) throw std::invalid_argument(std::string("--") + name + " is required");
  return options[name].as<std::string>();
}

}  // namespace

int audit(const po::variables_map& options) {
  const std::string& bootstrap = required(options, "bootstrap");
  const std::string& topic = required(options, "topic");
  const std::string& ack_log = required(options, "ack-log");
  const std::string prefix = options.count("prefix") ? options["prefix"].as<std::string>() : "";

  std::ifstream in(ack_log);
  if (!in) throw std::invalid_argument("--ack-log: cannot read " + ack_log);
  std::set<std::string> acknowledged;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.starts_with(prefix)) acknowledged.insert(line);
  }

  const auto messages = testing::read_committed_to_end(bootstrap, topic);
  std::size_t found = 0, duplicated = 0, unacknowledged_found = 0, counted = 0;
  const auto copies = testing::route_msg_id_copies(messages);
  for (const auto& [msg_id, count] : copies) {
    if (!msg_id.starts_with(prefix)) continue;
    counted += static_cast<std::size_t>(count);
    ++found;
    duplicated += static_cast<std::size_t>(count - 1);
    if (!acknowledged.contains(msg_id)) ++unacknowledged_found;
  }
  std::size_t lost = 0;
  for (const std::string& msg_id : acknowledged) {
    if (copies.contains(msg_id)) continue;
    if (++lost <= 10) std::fprintf(stderr, "telegate-sim audit: acknowledged but not in %s: %s\n", topic.c_str(), msg_id.c_str());
  }
  for (const auto& [msg_id, count] : copies) {
    if (count > 1 && msg_id.starts_with(prefix)) std::fprintf(stderr, "telegate-sim audit: %d copies of %s\n", count, msg_id.c_str());
  }
  std::printf(
      "{\"topic\":\"%s\",\"acknowledged\":%zu,\"found\":%zu,\"lost\":%zu,\"duplicated\":%zu,"
      "\"unacknowledged_found\":%zu,\"messages\":%zu}\n",
      topic.c_str(), acknowledged.size(), found, lost, duplicated, unacknowledged_found, counted);
  return lost > 0 || duplicated > 0 ? 1 : 0;
}

int leaders(const po::variables_map& options) {
  const std::string& bootstrap = required(options, "bootstrap");
  const std::string& topic = required(options, "topic");
  char error_text[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), error_text, sizeof error_text) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    throw std::invalid_argument(error_text);
  }
  // A consumer handle: unlike a producer it never asks the broker to auto-create the topic.
  rd_kafka_t* client = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error_text, sizeof error_text);
  if (!client) throw std::runtime_error(error_text);
  rd_kafka_topic_t* handle = rd_kafka_topic_new(client, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t error = rd_kafka_metadata(client, 0, handle, &metadata, 10'000);
  int status = 1;
  if (error) {
    std::fprintf(stderr, "telegate-sim leaders: %s\n", rd_kafka_err2str(error));
  } else if (metadata->topic_cnt != 1 || metadata->topics[0].err) {
    std::fprintf(stderr, "telegate-sim leaders: %s: %s\n", topic.c_str(),
                 metadata->topic_cnt == 1 ? rd_kafka_err2str(metadata->topics[0].err) : "not found");
  } else {
    for (int i = 0; i < metadata->topics[0].partition_cnt; ++i) {
      const rd_kafka_metadata_partition_t& partition = metadata->topics[0].partitions[i];
      std::printf("%d %d\n", partition.id, partition.leader);
    }
    status = 0;
  }
  if (metadata) rd_kafka_metadata_destroy(metadata);
  rd_kafka_topic_destroy(handle);
  rd_kafka_destroy(client);
  return status;
}

}  // namespace telegate::sim
