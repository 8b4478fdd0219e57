#include "telegate/codecs/record.hpp"

namespace telegate::codecs {

std::string_view to_string(MessageType type) noexcept {
  switch (type) {
    case MessageType::location: return "location";
    case MessageType::sensor: return "sensor";
  }
  return "unknown";
}

std::optional<MessageType> parse_message_type(std::string_view text) noexcept {
  if (text == "location") return MessageType::location;
  if (text == "sensor") return MessageType::sensor;
  return std::nullopt;
}

void CanonicalRecord::reset() noexcept {
  index = 0;
  device_id.clear();
  type = MessageType::location;
  event_time_ms = 0;
  msg_id.clear();
  location = Location{};
  readings.clear();
  attributes.clear();
}

}  // namespace telegate::codecs
