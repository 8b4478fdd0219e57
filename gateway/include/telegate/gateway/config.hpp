// Gateway configuration: one YAML file plus `--set key.path=value` overrides.
//
// Loaded and validated completely at start-up; an unknown key or a bad value throws
// ConfigError naming the key (e.g. "sink.kafka.producers: must be between 1 and 8, got 0").
// After start-up the structs are read-only and shared by every thread. Reference:
// docs/configuration.md and config/telegate.example.yaml.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/options.hpp"
#include "telegate/codecs/validate.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/sinks/kafka_sink.hpp"
#include "telegate/sinks/local_log.hpp"
#include "telegate/sinks/spool.hpp"

namespace telegate::gateway {

using ConfigError = codecs::OptionError;

// TLS on a stream listener's second port (docs/security.md). Off while cert_file is empty.
enum class TlsClientAuth : std::uint8_t {
  none = 1,  // no client certificate asked for
  optional,  // asked for; a verified one whose CN names a device authenticates it
  require,   // the handshake fails without a certificate the client CA verifies
};
std::optional<TlsClientAuth> parse_tls_client_auth(std::string_view text) noexcept;

struct TlsListenerConfig {
  explicit TlsListenerConfig(std::uint16_t default_port) : port(default_port) {}
  bool enabled() const noexcept { return !cert_file.empty(); }
  std::uint16_t port = 0;          // the TLS port, beside the plain one (listener default: 8443 / 8883)
  std::string cert_file;           // PEM chain, leaf first
  std::string key_file;            // PEM private key
  std::string client_ca_file;      // PEM CA(s) that sign device certificates (client_auth optional/require)
  TlsClientAuth client_auth = TlsClientAuth::none;
  std::chrono::seconds reload_interval{30};    // files polled for changes; a change loads a new context
  std::chrono::seconds handshake_timeout{10};  // from TCP accept to a finished handshake
};

// Per-listener connection caps against one noisy or hostile source (docs/security.md).
struct ConnectionLimits {
  explicit ConnectionLimits(std::size_t default_max) : max_connections(default_max) {}
  std::size_t max_connections = 0;             // open at once on the listener, all ports; 0 = unlimited
  std::size_t max_connections_per_source = 256;  // open at once from one IP address; 0 = unlimited
};

struct HttpListenerConfig {
  std::string address = "0.0.0.0";
  std::uint16_t port = 8080;
  std::size_t threads = 1;  // one io_context per thread, SO_REUSEPORT acceptors
  std::size_t max_body_bytes = 4u << 20;
  std::size_t max_header_bytes = 16u << 10;  // request line + headers; beyond: 431
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds request_timeout{30};  // whole request read from its first byte, including a slow body
  TlsListenerConfig tls{8443};
  ConnectionLimits limits{10'000};
};

// CoAP (RFC 7252) over UDP and DTLS (gateway/coap/README.md). Off by default.
struct CoapListenerConfig {
  bool enabled = false;
  std::string address = "0.0.0.0";
  std::uint16_t port = 5683;       // plain UDP; 0 disables the plain endpoint when DTLS is on
  bool dtls = false;               // DTLS-PSK endpoint (PSK identity = device id, key = SHA-256 of the token)
  std::uint16_t dtls_port = 5684;
  bool allow_token_query = true;   // plain UDP: ?t=<device token> (Uri-Query) authenticates
  std::size_t max_body_bytes = 64u << 10;  // after Block1 reassembly; refused at the block that crosses it
  // Block1 reassembly is telegate's own (libcoap 4.3.1 would hold any body a client announces):
  // at most this many transfers at once, holding at most this many bytes together; beyond, 5.03.
  std::size_t max_block_transfers = 256;
  std::size_t block_transfer_memory_bytes = 16u << 20;
  std::chrono::seconds block_transfer_timeout{60};  // idle transfers are dropped (next block: 4.08)
  // SO_RCVBUF of the UDP/DTLS sockets: a commit answers hundreds of devices at once, and their
  // ACKs and next requests arrive as one burst (the kernel caps it at net.core.rmem_max).
  std::size_t socket_receive_buffer_bytes = 4u << 20;
  // A confirmable request waits this long for the sink before the empty ACK goes out (then a
  // separate response follows); cut short as soon as another datagram is waiting.
  std::chrono::milliseconds piggyback_wait{300};
  std::size_t max_sessions = 10'000;        // remote endpoints remembered (idle sessions)
  std::size_t dedup_max_entries = 100'000;  // recent (endpoint, message id) pairs remembered
};

// MQTT 3.1.1 / 5.0 over TCP (gateway/mqtt/README.md). Off by default.
enum class MqttWillMode : std::uint8_t {
  publish = 1,  // an abnormal disconnect sends the Will through the pipeline as the device's message
  refuse,       // a CONNECT carrying a Will is refused (CONNACK 0x87 / 3.1.1 0x05)
};
std::optional<MqttWillMode> parse_mqtt_will_mode(std::string_view text) noexcept;

struct MqttListenerConfig {
  bool enabled = false;
  std::string address = "0.0.0.0";
  std::uint16_t port = 1883;
  std::size_t threads = 1;                      // one io_context per thread, SO_REUSEPORT acceptors
  std::uint32_t max_packet_size = 256u << 10;   // ours: FrameReader limit, announced to v5 clients
  std::uint16_t receive_maximum = 64;           // QoS 1/2 PUBLISHes a client may have unacknowledged
  std::uint16_t topic_alias_maximum = 16;       // announced to v5 clients; 0 = no aliases
  std::chrono::seconds connect_timeout{10};     // from TCP accept to CONNECT
  std::uint16_t keep_alive_max_s = 1200;        // larger or 0 (off) from a client is cut to this
  std::uint32_t session_expiry_max_s = 3600;    // clean_start=false state (QoS 2 ids) kept at most this long
  std::string topic = "{tenant}/{device_id}/{type}";  // the default topic scheme
  MqttWillMode will = MqttWillMode::publish;
  TlsListenerConfig tls{8883};
  ConnectionLimits limits{100'000};
};

// MQTT bridge (gateway/mqtt_bridge/README.md): telegate subscribes to an existing broker and
// feeds what arrives into the pipeline. Off by default.
struct MqttBridgeSubscription {
  std::string filter;                     // e.g. "devices/+/+/telemetry"
  int qos = 1;                            // the subscription's maximum QoS
  std::string shared_group = "telegate";  // "$share/<group>/<filter>"; empty: a plain subscription
};

// Topic → device: the first mapping whose pattern matches a message's topic names its device.
struct MqttBridgeMapping {
  std::string topic;         // pattern: "{tenant}/{device_id}/{type}", "owntracks/{user}/{device_id}"
  std::string tenant;        // fixed tenant when the pattern has no {tenant}
  std::string device_type;   // optional: the provisioned device must be of this type
  std::string content_type = "application/json";  // unless the message has an MQTT 5 Content Type
};

enum class MqttProtocolVersion : std::uint8_t { v311 = 4, v5 = 5 };

struct MqttBridgeConfig {
  bool enabled = false;
  std::string broker = "tcp://127.0.0.1:1883";  // tcp://, mqtt://, ssl://, mqtts://, ws://, wss://
  std::string client_id_prefix = "telegate";    // client i is "<prefix>-<instance_id>-<i>"
  MqttProtocolVersion protocol_version = MqttProtocolVersion::v5;
  std::string username;
  std::string password;  // read from password_file or the password_env variable; never inline
  std::chrono::seconds keepalive{30};
  std::chrono::seconds session_expiry{7 * 86'400};  // MQTT 5; 3.1.1 sessions live until the broker drops them
  std::size_t clients = 4;  // connections per replica in the shared group
  std::vector<MqttBridgeSubscription> subscriptions;
  std::vector<MqttBridgeMapping> mappings;
};

// One binary vehicle-tracker listener, `tracker.<protocol>` (gateway/tracker/README.md). Off by
// default. Devices are identified by the IMEI of their login (TCP) or of each datagram (UDP),
// which must be a provisioned device id.
struct TrackerListenerConfig {
  explicit TrackerListenerConfig(std::uint16_t default_port) : tcp_port(default_port) {}
  bool enabled = false;
  std::string bind = "0.0.0.0";
  std::uint16_t tcp_port = 0;
  std::uint16_t udp_port = 0;                // 0: no UDP socket
  std::chrono::seconds idle_timeout{600};    // trackers ping rarely: minutes between frames are normal
  std::size_t max_frame_bytes = 64u << 10;   // a length field beyond this closes the connection
  std::string tenant;                        // set: IMEIs are looked up in this tenant only
  ConnectionLimits limits{100'000};
};

// tracker.*: one section per protocol; a new protocol adds its member here.
struct TrackerConfig {
  TrackerListenerConfig teltonika{5027};
  TrackerListenerConfig gt06{5023};
};

struct AdmissionConfig {
  std::size_t max_inflight_records = 200'000;
  std::size_t max_inflight_bytes = 256u << 20;
  std::chrono::seconds retry_after{1};  // advertised in 503 Retry-After when the budget is full
  // One device may hold at most this many records in flight, contended or not: a device looping
  // on a bug cannot take a tenant's whole share (docs/reliability.md, Backpressure).
  std::size_t device_max_inflight_records = 10'000;
};

// A token bucket: records_per_second refill, at most `burst` saved up. 0 records_per_second: no
// rate quota.
struct RateQuota {
  double records_per_second = 0;
  double burst = 0;  // default: one second's worth
  bool limited() const noexcept { return records_per_second > 0; }
};

// One layer of the quota hierarchy (a tenant, or a device type inside each tenant).
struct LayerQuota {
  std::size_t weight = 1;  // its fair share of the in-flight budget relative to its siblings
  RateQuota rate;
};

// quotas: (docs/configuration.md). Unlisted tenants and device types get weight 1 and no rate
// quota; `device` applies to every device by itself.
struct QuotaConfig {
  std::map<std::string, LayerQuota, std::less<>> tenants;
  std::map<std::string, LayerQuota, std::less<>> device_types;  // per tenant × device type
  RateQuota device;
  const LayerQuota& tenant(std::string_view name) const noexcept { return find(tenants, name); }
  const LayerQuota& device_type(std::string_view name) const noexcept { return find(device_types, name); }

 private:
  static const LayerQuota& find(const std::map<std::string, LayerQuota, std::less<>>& layers, std::string_view name) noexcept {
    static const LayerQuota unlisted;
    const auto found = layers.find(name);
    return found == layers.end() ? unlisted : found->second;
  }
};

// How devices of a type reach telegate over HTTP besides POST /v1/telemetry (bearer token).
enum class HttpAuth : std::uint8_t {
  bearer = 1,  // Authorization: Bearer <token>
  basic,       // Authorization: Basic (user = device id, password = token), as OwnTracks sends
  path_token,  // <path>/<token>, for apps that can only be given a URL (Traccar Client, GPSLogger)
};
std::optional<HttpAuth> parse_http_auth(std::string_view text) noexcept;

// How devices of a type reach telegate over CoAP besides /v1/telemetry.
struct CoapRoute {
  std::string path;  // e.g. /sensors/env; POST or PUT
};

// How devices of a type publish over MQTT when not on the gateway's default topic scheme
// (e.g. OwnTracks: "owntracks/+/{device_id}").
struct MqttRoute {
  std::string topic;         // topic scheme; must contain {device_id}
  std::string content_type;  // when the client sends no Content Type; empty: the codec's first
};

struct HttpRoute {
  std::string path;  // e.g. /osmand; GET reads the query string as a form body
  HttpAuth auth = HttpAuth::bearer;
};

// A payload stored with a device-type definition and what it must decode to. Samples run when
// the definition is uploaded; one that fails refuses the upload.
// De-duplication of device retries by (tenant, device, msg_id): docs/reliability.md.
struct DedupConfig {
  std::size_t max_entries = 1'000'000;  // 0: off
  std::chrono::seconds window{600};
  // With the Kafka sink, the keys of each committed batch go to this topic in the same
  // transaction, and a restarted instance rebuilds its window from its own key.
  std::string journal_topic = "_telegate_dedup";
  int journal_partitions = 12;
  int journal_replication_factor = 1;
  // Also follow the other replicas' journals, so that a retry sent to another replica after
  // the first copy committed is caught too. Every replica then holds the whole fleet's keys:
  // size max_entries for the fleet's rate, not one replica's (docs/reliability.md).
  bool across_replicas = false;
};

struct DeviceTypeSample {
  std::string name;
  std::string content_type;
  std::string body;
  // Expected records in order, each a map of canonical field → value as text ("lat" → "52.52",
  // "time" → "1714564800000" or RFC 3339, "readings.temperature" → "21.5"); only the fields
  // listed are compared.
  std::vector<std::map<std::string, std::string>> expect;
  std::size_t expect_rejected = 0;
};

// A device type: the onboarding unit (docs/onboarding.md). Read from the config file or from
// the admin API with the same reader, so both refuse the same mistakes with the same words.
struct DeviceTypeDefinition {
  std::string name;
  std::string description;
  std::vector<std::string> tenants;  // who may own devices of this type; empty: any tenant
  std::string codec = "json";
  YAML::Node codec_options;          // compiled by the catalog into a codecs::CodecPlan
  envelope::Format envelope_format = envelope::Format::protobuf;
  std::string topic_template;        // empty → sink's default template
  std::optional<HttpRoute> http;
  std::optional<CoapRoute> coap;
  std::optional<MqttRoute> mqtt;
  std::vector<codecs::MessageType> message_types;  // produced; empty: any
  std::optional<codecs::ValidationLimits> validation;  // overrides the gateway's
  std::vector<DeviceTypeSample> samples;
  std::string source_json;  // the whole definition as JSON: what the API shows and the store keeps
};

struct DeviceConfig {
  std::string id;
  std::string device_type;
  std::string token_sha256;  // hex SHA-256 of the bearer token; plaintext is never stored
};

struct TenantConfig {
  std::string name;
  std::vector<DeviceConfig> devices;
};

enum class SinkKind : std::uint8_t { local_log = 1, kafka };

// The admin API (/admin/v1/…): off unless a token is configured.
struct AdminConfig {
  std::string token_sha256;  // hex SHA-256 of the admin bearer token
};

// Where device types and devices created through the admin API are kept, so that every
// replica sees the same definitions: a compacted Kafka topic, or a local file.
enum class CatalogStoreKind : std::uint8_t { automatic = 1, file, kafka };
struct CatalogConfig {
  CatalogStoreKind store = CatalogStoreKind::automatic;  // kafka when sink.type is kafka
  std::filesystem::path file = "telegate-data/catalog.jsonl";
  std::string kafka_topic = "_telegate_catalog";
  std::int16_t kafka_replication_factor = 1;
};

struct SinkConfig {
  SinkKind kind = SinkKind::local_log;
  std::string topic_template = "telemetry.{tenant}.{type}";
  sinks::LocalLogConfig local_log;
  sinks::KafkaSinkConfig kafka;
  // sink.kafka.max_record_bytes: the pipeline refuses a request holding a record larger than this
  // (as the Kafka producer measures it) before producing it, as a permanent 413 — produced, the
  // record would poison its transaction. At most librdkafka's message.max.bytes (its default).
  std::size_t max_record_bytes = kProducerMessageMaxBytes;
  static constexpr std::size_t kProducerMessageMaxBytes = 1'000'000;  // librdkafka's default
  // sink.kafka.spool: absent → push-back while Kafka is out (503s); present → spool and replay.
  std::optional<sinks::SpoolConfig> spool;
};

struct GatewayConfig {
  std::string instance_id = "telegate-0";
  std::string log_level = "info";
  HttpListenerConfig http;
  CoapListenerConfig coap;
  MqttListenerConfig mqtt;
  MqttBridgeConfig mqtt_bridge;
  TrackerConfig tracker;
  AdmissionConfig admission;
  QuotaConfig quotas;
  DedupConfig dedup;
  codecs::DecodeLimits decode;
  codecs::ValidationLimits validation;
  SinkConfig sink;
  AdminConfig admin;
  CatalogConfig catalog;
  std::vector<DeviceTypeDefinition> device_types;
  std::vector<TenantConfig> tenants;
};

// Reads one device-type definition (a config file list item or an admin API body) and checks
// everything that needs no other definition: codec options compile, topics are valid. Throws
// OptionError naming the key.
DeviceTypeDefinition read_device_type(codecs::OptionReader& item, const codecs::CodecRegistry& codecs,
                                      const codecs::DecodeLimits& limits);
// A YAML (or JSON) tree as JSON text; plain scalars that read as numbers or booleans stay bare.
std::string yaml_to_json(const YAML::Node& node);
// Same checks for a device's fields; the device type is checked by the caller.
DeviceConfig read_device(codecs::OptionReader& item);

// Parses `yaml_text` (empty → the embedded defaults) then applies `overrides` ("a.b=c").
GatewayConfig parse_config(const std::string& yaml_text,
                           const std::vector<std::pair<std::string, std::string>>& overrides = {});
GatewayConfig load_config(const std::string& path,
                          const std::vector<std::pair<std::string, std::string>>& overrides = {});

}  // namespace telegate::gateway
