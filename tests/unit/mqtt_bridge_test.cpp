// The MQTT bridge's Paho-free parts: topic → device patterns, subscription filters, the
// (tenant, device id) lookup it trusts, and the config section's errors, each naming its key.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "mqtt_bridge/topic_pattern.hpp"
#include "telegate/gateway/auth.hpp"
#include "telegate/gateway/config.hpp"

using namespace telegate::gateway;
using mqtt_bridge::TopicPattern;

namespace {

std::string match_text(const TopicPattern& pattern, std::string_view topic) {
  const auto match = pattern.match(topic);
  if (!match) return "-";
  return std::string(match->tenant) + "|" + std::string(match->device_id);
}

TopicPattern compiled(std::string_view text) {
  auto pattern = TopicPattern::compile(text);
  REQUIRE_MESSAGE(pattern.has_value(), text);
  return *pattern;
}

const std::string kDevices = R"(
device_types:
  - name: tracker
tenants:
  - name: acme
    devices:
      - id: truck-1
        device_type: tracker
        token_sha256: 7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c
)";

std::string bridge_yaml(const std::string& body) { return kDevices + "mqtt_bridge:\n" + body; }

const std::string kBridge = R"(  enabled: true
  broker: tcp://127.0.0.1:1883
  subscriptions:
    - {filter: "+/+/telemetry", qos: 1}
  mappings:
    - topic: "{tenant}/{device_id}/telemetry"
)";

std::string error_key(const std::string& yaml) {
  try {
    parse_config(yaml);
  } catch (const ConfigError& error) {
    return error.key();
  }
  return "";
}

std::string error_text(const std::string& yaml) {
  try {
    parse_config(yaml);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

}  // namespace

TEST_CASE("topic patterns capture tenant and device id, level by level") {
  const TopicPattern full = compiled("{tenant}/{device_id}/{type}");
  CHECK(full.captures_tenant());
  CHECK(match_text(full, "acme/truck-1/location") == "acme|truck-1");
  CHECK(match_text(full, "acme/truck-1") == "-");                // too few levels
  CHECK(match_text(full, "acme/truck-1/location/x") == "-");     // too many
  CHECK(match_text(full, "acme//location") == "-");              // empty device id
  CHECK(match_text(full, "/truck-1/location") == "-");           // empty tenant
  CHECK(match_text(full, "") == "-");

  const TopicPattern owntracks = compiled("owntracks/{user}/{device_id}");
  CHECK_FALSE(owntracks.captures_tenant());
  CHECK(match_text(owntracks, "owntracks/jane/phone") == "|phone");
  CHECK(match_text(owntracks, "owntrack/jane/phone") == "-");
  CHECK(match_text(owntracks, "owntracks/jane/phone/event") == "-");

  const TopicPattern rest = compiled("fleet/+/{device_id}/#");
  CHECK(match_text(rest, "fleet/eu/t1") == "|t1");  // '#' also matches the parent level
  CHECK(match_text(rest, "fleet/eu/t1/a/b/c") == "|t1");
  CHECK(match_text(rest, "fleet/eu") == "-");
}

TEST_CASE("topic patterns refuse what could never name a device") {
  CHECK_FALSE(TopicPattern::compile("").has_value());
  CHECK_FALSE(TopicPattern::compile("{tenant}/telemetry").has_value());  // no {device_id}
  CHECK_FALSE(TopicPattern::compile("{device_id}/{device_id}").has_value());
  CHECK_FALSE(TopicPattern::compile("{tenant}/{tenant}/{device_id}").has_value());
  CHECK_FALSE(TopicPattern::compile("a/#/{device_id}").has_value());
  CHECK_FALSE(TopicPattern::compile("dev-{device_id}").has_value());  // braces inside a level
  CHECK_FALSE(TopicPattern::compile("{Device}/{device_id}").has_value());
  CHECK_FALSE(TopicPattern::compile("$SYS/{device_id}").has_value());
  CHECK(TopicPattern::compile("{device_id}").has_value());
  CHECK(TopicPattern::compile("{tenant}/telemetry").error() == "must contain {device_id}");
}

TEST_CASE("subscription filters follow MQTT's wildcard rules; groups make $share/ topics") {
  CHECK_FALSE(mqtt_bridge::topic_filter_problem("a/+/b").has_value());
  CHECK_FALSE(mqtt_bridge::topic_filter_problem("#").has_value());
  CHECK_FALSE(mqtt_bridge::topic_filter_problem("a/#").has_value());
  CHECK(mqtt_bridge::topic_filter_problem("").has_value());
  CHECK(mqtt_bridge::topic_filter_problem("a/#/b").has_value());
  CHECK(mqtt_bridge::topic_filter_problem("a/b#").has_value());
  CHECK(mqtt_bridge::topic_filter_problem("a+/b").has_value());
  CHECK(mqtt_bridge::topic_filter_problem("$share/g/a").has_value());
  CHECK(mqtt_bridge::subscription_topic("telegate", "a/+") == "$share/telegate/a/+");
  CHECK(mqtt_bridge::subscription_topic("", "a/+") == "a/+");
}

TEST_CASE("the bridge finds a provisioned device by tenant and id, and nothing else") {
  const GatewayConfig config = parse_config(kDevices);
  const DeviceRegistry registry(config);
  const DeviceIdentity* device = registry.find("acme", "truck-1");
  REQUIRE(device != nullptr);
  CHECK(device->device_type == "tracker");
  CHECK(registry.find("other", "truck-1") == nullptr);
  CHECK(registry.find("acme", "truck-2") == nullptr);
  CHECK(registry.find("acme/truck-1", "") == nullptr);
  CHECK(registry.find("", "acme/truck-1") == nullptr);
}

TEST_CASE("mqtt_bridge: off by default; a complete section reads back") {
  CHECK_FALSE(parse_config(kDevices).mqtt_bridge.enabled);
  const GatewayConfig config = parse_config(bridge_yaml(kBridge + "  clients: 2\n  protocol_version: \"3.1.1\"\n"));
  const MqttBridgeConfig& bridge = config.mqtt_bridge;
  CHECK(bridge.enabled);
  CHECK(bridge.clients == 2);
  CHECK(bridge.protocol_version == MqttProtocolVersion::v311);
  REQUIRE(bridge.subscriptions.size() == 1);
  CHECK(bridge.subscriptions[0].shared_group == "telegate");
  CHECK(bridge.subscriptions[0].qos == 1);
  REQUIRE(bridge.mappings.size() == 1);
  CHECK(bridge.mappings[0].content_type == "application/json");
}

TEST_CASE("mqtt_bridge: config errors name the key") {
  CHECK(error_key(bridge_yaml("  enabled: true\n  broker: 127.0.0.1:1883\n")) == "mqtt_bridge.broker");
  CHECK(error_key(bridge_yaml("  enabled: true\n")) == "mqtt_bridge.subscriptions");
  CHECK(error_key(bridge_yaml("  enabled: true\n  subscriptions: [{filter: a/+}]\n")) == "mqtt_bridge.mappings");
  CHECK(error_key(bridge_yaml(kBridge + "  clients: 0\n")) == "mqtt_bridge.clients");
  CHECK(error_key(bridge_yaml(kBridge + "  protocol_version: 4\n")) == "mqtt_bridge.protocol_version");
  CHECK(error_key(bridge_yaml(kBridge + "  password: hunter2\n")) == "mqtt_bridge.password");
  CHECK(error_key(bridge_yaml(kBridge + "  password_file: /no/such/file\n")) == "mqtt_bridge.password_file");
  CHECK(error_key(bridge_yaml(kBridge + "  password_env: TELEGATE_TEST_NO_SUCH_VARIABLE\n")) ==
        "mqtt_bridge.password_env");
  CHECK(error_key(bridge_yaml(kBridge + "  colour: blue\n")) == "mqtt_bridge.colour");
  CHECK(error_key(bridge_yaml("  subscriptions: [{filter: \"a/#/b\"}]\n")) == "mqtt_bridge.subscriptions[0].filter");
  CHECK(error_key(bridge_yaml("  subscriptions: [{filter: a, qos: 3}]\n")) == "mqtt_bridge.subscriptions[0].qos");
  CHECK(error_key(bridge_yaml("  subscriptions: [{filter: a, shared_group: \"a/b\"}]\n")) ==
        "mqtt_bridge.subscriptions[0].shared_group");
  CHECK(error_key(bridge_yaml("  subscriptions: [{filter: a}, {filter: a}]\n")) == "mqtt_bridge.subscriptions[1].filter");
  CHECK(error_key(bridge_yaml("  mappings: [{topic: \"{tenant}/x\"}]\n")) == "mqtt_bridge.mappings[0].topic");
  CHECK(error_key(bridge_yaml("  mappings: [{topic: \"x/{device_id}\"}]\n")) == "mqtt_bridge.mappings[0].tenant");
  CHECK(error_key(bridge_yaml("  mappings: [{topic: \"{tenant}/{device_id}\", tenant: acme}]\n")) ==
        "mqtt_bridge.mappings[0].tenant");
  CHECK(error_key(bridge_yaml("  mappings: [{topic: \"x/{device_id}\", tenant: acme, content_type: \"\"}]\n")) ==
        "mqtt_bridge.mappings[0].content_type");
  CHECK(error_text(bridge_yaml("  mappings: [{topic: \"{tenant}/x\"}]\n")) ==
        "mqtt_bridge.mappings[0].topic: must contain {device_id}, got '{tenant}/x'");
}

TEST_CASE("mqtt_bridge: the password comes from a file or an environment variable") {
  const std::filesystem::path file = std::filesystem::temp_directory_path() / "telegate-bridge-password-test";
  std::ofstream(file) << "s3cret\n";
  CHECK(parse_config(bridge_yaml(kBridge + "  password_file: " + file.string() + "\n")).mqtt_bridge.password == "s3cret");
  ::setenv("TELEGATE_TEST_BRIDGE_PASSWORD", "from-env", 1);
  CHECK(parse_config(bridge_yaml(kBridge + "  password_env: TELEGATE_TEST_BRIDGE_PASSWORD\n")).mqtt_bridge.password ==
        "from-env");
  CHECK(error_key(bridge_yaml(kBridge + "  password_env: TELEGATE_TEST_BRIDGE_PASSWORD\n  password_file: " +
                              file.string() + "\n")) == "mqtt_bridge.password_env");
  std::filesystem::remove(file);
}
