#include "telegate/gateway/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include "mqtt/mqtt_session.hpp"
#include "mqtt_bridge/topic_pattern.hpp"
#include "telegate/codecs/codec.hpp"

namespace telegate::gateway {

namespace {

// The embedded default: a local durable log and one demo device, so that `telegate` runs out
// of the box. The demo token is "demo-token"; the gateway warns at start-up while it is active.
constexpr const char* kEmbeddedDefault = R"(
sink:
  type: local_log
admin:
  token_sha256: 91c16f0d6cc1bec3c3603972182a07c66ff4fa71618a975e963d6dbe42b6dd37
device_types:
  - name: tracker
    codec: json
tenants:
  - name: demo
    devices:
      - id: demo-device-1
        device_type: tracker
        token_sha256: 7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c
)";

using Section = codecs::OptionReader;

// yaml-cpp marks quoted scalars with the "!" tag; plain ones that read as numbers, booleans or
// null stay bare in JSON so that a definition keeps its types through the store.
bool is_plain_json_literal(const YAML::Node& node) {
  if (node.Tag() == "!") return false;
  const std::string& text = node.Scalar();
  if (text == "true" || text == "false" || text == "null") return true;
  if (text.empty()) return false;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(value) && text.find_first_of("xXiInN") == std::string::npos &&
         text.front() != '+' && text.front() != '.' && text.back() != '.';
}

void append_yaml_as_json(std::string& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& item : node) {
        if (!first) out += ',';
        first = false;
        envelope::append_json_string(out, item.first.Scalar());
        out += ':';
        append_yaml_as_json(out, item.second);
      }
      out += '}';
      return;
    }
    case YAML::NodeType::Sequence: {
      out += '[';
      for (std::size_t i = 0; i < node.size(); ++i) {
        if (i) out += ',';
        append_yaml_as_json(out, node[i]);
      }
      out += ']';
      return;
    }
    case YAML::NodeType::Scalar:
      if (is_plain_json_literal(node)) {
        out += node.Scalar();
      } else {
        envelope::append_json_string(out, node.Scalar());
      }
      return;
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out += "null";
      return;
  }
}


bool is_topic_safe(std::string_view text) {
  return !text.empty() && text.size() <= 64 && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool is_printable_id(std::string_view text) {
  return !text.empty() && text.size() <= 128 &&
         std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 127; });
}

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::optional<SinkKind> parse_sink_kind(std::string_view text) {
  if (text == "local_log") return SinkKind::local_log;
  if (text == "kafka") return SinkKind::kafka;
  return std::nullopt;
}

std::optional<sinks::FsyncPolicy> parse_fsync(std::string_view text) {
  if (text == "always") return sinks::FsyncPolicy::always;
  if (text == "interval") return sinks::FsyncPolicy::interval;
  if (text == "never") return sinks::FsyncPolicy::never;
  return std::nullopt;
}

std::optional<std::string> parse_log_level(std::string_view text) {
  static constexpr std::string_view levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(std::begin(levels), std::end(levels), text) == std::end(levels)) return std::nullopt;
  return std::string(text);
}

// Reads `name`, which appears in topic names, and checks it is unique among `seen`.
std::string read_unique_name(Section& item, std::set<std::string, std::less<>>& seen, std::string_view what) {
  std::string name;
  item.string("name", name);
  if (!is_topic_safe(name)) {
    throw ConfigError(item.key_path("name"), "must be 1-64 characters of [A-Za-z0-9._-], got '" + name + "'");
  }
  if (!seen.insert(name).second) throw ConfigError(item.key_path("name"), "duplicate " + std::string(what) + " '" + name + "'");
  return name;
}

void check_topic_template(const Section& section, std::string_view key, const std::string& text) {
  if (auto compiled = envelope::TopicTemplate::compile(text); !compiled) {
    throw ConfigError(section.key_path(key), compiled.error().message);
  }
}

// `<listener>.tls`: checks what can be checked without reading the files (the listener loads
// them at start-up and names the key of a file it cannot use).
void read_tls(Section section, TlsListenerConfig& tls) {
  section.integer<std::uint16_t>("port", tls.port, 0, 65535);
  section.string("cert_file", tls.cert_file);
  section.string("key_file", tls.key_file);
  section.string("client_ca_file", tls.client_ca_file);
  section.enumeration("client_auth", tls.client_auth, parse_tls_client_auth, "none, optional, require");
  section.duration("reload_interval_s", tls.reload_interval, 1, 86'400);
  section.duration("handshake_timeout_s", tls.handshake_timeout, 1, 300);
  section.finish();
  if (tls.enabled() && tls.key_file.empty()) throw ConfigError(section.key_path("key_file"), "is required with cert_file");
  if (!tls.enabled() && (!tls.key_file.empty() || !tls.client_ca_file.empty())) {
    throw ConfigError(section.key_path("cert_file"), "is required with key_file or client_ca_file");
  }
  if (tls.client_auth != TlsClientAuth::none && tls.client_ca_file.empty()) {
    throw ConfigError(section.key_path("client_ca_file"), "is required with client_auth optional or require");
  }
}

void read_limits(Section& section, ConnectionLimits& limits) {
  section.integer<std::size_t>("max_connections", limits.max_connections, 0, 10'000'000);
  section.integer<std::size_t>("max_connections_per_source", limits.max_connections_per_source, 0, 10'000'000);
}

void read_http(Section section, HttpListenerConfig& http) {
  section.string("address", http.address);
  section.integer<std::uint16_t>("port", http.port, 0, 65535);
  section.integer<std::size_t>("threads", http.threads, 1, 64);
  section.integer<std::size_t>("max_body_bytes", http.max_body_bytes, 1024, 256u << 20);
  section.duration("idle_timeout_s", http.idle_timeout, 1, 3600);
  section.duration("request_timeout_s", http.request_timeout, 1, 3600);
  section.integer<std::size_t>("max_header_bytes", http.max_header_bytes, 1024, 1u << 20);
  read_limits(section, http.limits);
  read_tls(section.child("tls"), http.tls);
  section.finish();
}

void read_coap(Section section, CoapListenerConfig& coap) {
  section.boolean("enabled", coap.enabled);
  section.string("address", coap.address);
  section.integer<std::uint16_t>("port", coap.port, 0, 65535);
  section.boolean("dtls", coap.dtls);
  section.integer<std::uint16_t>("dtls_port", coap.dtls_port, 0, 65535);
  section.boolean("allow_token_query", coap.allow_token_query);
  section.integer<std::size_t>("max_body_bytes", coap.max_body_bytes, 64, 16u << 20);
  section.duration("piggyback_wait_ms", coap.piggyback_wait, 0, 1'500);
  section.integer<std::size_t>("max_sessions", coap.max_sessions, 1, 1'000'000);
  section.integer<std::size_t>("dedup_max_entries", coap.dedup_max_entries, 16, 10'000'000);
  section.integer<std::size_t>("max_block_transfers", coap.max_block_transfers, 1, 1'000'000);
  section.integer<std::size_t>("block_transfer_memory_bytes", coap.block_transfer_memory_bytes, 64,
                               std::size_t{16} << 30);
  section.duration("block_transfer_timeout_s", coap.block_transfer_timeout, 1, 3600);
  section.integer<std::size_t>("socket_receive_buffer_bytes", coap.socket_receive_buffer_bytes, 0, 1u << 30);
  section.finish();
  if (coap.block_transfer_memory_bytes < coap.max_body_bytes) {
    // Otherwise a body that max_body_bytes allows could never be reassembled.
    throw ConfigError(section.key_path("block_transfer_memory_bytes"), "must be at least coap.max_body_bytes");
  }
  if (coap.enabled && coap.dtls && coap.port != 0 && coap.port == coap.dtls_port) {
    throw ConfigError(section.key_path("dtls_port"), "must differ from coap.port");
  }
}

void read_tracker_listener(Section section, TrackerListenerConfig& tracker) {
  section.boolean("enabled", tracker.enabled);
  section.string("bind", tracker.bind);
  section.integer<std::uint16_t>("tcp_port", tracker.tcp_port, 0, 65535);
  section.integer<std::uint16_t>("udp_port", tracker.udp_port, 0, 65535);
  section.duration("idle_timeout_s", tracker.idle_timeout, 1, 86'400);
  section.integer<std::size_t>("max_frame_bytes", tracker.max_frame_bytes, 64, 16u << 20);
  section.string("tenant", tracker.tenant);
  read_limits(section, tracker.limits);
  section.finish();
  if (!tracker.tenant.empty() && !is_printable_id(tracker.tenant)) {
    throw ConfigError(section.key_path("tenant"), "must be 1-128 printable ASCII characters without spaces");
  }
}

void read_tracker(Section section, TrackerConfig& tracker) {
  read_tracker_listener(section.child("teltonika"), tracker.teltonika);
  read_tracker_listener(section.child("gt06"), tracker.gt06);
  section.finish();
}

void check_mqtt_topic_scheme(const Section& section, std::string_view key, const std::string& text) {
  if (auto compiled = mqtt::TopicScheme::compile(text); !compiled) {
    throw ConfigError(section.key_path(key), compiled.error());
  }
}

void read_mqtt(Section section, MqttListenerConfig& mqtt) {
  section.boolean("enabled", mqtt.enabled);
  section.string("address", mqtt.address);
  section.integer<std::uint16_t>("port", mqtt.port, 0, 65535);
  section.integer<std::size_t>("threads", mqtt.threads, 1, 64);
  section.integer<std::uint32_t>("max_packet_size", mqtt.max_packet_size, 64, 256u << 20);
  section.integer<std::uint16_t>("receive_maximum", mqtt.receive_maximum, 1, 65535);
  section.integer<std::uint16_t>("topic_alias_maximum", mqtt.topic_alias_maximum, 0, 1024);
  section.duration("connect_timeout_s", mqtt.connect_timeout, 1, 3600);
  section.integer<std::uint16_t>("keep_alive_max_s", mqtt.keep_alive_max_s, 1, 65535);
  section.integer<std::uint32_t>("session_expiry_max_s", mqtt.session_expiry_max_s, 0, 7 * 86'400);
  section.string("topic", mqtt.topic);
  check_mqtt_topic_scheme(section, "topic", mqtt.topic);
  section.enumeration("will", mqtt.will, parse_mqtt_will_mode, "publish, refuse");
  read_limits(section, mqtt.limits);
  read_tls(section.child("tls"), mqtt.tls);
  section.finish();
}

std::optional<MqttProtocolVersion> parse_mqtt_version(std::string_view text) {
  if (text == "3.1.1") return MqttProtocolVersion::v311;
  if (text == "5") return MqttProtocolVersion::v5;
  return std::nullopt;
}

// The broker password comes from a file (a mounted secret) or an environment variable, never
// from the config file itself, so the config can live in Git.
std::string read_broker_password(Section& section) {
  if (section.has("password")) {
    throw ConfigError(section.key_path("password"), "inline passwords are not accepted; use password_file or password_env");
  }
  std::string file;
  std::string variable;
  section.string("password_file", file);
  section.string("password_env", variable);
  if (!file.empty() && !variable.empty()) {
    throw ConfigError(section.key_path("password_env"), "give either password_file or password_env, not both");
  }
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) throw ConfigError(section.key_path("password_file"), "cannot read '" + file + "'");
    std::stringstream text;
    text << in.rdbuf();
    std::string password = text.str();
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) password.pop_back();
    return password;
  }
  if (!variable.empty()) {
    const char* value = std::getenv(variable.c_str());
    if (!value) throw ConfigError(section.key_path("password_env"), "environment variable '" + variable + "' is not set");
    return value;
  }
  return {};
}

void read_mqtt_bridge(Section section, MqttBridgeConfig& bridge) {
  section.boolean("enabled", bridge.enabled);
  section.string("broker", bridge.broker);
  static constexpr std::string_view kSchemes[] = {"tcp://", "mqtt://", "ssl://", "mqtts://", "ws://", "wss://"};
  if (std::none_of(std::begin(kSchemes), std::end(kSchemes), [&](std::string_view scheme) {
        return bridge.broker.starts_with(scheme) && bridge.broker.size() > scheme.size();
      })) {
    throw ConfigError(section.key_path("broker"), "must be a URI such as tcp://broker:1883 (tcp, mqtt, ssl, mqtts, ws, "
                                                  "wss), got '" + bridge.broker + "'");
  }
  section.string("client_id_prefix", bridge.client_id_prefix);
  section.enumeration("protocol_version", bridge.protocol_version, parse_mqtt_version, "3.1.1, 5");
  section.string("username", bridge.username);
  bridge.password = read_broker_password(section);
  section.duration("keepalive_s", bridge.keepalive, 5, 3'600);
  section.duration("session_expiry_s", bridge.session_expiry, 60, 4'294'967'295);
  section.integer<std::size_t>("clients", bridge.clients, 1, 64);
  // "<prefix>-<instance_id>-<i>": MQTT 3.1.1 brokers must accept 23 characters; longer ids work
  // on Mosquitto, EMQX, HiveMQ and VerneMQ.
  if (!is_topic_safe(bridge.client_id_prefix)) {
    throw ConfigError(section.key_path("client_id_prefix"), "must be 1-64 characters of [A-Za-z0-9._-]");
  }

  std::set<std::string, std::less<>> seen_filters;
  for (Section item : section.list("subscriptions")) {
    MqttBridgeSubscription& subscription = bridge.subscriptions.emplace_back();
    item.string("filter", subscription.filter);
    if (auto problem = mqtt_bridge::topic_filter_problem(subscription.filter)) {
      throw ConfigError(item.key_path("filter"), *problem + ", got '" + subscription.filter + "'");
    }
    item.integer<int>("qos", subscription.qos, 0, 2);
    item.string("shared_group", subscription.shared_group);
    if (!subscription.shared_group.empty() && !is_topic_safe(subscription.shared_group)) {
      throw ConfigError(item.key_path("shared_group"), "must be 1-64 characters of [A-Za-z0-9._-] (or empty for none)");
    }
    if (!seen_filters.insert(mqtt_bridge::subscription_topic(subscription.shared_group, subscription.filter)).second) {
      throw ConfigError(item.key_path("filter"), "duplicate subscription '" + subscription.filter + "'");
    }
    item.finish();
  }
  for (Section item : section.list("mappings")) {
    MqttBridgeMapping& mapping = bridge.mappings.emplace_back();
    item.string("topic", mapping.topic);
    const auto pattern = mqtt_bridge::TopicPattern::compile(mapping.topic);
    if (!pattern) throw ConfigError(item.key_path("topic"), pattern.error() + ", got '" + mapping.topic + "'");
    item.string("tenant", mapping.tenant);
    if (pattern->captures_tenant() && !mapping.tenant.empty()) {
      throw ConfigError(item.key_path("tenant"), "the topic pattern already names the tenant ({tenant})");
    }
    if (!pattern->captures_tenant() && !is_topic_safe(mapping.tenant)) {
      throw ConfigError(item.key_path("tenant"), "is required (a tenant name) when the topic pattern has no {tenant}");
    }
    item.string("device_type", mapping.device_type);
    item.string("content_type", mapping.content_type);
    if (mapping.content_type.empty()) throw ConfigError(item.key_path("content_type"), "must not be empty");
    item.finish();
  }
  section.finish();
  if (bridge.enabled && bridge.subscriptions.empty()) {
    throw ConfigError(section.key_path("subscriptions"), "needs at least one {filter, qos, shared_group} when enabled");
  }
  if (bridge.enabled && bridge.mappings.empty()) {
    throw ConfigError(section.key_path("mappings"), "needs at least one topic pattern with {device_id} when enabled");
  }
}

void read_admission(Section section, AdmissionConfig& admission) {
  section.integer<std::size_t>("max_inflight_records", admission.max_inflight_records, 1, 100'000'000);
  section.integer<std::size_t>("max_inflight_bytes", admission.max_inflight_bytes, 1024, std::size_t{64} << 30);
  section.duration("retry_after_s", admission.retry_after, 1, 3600);
  section.integer<std::size_t>("device_max_inflight_records", admission.device_max_inflight_records, 1, 100'000'000);
  section.finish();
}

void read_rate(Section& section, RateQuota& rate) {
  section.number("records_per_second", rate.records_per_second, 0, 1e9);
  section.number("burst", rate.burst, 0, 1e9);
  if (rate.burst == 0) rate.burst = rate.records_per_second;
  if (rate.limited() && rate.burst < 1) throw ConfigError(section.key_path("burst"), "must be at least 1 record");
}

// quotas.tenants / quotas.device_types: name → {weight, records_per_second, burst}.
void read_layers(Section& quotas, std::string_view key, std::map<std::string, LayerQuota, std::less<>>& layers) {
  for (auto& [name, item] : quotas.entries(key)) {
    LayerQuota& layer = layers[name];
    item.integer<std::size_t>("weight", layer.weight, 1, 1000);
    read_rate(item, layer.rate);
    item.finish();
  }
}

void read_quotas(Section section, QuotaConfig& quotas) {
  read_layers(section, "tenants", quotas.tenants);
  read_layers(section, "device_types", quotas.device_types);
  Section device = section.child("device");
  read_rate(device, quotas.device);
  device.finish();
  section.finish();
}

// A topic of the gateway's own control records, created by telegate when missing:
// `<prefix>topic`, `<prefix>partitions`, `<prefix>replication_factor`.
void read_control_topic(Section& section, const std::string& prefix, std::string& topic, int& partitions,
                        int& replication_factor) {
  section.string(prefix + "topic", topic);
  if (!is_topic_safe(topic)) {
    throw ConfigError(section.key_path(prefix + "topic"), "must be 1-64 characters of [A-Za-z0-9._-]");
  }
  section.integer<int>(prefix + "partitions", partitions, 1, 1000);
  section.integer<int>(prefix + "replication_factor", replication_factor, 1, 16);
}

void read_dedup(Section section, DedupConfig& dedup) {
  section.integer<std::size_t>("max_entries", dedup.max_entries, 0, 100'000'000);
  section.duration("window_s", dedup.window, 1, 86'400 * 7);
  read_control_topic(section, "journal_", dedup.journal_topic, dedup.journal_partitions,
                     dedup.journal_replication_factor);
  section.boolean("across_replicas", dedup.across_replicas);
  section.finish();
}

void read_decode(Section section, codecs::DecodeLimits& decode) {
  section.integer<std::size_t>("max_records", decode.max_records, 1, 1'000'000);
  section.integer<std::size_t>("max_readings", decode.max_readings, 1, 10'000);
  section.integer<std::size_t>("max_string_bytes", decode.max_string_bytes, 16, 65'536);
  section.finish();
}

void read_validation(Section section, codecs::ValidationLimits& validation) {
  std::chrono::seconds skew = std::chrono::duration_cast<std::chrono::seconds>(validation.max_future_skew);
  std::chrono::seconds age = std::chrono::duration_cast<std::chrono::seconds>(validation.max_age);
  section.duration("max_future_skew_s", skew, 0, 86'400 * 365);
  section.duration("max_age_s", age, 1, std::int64_t{86'400} * 365 * 100);
  validation.max_future_skew = skew;
  validation.max_age = age;
  section.number("max_speed_mps", validation.max_speed_mps, 0, 1e6);
  section.finish();
}

void read_spool(Section section, sinks::SpoolConfig& spool) {
  std::string directory = spool.directory.string();
  section.string("directory", directory);
  if (directory.empty()) throw ConfigError(section.key_path("directory"), "must not be empty");
  spool.directory = directory;
  section.enumeration("fsync", spool.fsync, parse_fsync, "always, interval, never");
  section.duration("fsync_interval_ms", spool.fsync_interval, 1, 60'000);
  section.integer<std::uint64_t>("max_bytes", spool.max_bytes, 1u << 20, std::uint64_t{1} << 44);
  section.integer<std::uint64_t>("segment_bytes", spool.segment_bytes, 1u << 20, std::uint64_t{1} << 40);
  section.integer<std::uint64_t>("replay_batch_bytes", spool.replay_batch_bytes, 1, std::uint64_t{1} << 30);
  read_control_topic(section, "position_", spool.position_topic, spool.position_partitions,
                     spool.position_replication_factor);
  section.finish();
}

void read_sink(Section section, SinkConfig& sink) {
  section.enumeration("type", sink.kind, parse_sink_kind, "local_log, kafka");
  section.string("topic_template", sink.topic_template);
  check_topic_template(section, "topic_template", sink.topic_template);

  Section local_log = section.child("local_log");
  std::string directory = sink.local_log.directory.string();
  local_log.string("directory", directory);
  sink.local_log.directory = directory;
  local_log.enumeration("fsync", sink.local_log.fsync, parse_fsync, "always, interval, never");
  local_log.duration("fsync_interval_ms", sink.local_log.fsync_interval, 1, 60'000);
  local_log.integer<std::uint64_t>("segment_bytes", sink.local_log.segment_bytes, 1u << 20, std::uint64_t{1} << 40);
  local_log.finish();

  Section kafka = section.child("kafka");
  kafka.string("bootstrap_servers", sink.kafka.bootstrap_servers);
  kafka.string("transactional_id_prefix", sink.kafka.transactional_id_prefix);
  kafka.integer<std::size_t>("producers", sink.kafka.producers, 1, 8);
  kafka.integer<std::size_t>("transaction_max_records", sink.kafka.transaction_max_records, 1, 10'000'000);
  kafka.duration("transaction_max_interval_ms", sink.kafka.transaction_max_interval, 1, 60'000);
  if (kafka.has("transaction_min_interval_ms")) {
    kafka.duration("transaction_min_interval_ms", sink.kafka.transaction_min_interval, 1, 60'000);
    if (sink.kafka.transaction_min_interval > sink.kafka.transaction_max_interval) {
      throw ConfigError(kafka.key_path("transaction_min_interval_ms"), "must not exceed transaction_max_interval_ms");
    }
  }
  // Only the maximum given, below the default minimum: the maximum alone decides, as it did.
  sink.kafka.transaction_min_interval = std::min(sink.kafka.transaction_min_interval, sink.kafka.transaction_max_interval);
  kafka.duration("delivery_timeout_ms", sink.kafka.delivery_timeout, 1'000, 3'600'000);
  for (auto& [name, value] : kafka.string_map("librdkafka")) sink.kafka.librdkafka[name] = value;
  // The producer refuses any record above its message.max.bytes at produce time, poisoning the
  // whole transaction; the pipeline refuses such records first, so its limit may not be higher.
  std::size_t producer_limit = SinkConfig::kProducerMessageMaxBytes;
  if (const auto set = sink.kafka.librdkafka.find("message.max.bytes"); set != sink.kafka.librdkafka.end()) {
    const std::string& text = set->second;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), producer_limit);
    if (error != std::errc{} || end != text.data() + text.size()) {
      throw ConfigError(kafka.key_path("librdkafka") + ".message.max.bytes", "must be a whole number of bytes, got '" + text + "'");
    }
  }
  sink.max_record_bytes = producer_limit;
  kafka.integer<std::size_t>("max_record_bytes", sink.max_record_bytes, 1024, 1'000'000'000);
  if (sink.max_record_bytes > producer_limit) {
    throw ConfigError(kafka.key_path("max_record_bytes"),
                      "must not exceed sink.kafka.librdkafka.message.max.bytes (" + std::to_string(producer_limit) +
                          "): the producer refuses larger records");
  }
  if (kafka.has("spool")) read_spool(kafka.child("spool"), sink.spool.emplace());
  kafka.finish();
  if (sink.kind == SinkKind::kafka && sink.kafka.bootstrap_servers.empty()) {
    throw ConfigError(kafka.key_path("bootstrap_servers"), "is required when sink.type is kafka");
  }
  section.finish();
}

std::optional<CatalogStoreKind> parse_catalog_store(std::string_view text) {
  if (text == "auto") return CatalogStoreKind::automatic;
  if (text == "file") return CatalogStoreKind::file;
  if (text == "kafka") return CatalogStoreKind::kafka;
  return std::nullopt;
}

DeviceTypeSample read_sample(Section item) {
  DeviceTypeSample sample;
  item.string("name", sample.name);
  item.string("content_type", sample.content_type);
  item.string("body", sample.body);
  if (sample.content_type.empty()) throw ConfigError(item.key_path("content_type"), "is required");
  if (sample.body.empty()) throw ConfigError(item.key_path("body"), "is required (the payload as a string)");
  if (const YAML::Node expect = item.take("expect"); expect && !expect.IsNull()) {
    if (!expect.IsSequence()) throw ConfigError(item.key_path("expect"), "must be a list of expected records");
    for (std::size_t i = 0; i < expect.size(); ++i) {
      const std::string key = item.key_path("expect") + "[" + std::to_string(i) + "]";
      if (!expect[i].IsMap()) throw ConfigError(key, "must be a mapping of canonical field to value");
      std::map<std::string, std::string>& fields = sample.expect.emplace_back();
      for (const auto& field : expect[i]) {
        const std::string name = field.first.Scalar();
        if (field.second.IsScalar()) {
          fields[name] = field.second.Scalar();
        } else if (field.second.IsMap() && name == "readings") {
          for (const auto& reading : field.second) fields["readings." + reading.first.Scalar()] = reading.second.Scalar();
        } else {
          throw ConfigError(key + "." + name, "must be a value");
        }
      }
    }
  }
  item.integer<std::size_t>("expect_rejected", sample.expect_rejected, 0, 1'000'000);
  item.finish();
  return sample;
}

void read_admin(Section section, AdminConfig& admin) {
  section.string("token_sha256", admin.token_sha256);
  if (!admin.token_sha256.empty() && !is_sha256_hex(admin.token_sha256)) {
    throw ConfigError(section.key_path("token_sha256"),
                      "must be 64 lower-case hex digits (telegate hash-token <token> prints it)");
  }
  section.finish();
}

void read_catalog(Section section, GatewayConfig& config) {
  CatalogConfig& catalog = config.catalog;
  section.enumeration("store", catalog.store, parse_catalog_store, "auto, file, kafka");
  std::string file = catalog.file.string();
  section.string("file", file);
  catalog.file = file;
  section.string("kafka_topic", catalog.kafka_topic);
  if (!is_topic_safe(catalog.kafka_topic)) {
    throw ConfigError(section.key_path("kafka_topic"), "must be 1-64 characters of [A-Za-z0-9._-]");
  }
  section.integer<std::int16_t>("kafka_replication_factor", catalog.kafka_replication_factor, 1, 16);
  section.finish();
  if (catalog.store == CatalogStoreKind::automatic) {
    catalog.store = config.sink.kind == SinkKind::kafka ? CatalogStoreKind::kafka : CatalogStoreKind::file;
  }
  if (catalog.store == CatalogStoreKind::kafka && config.sink.kafka.bootstrap_servers.empty()) {
    throw ConfigError(section.key_path("store"), "kafka needs sink.kafka.bootstrap_servers");
  }
}

void read_device_types(Section& root, GatewayConfig& config) {
  codecs::CodecRegistry codecs;
  codecs::register_builtin_codecs(codecs);
  std::set<std::string, std::less<>> seen;
  std::map<std::string, std::string, std::less<>> http_paths, coap_paths;  // path → device type
  auto claim = [](std::map<std::string, std::string, std::less<>>& paths, const std::string& path,
                  const std::string& type, const std::string& key) {
    if (const auto [taken, inserted] = paths.emplace(path, type); !inserted) {
      throw ConfigError(key, path + " is already served by device type " + taken->second);
    }
  };
  for (Section item : root.list("device_types")) {
    DeviceTypeDefinition type = read_device_type(item, codecs, config.decode);
    if (!seen.insert(type.name).second) {
      throw ConfigError(item.key_path("name"), "duplicate device type '" + type.name + "'");
    }
    if (type.http) claim(http_paths, type.http->path, type.name, item.key_path("http.path"));
    if (type.coap) claim(coap_paths, type.coap->path, type.name, item.key_path("coap.path"));
    config.device_types.push_back(std::move(type));
  }
}

void read_tenants(Section& root, GatewayConfig& config) {
  std::set<std::string, std::less<>> tenant_names;
  std::set<std::string, std::less<>> token_digests;
  for (Section item : root.list("tenants")) {
    TenantConfig tenant;
    tenant.name = read_unique_name(item, tenant_names, "tenant");
    std::set<std::string, std::less<>> device_ids;
    for (Section device_item : item.list("devices")) {
      DeviceConfig device = read_device(device_item);
      if (!device_ids.insert(device.id).second) {
        throw ConfigError(device_item.key_path("id"), "duplicate device '" + device.id + "' in tenant '" + tenant.name + "'");
      }
      const bool type_known = std::any_of(config.device_types.begin(), config.device_types.end(),
                                          [&](const DeviceTypeDefinition& type) { return type.name == device.device_type; });
      if (!type_known) {
        throw ConfigError(device_item.key_path("device_type"), "unknown device type '" + device.device_type + "'");
      }
      if (!token_digests.insert(device.token_sha256).second) {
        throw ConfigError(device_item.key_path("token_sha256"), "the same token is already given to another device");
      }
      tenant.devices.push_back(std::move(device));
    }
    item.finish();
    config.tenants.push_back(std::move(tenant));
  }
}

// Applies "a.b.c=value" to the YAML tree. Under sink.kafka.librdkafka the rest of the path is
// one librdkafka property name, which itself contains dots (e.g. linger.ms).
void apply_override(YAML::Node& root, const std::string& path, const std::string& value) {
  static const std::string kPassThrough = "sink.kafka.librdkafka.";
  std::vector<std::string> parts;
  std::string_view rest = path;
  if (path.starts_with(kPassThrough) && path.size() > kPassThrough.size()) {
    parts = {"sink", "kafka", "librdkafka", path.substr(kPassThrough.size())};
    rest = {};
  }
  while (!rest.empty()) {
    const std::size_t dot = rest.find('.');
    parts.emplace_back(rest.substr(0, dot));
    rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
  }
  if (parts.empty() || std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    throw ConfigError(path, "override key must be a dotted path such as http.port");
  }
  std::vector<YAML::Node> chain{root};
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (next && !next.IsMap() && !next.IsNull()) throw ConfigError(path, "'" + parts[i] + "' is not a mapping");
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
}

}  // namespace

std::optional<MqttWillMode> parse_mqtt_will_mode(std::string_view text) noexcept {
  if (text == "publish") return MqttWillMode::publish;
  if (text == "refuse") return MqttWillMode::refuse;
  return std::nullopt;
}

std::optional<TlsClientAuth> parse_tls_client_auth(std::string_view text) noexcept {
  if (text == "none") return TlsClientAuth::none;
  if (text == "optional") return TlsClientAuth::optional;
  if (text == "require") return TlsClientAuth::require;
  return std::nullopt;
}

std::optional<HttpAuth> parse_http_auth(std::string_view text) noexcept {
  if (text == "bearer") return HttpAuth::bearer;
  if (text == "basic") return HttpAuth::basic;
  if (text == "path_token") return HttpAuth::path_token;
  return std::nullopt;
}

DeviceTypeDefinition read_device_type(codecs::OptionReader& item, const codecs::CodecRegistry& codecs,
                                      const codecs::DecodeLimits& limits) {
  DeviceTypeDefinition type;
  std::set<std::string, std::less<>> unused;
  type.name = read_unique_name(item, unused, "device type");
  item.string("description", type.description);
  if (const YAML::Node tenants = item.take("tenants"); tenants && !tenants.IsNull()) {
    if (!tenants.IsSequence()) throw ConfigError(item.key_path("tenants"), "must be a list of tenant names");
    for (std::size_t i = 0; i < tenants.size(); ++i) {
      const std::string key = item.key_path("tenants") + "[" + std::to_string(i) + "]";
      if (!tenants[i].IsScalar() || !is_topic_safe(tenants[i].Scalar())) throw ConfigError(key, "must be a tenant name");
      type.tenants.push_back(tenants[i].Scalar());
    }
  }
  item.string("codec", type.codec);
  if (!codecs.contains(type.codec)) {
    std::string known;
    for (const auto& name : codecs.names()) known += (known.empty() ? "" : ", ") + name;
    throw ConfigError(item.key_path("codec"), "unknown codec '" + type.codec + "' (known: " + known + ")");
  }
  type.codec_options = YAML::Clone(item.take("codec_options"));
  Section options(type.codec_options, item.key_path("codec_options"));
  (void)codecs.compile(type.codec, options, limits);  // throws naming the option
  item.enumeration("envelope_format", type.envelope_format, envelope::parse_format, "protobuf, json, cloudevents");
  item.string("topic_template", type.topic_template);
  if (!type.topic_template.empty()) check_topic_template(item, "topic_template", type.topic_template);
  if (item.has("http")) {
    Section http = item.child("http");
    HttpRoute& route = type.http.emplace();
    http.string("path", route.path);
    if (route.path.size() < 2 || route.path.front() != '/' || route.path.back() == '/' ||
        route.path.find_first_of("?# ") != std::string::npos || route.path.starts_with("/admin") ||
        route.path == "/v1/telemetry" || route.path == "/metrics" || route.path == "/healthz" || route.path == "/readyz") {
      throw ConfigError(http.key_path("path"), "must be a path such as /osmand, not ending in / and not one of "
                                               "telegate's own (/v1/telemetry, /admin…, /metrics, /healthz, /readyz)");
    }
    http.enumeration("auth", route.auth, parse_http_auth, "bearer, basic, path_token");
    http.finish();
  }
  if (item.has("coap")) {
    Section coap = item.child("coap");
    CoapRoute& route = type.coap.emplace();
    coap.string("path", route.path);
    if (route.path.size() < 2 || route.path.front() != '/' || route.path.back() == '/' ||
        route.path.find_first_of("?# ") != std::string::npos || route.path.find("//") != std::string::npos ||
        route.path == "/v1/telemetry" || route.path.starts_with("/.well-known")) {
      throw ConfigError(coap.key_path("path"), "must be a path such as /sensors/env, not ending in / and not "
                                               "telegate's own /v1/telemetry or /.well-known…");
    }
    coap.finish();
  }
  if (item.has("mqtt")) {
    Section mqtt = item.child("mqtt");
    MqttRoute& route = type.mqtt.emplace();
    mqtt.string("topic", route.topic);
    if (route.topic.empty()) throw ConfigError(mqtt.key_path("topic"), "is required (e.g. owntracks/+/{device_id})");
    check_mqtt_topic_scheme(mqtt, "topic", route.topic);
    mqtt.string("content_type", route.content_type);
    mqtt.finish();
  }
  if (const YAML::Node types = item.take("message_types"); types) {
    if (!types.IsSequence()) throw ConfigError(item.key_path("message_types"), "must be a list");
    for (std::size_t i = 0; i < types.size(); ++i) {
      const auto parsed = types[i].IsScalar() ? codecs::parse_message_type(types[i].Scalar()) : std::nullopt;
      if (!parsed) {
        throw ConfigError(item.key_path("message_types") + "[" + std::to_string(i) + "]", "must be location or sensor");
      }
      type.message_types.push_back(*parsed);
    }
  }
  if (item.has("validation")) read_validation(item.child("validation"), type.validation.emplace());
  for (Section sample : item.list("samples")) type.samples.push_back(read_sample(sample));
  item.finish();
  append_yaml_as_json(type.source_json, item.node());
  return type;
}

DeviceConfig read_device(codecs::OptionReader& item) {
  DeviceConfig device;
  item.string("id", device.id);
  item.string("device_type", device.device_type);
  item.string("token_sha256", device.token_sha256);
  item.finish();
  if (!is_printable_id(device.id)) {
    throw ConfigError(item.key_path("id"), "must be 1-128 printable ASCII characters without spaces");
  }
  if (!is_sha256_hex(device.token_sha256)) {
    throw ConfigError(item.key_path("token_sha256"),
                      "must be 64 lower-case hex digits (telegate hash-token <token> prints it)");
  }
  return device;
}

std::string yaml_to_json(const YAML::Node& node) {
  std::string out;
  append_yaml_as_json(out, node);
  return out;
}

GatewayConfig parse_config(const std::string& yaml_text,
                           const std::vector<std::pair<std::string, std::string>>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text.empty() ? std::string(kEmbeddedDefault) : yaml_text);
  } catch (const YAML::Exception& error) {
    throw ConfigError("(file)", "not valid YAML at line " + std::to_string(error.mark.line + 1) + ", column " +
                                    std::to_string(error.mark.column + 1) + ": " + error.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const auto& [key, value] : overrides) apply_override(root, key, value);

  GatewayConfig config;
  Section top(root, "");
  top.string("instance_id", config.instance_id);
  if (!is_topic_safe(config.instance_id)) {
    throw ConfigError("instance_id", "must be 1-64 characters of [A-Za-z0-9._-] (it names Kafka transactional ids)");
  }
  top.enumeration("log_level", config.log_level, parse_log_level, "trace, debug, info, warn, error, critical, off");
  read_http(top.child("http"), config.http);
  read_coap(top.child("coap"), config.coap);
  read_mqtt(top.child("mqtt"), config.mqtt);
  read_mqtt_bridge(top.child("mqtt_bridge"), config.mqtt_bridge);
  read_tracker(top.child("tracker"), config.tracker);
  read_admission(top.child("admission"), config.admission);
  read_quotas(top.child("quotas"), config.quotas);
  read_dedup(top.child("dedup"), config.dedup);
  read_decode(top.child("decode"), config.decode);
  read_validation(top.child("validation"), config.validation);
  read_sink(top.child("sink"), config.sink);
  read_admin(top.child("admin"), config.admin);
  read_catalog(top.child("catalog"), config);
  read_device_types(top, config);
  read_tenants(top, config);
  top.finish();
  // Stable per instance unless set: a restarted instance then fences its previous incarnation.
  const YAML::Node& read_only = root;
  const YAML::Node sink = read_only["sink"];
  const YAML::Node kafka = sink && sink.IsMap() ? sink["kafka"] : YAML::Node();
  if (!kafka || !kafka.IsMap() || !kafka["transactional_id_prefix"]) {
    config.sink.kafka.transactional_id_prefix = "telegate-" + config.instance_id;
  }
  return config;
}

GatewayConfig load_config(const std::string& path,
                          const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::ifstream file(path);
  if (!file) throw ConfigError("(file)", "cannot read config file '" + path + "'");
  std::stringstream text;
  text << file.rdbuf();
  const std::string yaml = text.str();
  if (yaml.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw ConfigError("(file)", "config file '" + path + "' is empty");
  }
  return parse_config(yaml, overrides);
}

}  // namespace telegate::gateway
