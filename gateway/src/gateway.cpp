#include "telegate/gateway/gateway.hpp"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "telegate/gateway/admission.hpp"
#include "telegate/gateway/auth.hpp"
#include "telegate/gateway/catalog.hpp"
#include "telegate/gateway/dedup.hpp"
#include "telegate/sinks/kafka_admin.hpp"
#include "telegate/sinks/spool.hpp"
#include "telegate/gateway/listener.hpp"
#include "telegate/gateway/metrics.hpp"
#include "telegate/gateway/pipeline.hpp"

namespace telegate::gateway {

namespace {

constexpr std::chrono::seconds kDrainGrace{30};

// %j: the message as a JSON string, so that every log line is a valid JSON object whatever
// the message holds (quotes from broker errors, device ids, …).
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&, spdlog::memory_buf_t& out) override {
    scratch_.clear();
    envelope::append_json_string(scratch_, std::string_view(message.payload.data(), message.payload.size()));
    out.append(scratch_.data(), scratch_.data() + scratch_.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }

 private:
  std::string scratch_;
};

// libprotobuf logs to stderr on its own (e.g. for every proto3 string that is not UTF-8 in a
// device's payload): route it through our JSON log at debug level so a device cannot flood the
// log or break its one-object-per-line format.
void route_protobuf_logs() {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel level, const char* file, int line,
                                     const std::string& message) {
    if (level >= google::protobuf::LOGLEVEL_FATAL) {
      spdlog::critical("libprotobuf {}:{}: {}", file, line, message);
    } else {
      spdlog::debug("libprotobuf {}:{}: {}", file, line, message);
    }
  });
}

void configure_logging(const GatewayConfig& config) {
  auto logger = spdlog::stderr_logger_mt("telegate");
  // One JSON object per line: time, level, instance, message.
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<JsonMessageFlag>('j').set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","instance":")" +
                                                        config.instance_id + R"(","msg":%j})");
  logger->set_formatter(std::move(formatter));
  logger->set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_default_logger(logger);
  route_protobuf_logs();
}

// The spool's replay position: one compacted record per instance, keyed by its instance id.
sinks::ControlRecord spool_position(const GatewayConfig& config) {
  const sinks::SpoolConfig& spool = *config.sink.spool;
  return {spool.position_topic, sinks::instance_partition(config.instance_id, spool.position_partitions),
          config.instance_id, {}};
}

struct BuiltSink {
  std::unique_ptr<sinks::Sink> sink;
  const sinks::SpoolingSink* spool = nullptr;  // the same object, when the Kafka sink spools
};

BuiltSink make_sink(const GatewayConfig& config, Metrics& metrics) {
  if (config.sink.kind != SinkKind::kafka) return {sinks::make_local_log_sink(config.sink.local_log, metrics.registry())};
  auto kafka = sinks::make_kafka_sink(config.sink.kafka, metrics.registry());
  if (!config.sink.spool) return {std::move(kafka)};
  const sinks::SpoolConfig& spool = *config.sink.spool;
  sinks::ensure_topic(config.sink.kafka, spool.position_topic, spool.position_partitions,
                      spool.position_replication_factor,
                      {{"cleanup.policy", "compact"}, {"segment.ms", "3600000"}});
  const sinks::ControlRecord position = spool_position(config);
  auto spooling = sinks::make_spooling_sink(
      spool, std::move(kafka), position,
      [&config, position] { return sinks::read_spool_position(config.sink.kafka, position); }, metrics.registry());
  const sinks::SpoolingSink* view = spooling.get();
  return {std::move(spooling), view};
}

// The de-duplication journal: each instance writes the keys of its committed batches to one
// partition of a shared topic (keyed by its instance id), in the same transaction as the
// records (IngestPipeline::journal()), so that after a restart it knows what it had committed
// and acknowledged.
void prepare_dedup_journal(const GatewayConfig& config) {
  const DedupConfig& dedup = config.dedup;
  const auto retention_ms = std::chrono::duration_cast<std::chrono::milliseconds>(dedup.window).count() * 2;
  sinks::ensure_topic(config.sink.kafka, dedup.journal_topic, dedup.journal_partitions, dedup.journal_replication_factor,
                      {{"cleanup.policy", "delete"}, {"retention.ms", std::to_string(retention_ms)}});
}

// The topics the file's devices route to that do not exist yet: with auto.create.topics.enable
// the first record to each waits for its creation (about 1 s on a one-broker cluster, measured
// in docs/kafka-sink.md), without it that record fails after delivery_timeout_ms. Said once at
// start-up so that neither surprises an operator; admin-created devices are not checked.
void warn_missing_topics(const GatewayConfig& config, const Catalog& catalog) {
  std::set<std::string> topics;
  std::string topic;
  for (const TenantConfig& tenant : config.tenants) {
    for (const DeviceConfig& device : tenant.devices) {
      const DeviceTypeVersion* type = catalog.device_type(device.device_type);
      if (type == nullptr) continue;
      const auto& produced = type->definition.message_types;
      for (const codecs::MessageType message_type : {codecs::MessageType::location, codecs::MessageType::sensor}) {
        if (!produced.empty() && std::find(produced.begin(), produced.end(), message_type) == produced.end()) continue;
        type->topic.expand(tenant.name, device.device_type, message_type, topic);
        topics.insert(topic);
      }
    }
  }
  if (topics.empty()) return;
  const auto missing = sinks::missing_topics(config.sink.kafka, topics);
  if (!missing) {
    spdlog::warn("kafka: cannot tell which destination topics exist: {}", missing.error());
  } else if (!missing->empty()) {
    std::string names;
    for (const std::string& name : *missing) names += (names.empty() ? "" : ", ") + name;
    spdlog::warn("kafka: {} of {} destination topics the configured devices may write to do not exist yet ({}): with "
                 "the broker's auto.create.topics.enable the first record to each waits for its creation (about a "
                 "second), without it its records fail after sink.kafka.delivery_timeout_ms; create them beforehand "
                 "to avoid either",
                 missing->size(), topics.size(), names);
  }
}

// Committed journals, and those of batches acknowledged from the spool and not yet replayed:
// a device retrying one of those must still be caught after a restart.
void restore_dedup_window(const GatewayConfig& config, const sinks::ControlRecord& journal,
                          const sinks::SpoolingSink* spool, DedupWindow& window) {
  const auto started = std::chrono::steady_clock::now();
  const auto journals = sinks::read_key_since(config.sink.kafka, journal.topic, journal.partition, journal.key,
                                              std::chrono::system_clock::now() - config.dedup.window);
  std::size_t keys = 0;
  const auto restore = [&](std::string_view bytes) {
    const auto restored = DedupWindow::parse_journal(bytes);
    window.restore(restored);
    keys += restored.size();
  };
  for (const std::string& bytes : journals) restore(bytes);
  if (spool) {
    spool->visit_unreplayed_control([&](const sinks::ControlRecord& control) {
      if (control.topic == journal.topic && control.key == journal.key) restore(control.value);
    });
  }
  spdlog::info("dedup: {} committed or spooled msg_ids of the last {} s restored from {} in {} ms", keys,
               config.dedup.window.count(), journal.topic,
               std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
}

// The other replicas' journals, as they commit: their keys become committed entries here too.
// The own key is skipped (restored above, and settled by this instance's own writes).
std::unique_ptr<sinks::TopicFollower> follow_other_replicas(const GatewayConfig& config,
                                                            const sinks::ControlRecord& journal, DedupWindow& window,
                                                            Metrics& metrics) {
  auto& learned = prometheus::BuildCounter()
                      .Name("telegate_dedup_replica_keys_total")
                      .Help("msg_ids committed by other replicas, learned from their de-duplication journals")
                      .Register(metrics.registry())
                      .Add({});
  return std::make_unique<sinks::TopicFollower>(
      config.sink.kafka, journal.topic, config.dedup.journal_partitions,
      std::chrono::system_clock::now() - config.dedup.window,
      [&window, &learned, own_key = journal.key](std::string_view key, std::string_view bytes) {
        if (key == own_key) return;
        const auto keys = DedupWindow::parse_journal(bytes);
        window.restore(keys);
        learned.Increment(static_cast<double>(keys.size()));
      });
}

}  // namespace

Gateway::Gateway(GatewayConfig config) : config_(std::move(config)) {}

int Gateway::run() {
  configure_logging(config_);
  Metrics metrics;
  codecs::CodecRegistry codecs;
  codecs::register_builtin_codecs(codecs);
  CatalogManager catalog(config_, codecs, make_catalog_store(config_));
  if (catalog.current()->devices().authenticate("demo-token")) {
    spdlog::warn("the demo device (token demo-token) is provisioned: fine for a first run, not for production");
  }
  if (config_.admin.token_sha256 == sha256_hex("demo-admin-token")) {
    spdlog::warn("the admin API accepts the demo token demo-admin-token: fine for a first run, not for production");
  }
  InflightBudget budget(config_.admission.max_inflight_records, config_.admission.max_inflight_bytes, 0.8,
                        config_.admission.device_max_inflight_records);
  metrics.report_inflight(budget);  // /metrics is served by listeners, which are gone before the budget
  Quotas quotas(config_.quotas, budget);  // like the budget, outlives the sink (permits point into both)

  auto [sink, spool] = make_sink(config_, metrics);
  const IngestPipeline pipeline(config_, *sink, budget, quotas, metrics);
  if (pipeline.journal()) prepare_dedup_journal(config_);
  sink->start();
  spdlog::info("sink {}{} started", sink->name(), spool ? " with a spool" : "");
  if (pipeline.journal()) restore_dedup_window(config_, *pipeline.journal(), spool, pipeline.dedup());
  if (config_.sink.kind == SinkKind::kafka) warn_missing_topics(config_, *catalog.current());
  const auto replica_journals = pipeline.journal() && config_.dedup.across_replicas
                                    ? follow_other_replicas(config_, *pipeline.journal(), pipeline.dedup(), metrics)
                                    : nullptr;
  ListenerRegistry registry;
  register_builtin_listeners(registry);
  auto listeners = registry.create_all(ListenerContext{config_, catalog, pipeline, budget, metrics, *sink});
  budget.on_watermark([&listeners](bool pause) {
    for (auto& listener : listeners) pause ? listener->pause() : listener->resume();
  });
  for (auto& listener : listeners) listener->start();
  spdlog::info("telegate {} ready: {} device types, {} devices", config_.instance_id,
               catalog.current()->device_type_count(), catalog.current()->devices().size());

  boost::asio::io_context signals_io;
  boost::asio::signal_set signals(signals_io, SIGINT, SIGTERM);
  int received = 0;
  signals.async_wait([&](const boost::system::error_code&, int signal_number) { received = signal_number; });
  signals_io.run();

  spdlog::info("signal {}: draining (up to {} s)", received, kDrainGrace.count());
  for (auto& listener : listeners) listener->stop(kDrainGrace);
  sink->stop();
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace telegate::gateway
