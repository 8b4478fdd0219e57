// Canonical records: what every codec produces, whatever the wire format.
//
// A CanonicalRecord is the single shape that validation, the envelope and every sink see.
// Records are reused across requests (reset() keeps string and vector capacity) so the
// decode path does not allocate per field once a worker has warmed up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace telegate::codecs {

enum class MessageType : std::uint8_t { location = 1, sensor = 2 };

std::string_view to_string(MessageType type) noexcept;
std::optional<MessageType> parse_message_type(std::string_view text) noexcept;

struct Location {
  double lat = 0;
  double lon = 0;
  std::optional<double> alt;       // metres above WGS84 ellipsoid
  std::optional<double> speed;     // metres per second
  std::optional<double> heading;   // degrees clockwise from true north, [0, 360)
  std::optional<double> accuracy;  // metres, horizontal
  std::optional<double> battery;   // percent, [0, 100]
};

struct SensorReading {
  std::string name;
  double value = 0;
  std::string unit;
};

// A value that is not a number: a tracker's variable-length I/O element (Teltonika 8E NX), as
// lower-case hex of its bytes. Carried in the envelope beside the readings.
struct Attribute {
  std::string name;
  std::string value;
};

struct CanonicalRecord {
  std::size_t index = 0;  // position in the request body, for error reports
  std::string device_id;
  MessageType type = MessageType::location;
  std::int64_t event_time_ms = 0;  // Unix epoch milliseconds, UTC
  std::string msg_id;              // device-supplied idempotency key; empty → gateway generates
  Location location;               // meaningful when type == location
  std::vector<SensorReading> readings;  // meaningful when type == sensor
  std::vector<Attribute> attributes;    // sensor only; most codecs leave it empty

  // Clears the record for reuse without giving back string or vector capacity.
  void reset() noexcept;
};

}  // namespace telegate::codecs
