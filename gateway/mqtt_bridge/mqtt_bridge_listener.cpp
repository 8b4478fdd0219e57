#include "mqtt_bridge/mqtt_bridge_listener.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "mqtt_bridge/topic_pattern.hpp"
#include "telegate/gateway/catalog.hpp"

// Paho's headers do not build cleanly under telegate's warning set.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#pragma GCC diagnostic ignored "-Wpedantic"
#include <mqtt/async_client.h>
#pragma GCC diagnostic pop

namespace telegate::gateway {

namespace {

using Clock = std::chrono::steady_clock;

// What becomes of a message once the pipeline has answered.
enum class Disposition : std::uint8_t {
  committed,  // durable in Kafka: ack
  dropped,    // can never become valid (decode, validation, size, media type, foreign device): ack, count, log
  retry,      // Kafka failed or the in-flight budget is spent: do not ack, try again
};

Disposition disposition_of(IngestStatus status) noexcept {
  switch (status) {
    case IngestStatus::accepted:
    case IngestStatus::partially_accepted: return Disposition::committed;
    case IngestStatus::all_rejected:
    case IngestStatus::malformed:
    case IngestStatus::too_large:
    case IngestStatus::record_too_large:
    case IngestStatus::unsupported_media_type:
    case IngestStatus::forbidden: return Disposition::dropped;
    case IngestStatus::overloaded:
    case IngestStatus::quota_exceeded:  // the broker keeps the message; pacing it is the quota's point
    case IngestStatus::sink_failed: return Disposition::retry;
  }
  return Disposition::retry;
}

// A broker full of one bad device's messages must not flood the log: one line per second per
// kind, and the next line says how many were held back.
class LogThrottle {
 public:
  // True when this event may be logged; `skipped` is then the number held back since the last.
  bool allow(std::uint64_t& skipped) noexcept {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
    std::int64_t next = next_allowed_ms_.load(std::memory_order_relaxed);
    if (now < next || !next_allowed_ms_.compare_exchange_strong(next, now + 1000)) {
      suppressed_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    skipped = suppressed_.exchange(0, std::memory_order_relaxed);
    return true;
  }

 private:
  std::atomic<std::int64_t> next_allowed_ms_{0};
  std::atomic<std::uint64_t> suppressed_{0};
};

// Why a message was acknowledged without reaching Kafka (the `outcome` label, and the log kind).
enum class DropReason : std::uint8_t { unmapped_topic, unknown_device, wrong_device_type, invalid_payload };
constexpr std::size_t kDropReasons = 4;
constexpr std::string_view kDropReasonNames[kDropReasons] = {"unmapped_topic", "unknown_device", "wrong_device_type",
                                                             "invalid_payload"};

std::string_view printable_prefix(std::string_view text) { return text.substr(0, 200); }

}  // namespace

class BridgeClient;

struct MqttBridgeListener::State {
  explicit State(const ListenerContext& listener_context) : context(listener_context), config(context.config.mqtt_bridge) {
    for (const MqttBridgeMapping& mapping : config.mappings) {
      // Validated by the config reader, so compile() cannot fail here.
      mappings.push_back(CompiledMapping{*mqtt_bridge::TopicPattern::compile(mapping.topic), &mapping});
    }
  }

  struct CompiledMapping {
    mqtt_bridge::TopicPattern pattern;
    const MqttBridgeMapping* config;
  };

  const ListenerContext context;
  const MqttBridgeConfig& config;
  std::vector<CompiledMapping> mappings;
  std::vector<std::unique_ptr<BridgeClient>> clients;

  // Gate for the delivery callback: paused holds it until resume(); stopping parks a callback
  // that has nothing committed for good (see park()).
  std::mutex gate_mutex;
  std::condition_variable gate;
  bool paused = false;
  bool stopping = false;
  std::atomic<bool> started{false};
  std::atomic<std::size_t> in_callback{0};  // delivery callbacks running
  std::atomic<std::size_t> with_sink{0};    // of those, waiting for the sink's completion
  std::atomic<std::size_t> parked{0};       // of those, parked at shutdown (never to return)

  prometheus::Counter* committed = nullptr;
  std::array<prometheus::Counter*, kDropReasons> dropped{};
  prometheus::Counter* retried_sink_failed = nullptr;
  prometheus::Counter* retried_overloaded = nullptr;
  prometheus::Counter* redelivered = nullptr;
  prometheus::Gauge* connected = nullptr;
  prometheus::Gauge* paused_gauge = nullptr;
  std::array<LogThrottle, kDropReasons> drop_log;
  LogThrottle retry_log;

  const ProtocolMetrics& metrics() const { return context.metrics.protocol(envelope::SourceProtocol::mqtt); }

  void register_metrics();
  void deliver(PipelineWorker& worker, const mqtt::message& message);
  void drop(DropReason reason, std::string_view topic, std::string_view detail);
  // Blocks while paused; false once stopping.
  bool wait_until_running();
  // Never returns: at shutdown, a message that is not committed must not be acked, and Paho
  // holds its global lock while the callback runs, so the connection cannot be closed around
  // it either. The process exits with the callback parked; the broker sees the connection drop
  // and redelivers. stop() then leaks this State on purpose, so the parked thread never
  // touches freed memory.
  [[noreturn]] void park();
  // Waits `delay` unless stop() begins; false once stopping.
  bool back_off(std::chrono::milliseconds delay);
};

// One connection to the broker in the shared group. Lifecycle: created and connected by
// start(), disconnected and destroyed by stop(), both on the main thread. Paho calls the
// callbacks on its own threads; message_arrived always on Paho's single delivery thread, which
// alone uses `worker_`.
class BridgeClient final : public mqtt::callback {
 public:
  BridgeClient(MqttBridgeListener::State& bridge, std::size_t index)
      : bridge_(bridge),
        client_id_(bridge.config.client_id_prefix + "-" + bridge.context.config.instance_id + "-" + std::to_string(index)),
        client_(bridge.config.broker, client_id_, mqtt::create_options(static_cast<int>(bridge.config.protocol_version))),
        worker_(bridge.context.pipeline.make_worker()) {
    client_.set_callback(*this);
  }

  const std::string& client_id() const noexcept { return client_id_; }

  void connect() {
    const MqttBridgeConfig& config = bridge_.config;
    mqtt::connect_options_builder options;
    options.mqtt_version(static_cast<int>(config.protocol_version))
        .keep_alive_interval(config.keepalive)
        .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(30));
    // A persistent session: the broker keeps the subscription and every unacknowledged QoS 1/2
    // message while telegate is away (restart, crash, network), and redelivers them.
    if (config.protocol_version == MqttProtocolVersion::v5) {
      options.clean_start(false).properties(mqtt::properties{
          mqtt::property(mqtt::property::SESSION_EXPIRY_INTERVAL, static_cast<int>(config.session_expiry.count()))});
    } else {
      options.clean_session(false);
    }
    if (!config.username.empty()) options.user_name(config.username);
    if (!config.password.empty()) options.password(config.password);
    try {
      client_.connect(options.finalize())->wait();
    } catch (const mqtt::exception& error) {
      // Start-up goes on: automatic reconnect keeps trying, and /metrics shows the gauge.
      spdlog::error("mqtt_bridge: {} cannot connect to {}: {}; retrying", client_id_, config.broker, error.what());
    }
  }

  void disconnect(std::chrono::milliseconds timeout) {
    try {
      if (client_.is_connected()) client_.disconnect(timeout)->wait_for(timeout + std::chrono::milliseconds(500));
    } catch (const mqtt::exception& error) {
      spdlog::debug("mqtt_bridge: {} disconnect: {}", client_id_, error.what());
    }
  }

 private:
  // Paho threads. (Re)subscribing on every connect is idempotent and covers a broker that lost
  // the session (session_present 0).
  void connected(const std::string& cause) override {
    (void)cause;
    bridge_.connected->Increment();
    for (const MqttBridgeSubscription& subscription : bridge_.config.subscriptions) {
      const std::string topic = mqtt_bridge::subscription_topic(subscription.shared_group, subscription.filter);
      try {
        client_.subscribe(topic, subscription.qos);
      } catch (const mqtt::exception& error) {
        spdlog::error("mqtt_bridge: {} cannot subscribe to {}: {}", client_id_, topic, error.what());
      }
    }
    spdlog::info("mqtt_bridge: {} connected to {}", client_id_, bridge_.config.broker);
  }

  void connection_lost(const std::string& cause) override {
    bridge_.connected->Decrement();
    spdlog::warn("mqtt_bridge: {} lost its connection ({}); reconnecting", client_id_, cause.empty() ? "no cause" : cause);
  }

  void message_arrived(mqtt::const_message_ptr message) override {
    if (message) bridge_.deliver(*worker_, *message);
  }

  MqttBridgeListener::State& bridge_;
  std::string client_id_;
  mqtt::async_client client_;
  std::unique_ptr<PipelineWorker> worker_;
};

void MqttBridgeListener::State::register_metrics() {
  prometheus::Registry& registry = context.metrics.registry();
  auto& messages = prometheus::BuildCounter()
                       .Name("telegate_mqtt_bridge_messages_total")
                       .Help("MQTT messages taken from the broker and acknowledged, by outcome")
                       .Register(registry);
  committed = &messages.Add({{"outcome", "committed"}});
  for (std::size_t i = 0; i < kDropReasons; ++i) dropped[i] = &messages.Add({{"outcome", std::string(kDropReasonNames[i])}});
  auto& retries = prometheus::BuildCounter()
                      .Name("telegate_mqtt_bridge_retries_total")
                      .Help("Ingest attempts of an unacknowledged message that failed and were repeated")
                      .Register(registry);
  retried_sink_failed = &retries.Add({{"reason", "sink_failed"}});
  retried_overloaded = &retries.Add({{"reason", "overloaded"}});
  redelivered = &prometheus::BuildCounter()
                     .Name("telegate_mqtt_bridge_redelivered_total")
                     .Help("Messages the broker sent again (DUP flag): an earlier delivery was not acknowledged")
                     .Register(registry)
                     .Add({});
  connected = &prometheus::BuildGauge()
                   .Name("telegate_mqtt_bridge_connected_clients")
                   .Help("Bridge connections currently up")
                   .Register(registry)
                   .Add({});
  paused_gauge = &prometheus::BuildGauge()
                      .Name("telegate_mqtt_bridge_paused")
                      .Help("1 while the bridge holds deliveries because the in-flight budget is spent")
                      .Register(registry)
                      .Add({});
}

void MqttBridgeListener::State::drop(DropReason reason, std::string_view topic, std::string_view detail) {
  const auto index = static_cast<std::size_t>(reason);
  dropped[index]->Increment();
  std::uint64_t skipped = 0;
  if (drop_log[index].allow(skipped)) {
    spdlog::warn("mqtt_bridge: acknowledged and dropped a message on '{}' ({}): {}{}", printable_prefix(topic),
                 kDropReasonNames[index], printable_prefix(detail),
                 skipped ? fmt::format(" ({} more like this in the last second)", skipped) : std::string());
  }
}

bool MqttBridgeListener::State::wait_until_running() {
  std::unique_lock lock(gate_mutex);
  gate.wait(lock, [this] { return !paused || stopping; });
  return !stopping;
}

void MqttBridgeListener::State::park() {
  ++parked;
  std::unique_lock lock(gate_mutex);
  while (true) gate.wait(lock);
}

bool MqttBridgeListener::State::back_off(std::chrono::milliseconds delay) {
  std::unique_lock lock(gate_mutex);
  return !gate.wait_for(lock, delay, [this] { return stopping; });
}

// Paho's delivery thread. Returning acknowledges the message (QoS 1 PUBACK, QoS 2 PUBREC on
// MQTT 5); so every path that must not ack stays here until it may.
void MqttBridgeListener::State::deliver(PipelineWorker& worker, const mqtt::message& message) {
  struct InCallback {
    explicit InCallback(std::atomic<std::size_t>& counter) : count(counter) { ++count; }
    ~InCallback() { --count; }
    std::atomic<std::size_t>& count;
  } in_callback_guard(in_callback);

  const std::string& topic = message.get_topic();
  if (message.is_duplicate()) redelivered->Increment();

  const CompiledMapping* mapping = nullptr;
  std::optional<mqtt_bridge::TopicPattern::Match> match;
  for (const CompiledMapping& candidate : mappings) {
    if ((match = candidate.pattern.match(topic))) {
      mapping = &candidate;
      break;
    }
  }
  if (!mapping) return drop(DropReason::unmapped_topic, topic, "no mqtt_bridge.mappings pattern matches the topic");
  // The tenant comes from the topic or the mapping, never from the payload.
  const std::string_view tenant = match->tenant.empty() ? std::string_view(mapping->config->tenant) : match->tenant;
  const std::string_view device_id = match->device_id;

  std::string content_type = mapping->config->content_type;
  const mqtt::properties& properties = message.get_properties();
  if (properties.contains(mqtt::property::CONTENT_TYPE)) {
    try {
      content_type = mqtt::get<std::string>(properties, mqtt::property::CONTENT_TYPE);
    } catch (const std::exception&) {
      // A malformed property keeps the mapping's content type.
    }
  }
  const std::string& payload = message.get_payload_str();

  std::chrono::milliseconds delay(100);
  const auto max_delay = std::chrono::duration_cast<std::chrono::milliseconds>(context.config.admission.retry_after);
  while (true) {
    if (!wait_until_running()) park();
    // Looked up on every attempt: the device may be deleted while Kafka is down.
    const std::shared_ptr<const Catalog> catalog = context.catalog.current();
    const DeviceIdentity* device = catalog->devices().find(tenant, device_id);
    if (!device) {
      metrics().reject(RejectReason::unauthenticated, 1);
      return drop(DropReason::unknown_device, topic,
                  fmt::format("device '{}' is not provisioned in tenant '{}'", printable_prefix(device_id), tenant));
    }
    if (!mapping->config->device_type.empty() && device->device_type != mapping->config->device_type) {
      metrics().reject(RejectReason::forbidden, 1);
      return drop(DropReason::wrong_device_type, topic,
                  fmt::format("device '{}' is of type {}, the mapping '{}' takes {}", device->device_id,
                              device->device_type, mapping->config->topic, mapping->config->device_type));
    }

    struct Completion {
      std::mutex mutex;
      std::condition_variable done;
      std::optional<IngestOutcome> outcome;
    };
    auto completion = std::make_shared<Completion>();
    IngestOutcome outcome;
    ++with_sink;
    try {
      std::optional<IngestOutcome> immediate =
          worker.ingest(IngestRequest{*catalog, *device, content_type, payload, envelope::SourceProtocol::mqtt},
                        [completion](IngestOutcome result) {
                          const std::lock_guard lock(completion->mutex);
                          completion->outcome = std::move(result);
                          completion->done.notify_all();
                        });
      if (immediate) {
        outcome = std::move(*immediate);
      } else {
        std::unique_lock lock(completion->mutex);
        completion->done.wait(lock, [&] { return completion->outcome.has_value(); });
        outcome = std::move(*completion->outcome);
      }
    } catch (const std::exception& error) {
      // Not expected (the pipeline does not throw on input); treated like a sink failure so
      // that the message is not acknowledged unseen.
      outcome.status = IngestStatus::sink_failed;
      outcome.message = std::string("internal error: ") + error.what();
    }
    --with_sink;

    switch (disposition_of(outcome.status)) {
      case Disposition::committed:
        committed->Increment();
        return;
      case Disposition::dropped: {
        std::string detail = outcome.message;
        for (const codecs::FieldError& error : outcome.errors) {
          if (detail.size() > 160) break;
          detail += fmt::format("{}record {} {}: {}", detail.empty() ? "" : "; ", error.index, error.field, error.reason);
        }
        return drop(DropReason::invalid_payload, topic, detail);
      }
      case Disposition::retry: {
        (outcome.status == IngestStatus::sink_failed ? retried_sink_failed : retried_overloaded)->Increment();
        std::uint64_t skipped = 0;
        if (retry_log.allow(skipped)) {
          spdlog::warn("mqtt_bridge: not acknowledging a message on '{}', retrying in {} ms: {}", printable_prefix(topic),
                       delay.count(), outcome.message);
        }
        if (!back_off(delay)) park();
        delay = std::min(delay * 2, std::max(max_delay, std::chrono::milliseconds(100)));
        break;
      }
    }
  }
}

MqttBridgeListener::MqttBridgeListener(const ListenerContext& context) : state_(std::make_unique<State>(context)) {}

MqttBridgeListener::~MqttBridgeListener() {
  if (state_ && state_->started) stop(std::chrono::milliseconds(0));
}

bool MqttBridgeListener::accepting() const noexcept {
  if (!state_ || !state_->started) return false;
  const std::lock_guard lock(state_->gate_mutex);
  return !state_->stopping;
}

void MqttBridgeListener::start() {
  State& state = *state_;
  state.register_metrics();
  for (std::size_t i = 0; i < state.config.clients; ++i) state.clients.push_back(std::make_unique<BridgeClient>(state, i));
  for (auto& client : state.clients) client->connect();
  state.started = true;
  std::string filters;
  for (const MqttBridgeSubscription& subscription : state.config.subscriptions) {
    filters += (filters.empty() ? "" : ", ") + mqtt_bridge::subscription_topic(subscription.shared_group, subscription.filter) +
               " (QoS " + std::to_string(subscription.qos) + ")";
  }
  spdlog::info("mqtt_bridge: {} client(s) to {} subscribing to {}", state.config.clients, state.config.broker, filters);
}

void MqttBridgeListener::stop(std::chrono::milliseconds grace) {
  if (!state_ || !state_->started) return;
  State& state = *state_;
  {
    const std::lock_guard lock(state.gate_mutex);
    if (state.stopping) return;
    state.stopping = true;
  }
  state.gate.notify_all();
  // A message with the sink gets its ack if its commit comes within the grace period; a paused
  // or retrying one parks at once.
  const auto deadline = Clock::now() + grace;
  while (state.in_callback > state.parked && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  bool closed = state.parked == 0 && state.in_callback == 0;
  if (closed) {
    // A message arriving meanwhile holds Paho's lock until it is committed (or parks), so the
    // DISCONNECTs go out from a helper that may be given up on.
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread closer([&clients = state.clients, done] {
      for (auto& client : clients) client->disconnect(std::chrono::milliseconds(200));
      done->store(true);
    });
    const auto close_deadline = Clock::now() + std::chrono::seconds(5);
    while (!done->load() && Clock::now() < close_deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    closed = done->load();
    closed ? closer.join() : closer.detach();
  }
  if (!closed) {
    spdlog::warn("mqtt_bridge: {} message(s) not committed at shutdown stay unacknowledged; the broker redelivers them",
                 std::max<std::size_t>(state.parked.load(), 1));
    (void)state_.release();  // leaked on purpose: parked Paho threads still reference it (see park())
    return;
  }
  state.clients.clear();
  state.started = false;
}

void MqttBridgeListener::pause() {
  if (!state_) return;
  {
    const std::lock_guard lock(state_->gate_mutex);
    state_->paused = true;
  }
  if (state_->paused_gauge) state_->paused_gauge->Set(1);
}

void MqttBridgeListener::resume() {
  if (!state_) return;
  {
    const std::lock_guard lock(state_->gate_mutex);
    state_->paused = false;
  }
  if (state_->paused_gauge) state_->paused_gauge->Set(0);
  state_->gate.notify_all();
}

}  // namespace telegate::gateway
