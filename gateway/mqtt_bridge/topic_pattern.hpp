// MQTT topic rules the bridge needs without Paho: topic → identity patterns and subscription
// filter checks. Kept apart from the listener so that config validation and unit tests reach
// them directly.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace telegate::gateway::mqtt_bridge {

// A pattern such as "{tenant}/{device_id}/{type}" or "owntracks/{user}/{device_id}": one entry
// per topic level. A level is a literal, a placeholder that matches exactly one non-empty level
// ({tenant} and {device_id} are captured, any other name such as {type} only matches), `+`
// (same as an unnamed placeholder) or, as the last level only, `#` (any further levels).
// Lifecycle: compiled at start-up (and by config validation); immutable, so any thread may
// match with it.
class TopicPattern {
 public:
  // The problem in words when `text` is not a valid pattern (no {device_id}, a placeholder
  // twice, `#` not last, a level that mixes text and braces…).
  static std::expected<TopicPattern, std::string> compile(std::string_view text);

  struct Match {
    std::string_view tenant;  // empty when the pattern has no {tenant}
    std::string_view device_id;
  };
  // Views into `topic`. Never throws: topics come from devices.
  std::optional<Match> match(std::string_view topic) const noexcept;

  bool captures_tenant() const noexcept { return captures_tenant_; }
  const std::string& text() const noexcept { return text_; }

 private:
  enum class Level : std::uint8_t { literal, tenant, device_id, any_one, any_rest };
  struct Part {
    Level level;
    std::string literal;
  };
  std::vector<Part> parts_;
  std::string text_;
  bool captures_tenant_ = false;
};

// Why `filter` is not a valid MQTT topic filter (MQTT 3.1.1 §4.7), or nullopt when it is.
std::optional<std::string> topic_filter_problem(std::string_view filter);

// "$share/<group>/<filter>" (MQTT 5 §4.8.2, also honoured by Mosquitto for 3.1.1 clients), or
// the filter itself when `group` is empty.
std::string subscription_topic(std::string_view group, std::string_view filter);

}  // namespace telegate::gateway::mqtt_bridge
