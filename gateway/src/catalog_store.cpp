// Catalog stores: where admin changes live so that restarts and other replicas see them.
//
// Kafka: one compacted single-partition topic, the way Schema Registry and Kafka Connect keep
// their state. One partition gives every replica the same total order; compaction keeps the
// newest value per key, and every key is either a device type version (written once) or a
// device (newest wins), so a compacted topic replays to the same catalog as the full log.
// File: the same changes as lines "<key>\t<value>", appended and fsync'ed, for single-node use.
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>

#include "telegate/gateway/catalog.hpp"
#include "telegate/sinks/kafka_admin.hpp"

namespace telegate::gateway {

namespace {

// Lifecycle: created at start-up; append() runs under the CatalogManager's lock.
class FileCatalogStore final : public CatalogStore {
 public:
  explicit FileCatalogStore(std::filesystem::path file) : file_(std::move(file)) {}

  std::string describe() const override { return "file " + file_.string(); }

  std::vector<CatalogChange> load() override {
    std::vector<CatalogChange> changes;
    std::ifstream in(file_, std::ios::binary);
    if (!in) return changes;  // nothing stored yet
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t end = text.find('\n', at);
      if (end == std::string::npos) {
        spdlog::warn("catalog: ignoring a torn last line in {} (a write cut short by a crash)", file_.string());
        break;
      }
      const std::string_view line(text.data() + at, end - at);
      at = end + 1;
      const std::size_t tab = line.find('\t');
      if (tab == std::string_view::npos) continue;
      CatalogChange& change = changes.emplace_back();
      change.key = line.substr(0, tab);
      if (tab + 1 < line.size()) change.value = std::string(line.substr(tab + 1));
    }
    return changes;
  }

  std::expected<void, std::string> append(const CatalogChange& change) override {
    if (change.key.find_first_of("\t\n") != std::string::npos ||
        (change.value && change.value->find('\n') != std::string::npos)) {
      return std::unexpected("a catalog change may not contain tabs or newlines in its key or newlines in its value");
    }
    std::error_code ignored;
    if (file_.has_parent_path()) std::filesystem::create_directories(file_.parent_path(), ignored);
    const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return std::unexpected("cannot open " + file_.string() + ": " + std::strerror(errno));
    const std::string line = change.key + "\t" + change.value.value_or("") + "\n";
    const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    if (!written) return std::unexpected("cannot write " + file_.string() + ": " + std::strerror(saved));
    return {};
  }

 private:
  std::filesystem::path file_;
};

// Lifecycle: created at start-up; append() runs under the CatalogManager's lock; the watch
// thread (started by watch()) consumes the topic until the store is destroyed.
class KafkaCatalogStore final : public CatalogStore {
 public:
  explicit KafkaCatalogStore(const GatewayConfig& config)
      : topic_(config.catalog.kafka_topic),
        producer_(sinks::make_cluster_client(RD_KAFKA_PRODUCER, config.sink.kafka,
                              // A delivery report always arrives before append() stops waiting (30 s), so a change
                              // the API refused can never land later behind its back.
                              {{"enable.idempotence", "true"},
                               {"acks", "all"},
                               {"linger.ms", "0"},
                               {"message.timeout.ms", "25000"}},
                              &on_delivery)),
        consumer_(sinks::make_cluster_client(RD_KAFKA_CONSUMER, config.sink.kafka,
                              {{"group.id", "telegate-catalog-unused"},
                               {"enable.auto.commit", "false"},
                               {"isolation.level", "read_committed"},
                               {"enable.partition.eof", "true"}})) {
    const int replication = config.catalog.kafka_replication_factor;
    sinks::ensure_topic(config.sink.kafka, topic_, 1, replication,
                        {{"cleanup.policy", "compact"}, {"min.insync.replicas", replication > 1 ? "2" : "1"}});
    rd_kafka_topic_partition_list_t* partitions = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(partitions, topic_.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    const rd_kafka_resp_err_t assigned = rd_kafka_assign(consumer_.get(), partitions);
    rd_kafka_topic_partition_list_destroy(partitions);
    if (assigned) throw std::runtime_error("catalog store: cannot read " + topic_ + ": " + rd_kafka_err2str(assigned));
  }

  ~KafkaCatalogStore() override {
    stopping_ = true;
    if (watcher_.joinable()) watcher_.join();
    rd_kafka_consumer_close(consumer_.get());
  }

  std::string describe() const override { return "Kafka topic " + topic_; }

  std::vector<CatalogChange> load() override {
    const std::int64_t high = sinks::wait_for_watermarks(consumer_.get(), topic_, 0).second;
    std::vector<CatalogChange> changes;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (next_offset_ < high) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("catalog store: reading " + topic_ + " took over 60 s");
      }
      poll_one(200, [&](CatalogChange change) { changes.push_back(std::move(change)); });
    }
    return changes;
  }

  std::expected<void, std::string> append(const CatalogChange& change) override {
    std::promise<rd_kafka_resp_err_t> delivered;
    auto future = delivered.get_future();
    char* value = change.value ? const_cast<char*>(change.value->data()) : nullptr;  // null value: a tombstone
    const std::size_t value_size = change.value ? change.value->size() : 0;
// librdkafka's RD_KAFKA_V_* macros are C casts.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
    const rd_kafka_resp_err_t error = rd_kafka_producev(
        producer_.get(), RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(change.key.data(), change.key.size()), RD_KAFKA_V_VALUE(value, value_size),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&delivered), RD_KAFKA_V_END);
#pragma GCC diagnostic pop
    if (error) return std::unexpected(std::string(rd_kafka_err2str(error)));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (future.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
      if (std::chrono::steady_clock::now() > deadline) return std::unexpected("no delivery report within 30 s");
      rd_kafka_poll(producer_.get(), 50);
    }
    if (const rd_kafka_resp_err_t result = future.get(); result) return std::unexpected(std::string(rd_kafka_err2str(result)));
    return {};
  }

  void watch(std::function<void(const CatalogChange&)> apply) override {
    watcher_ = std::thread([this, apply = std::move(apply)] {
      while (!stopping_) poll_one(200, [&](const CatalogChange& change) { apply(change); });
    });
  }

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
    static_cast<std::promise<rd_kafka_resp_err_t>*>(message->_private)->set_value(message->err);
  }

  template <class Consume>
  void poll_one(int timeout_ms, Consume&& consume) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer_.get(), timeout_ms);
    if (!message) return;
    if (!message->err) {
      CatalogChange change;
      if (message->key) change.key.assign(static_cast<const char*>(message->key), message->key_len);
      if (message->payload) change.value = std::string(static_cast<const char*>(message->payload), message->len);
      next_offset_ = message->offset + 1;
      consume(std::move(change));
    } else if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      next_offset_ = message->offset;
    } else {
      spdlog::warn("catalog store: reading {}: {}", topic_, rd_kafka_message_errstr(message));
    }
    rd_kafka_message_destroy(message);
  }

  std::string topic_;
  sinks::KafkaHandle producer_;
  sinks::KafkaHandle consumer_;
  std::int64_t next_offset_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread watcher_;
};

}  // namespace

std::unique_ptr<CatalogStore> make_file_catalog_store(std::filesystem::path file) {
  return std::make_unique<FileCatalogStore>(std::move(file));
}

std::unique_ptr<CatalogStore> make_kafka_catalog_store(const GatewayConfig& config) {
  return std::make_unique<KafkaCatalogStore>(config);
}

std::unique_ptr<CatalogStore> make_catalog_store(const GatewayConfig& config) {
  if (config.catalog.store == CatalogStoreKind::kafka) return make_kafka_catalog_store(config);
  return make_file_catalog_store(config.catalog.file);
}

}  // namespace telegate::gateway
