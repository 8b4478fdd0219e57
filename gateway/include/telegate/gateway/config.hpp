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

namespace telegate::gateway {

using ConfigError = codecs::OptionError;

struct HttpListenerConfig {
  std::string address = "0.0.0.0";
  std::uint16_t port = 8080;
  std::size_t threads = 1;  // one io_context per thread, SO_REUSEPORT acceptors
  std::size_t max_body_bytes = 4u << 20;
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds request_timeout{30};  // whole request read, including a slow body
};

struct AdmissionConfig {
  std::size_t max_inflight_records = 200'000;
  std::size_t max_inflight_bytes = 256u << 20;
  std::chrono::seconds retry_after{1};  // advertised in 503 Retry-After when the budget is full
};

struct DeviceTypeConfig {
  std::string name;
  std::string codec = "json";
  envelope::Format envelope_format = envelope::Format::protobuf;
  std::string topic_template;  // empty → sink's default template
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

struct SinkConfig {
  SinkKind kind = SinkKind::local_log;
  std::string topic_template = "telemetry.{tenant}.{type}";
  sinks::LocalLogConfig local_log;
  sinks::KafkaSinkConfig kafka;
};

struct GatewayConfig {
  std::string instance_id = "telegate-0";
  std::string log_level = "info";
  HttpListenerConfig http;
  AdmissionConfig admission;
  codecs::DecodeLimits decode;
  codecs::ValidationLimits validation;
  SinkConfig sink;
  std::vector<DeviceTypeConfig> device_types;
  std::vector<TenantConfig> tenants;
};

// Parses `yaml_text` (empty → the embedded defaults) then applies `overrides` ("a.b=c").
GatewayConfig parse_config(const std::string& yaml_text,
                           const std::vector<std::pair<std::string, std::string>>& overrides = {});
GatewayConfig load_config(const std::string& path,
                          const std::vector<std::pair<std::string, std::string>>& overrides = {});

}  // namespace telegate::gateway
