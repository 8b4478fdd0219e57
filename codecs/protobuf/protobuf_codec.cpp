#include "protobuf/protobuf_codec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <optional>
#include <string>

#include "telemetry.pb.h"

namespace telegate::codecs {

namespace {

using Telemetry = telegate::v1::Telemetry;

struct Problem {
  std::string field;
  std::string reason;
};

// A float field widened through its shortest decimal form, so that 12.3f arrives as 12.3 and
// not as 12.300000190734863 in every sink downstream.
double widen(float value) {
  char text[32];
  const auto printed = std::to_chars(text, text + sizeof text, value);
  double wide = static_cast<double>(value);
  if (printed.ec == std::errc()) std::from_chars(text, printed.ptr, wide);
  return wide;
}

std::optional<Problem> check_text(std::string field, const std::string& text, const DecodeLimits& limits) {
  if (text.size() <= limits.max_string_bytes) return std::nullopt;
  return Problem{std::move(field), fmt::format("must be at most {} bytes, got {}", limits.max_string_bytes, text.size())};
}

std::optional<Problem> check_location(const Telemetry::Location& at) {
  if (!std::isfinite(at.lat()) || at.lat() < -90 || at.lat() > 90) {
    return Problem{"location.lat", fmt::format("must be within [-90, 90] degrees, got {}", at.lat())};
  }
  if (!std::isfinite(at.lon()) || at.lon() < -180 || at.lon() > 180) {
    return Problem{"location.lon", fmt::format("must be within [-180, 180] degrees, got {}", at.lon())};
  }
  return std::nullopt;
}

std::optional<Problem> check_sensor(const Telemetry::Sensor& sensor, const DecodeLimits& limits) {
  if (sensor.readings_size() == 0) return Problem{"sensor.readings", "a sensor record needs at least one reading"};
  if (static_cast<std::size_t>(sensor.readings_size()) > limits.max_readings) {
    return Problem{"sensor.readings",
                   fmt::format("at most {} readings per record, got {}", limits.max_readings, sensor.readings_size())};
  }
  for (int i = 0; i < sensor.readings_size(); ++i) {
    const Telemetry::Reading& reading = sensor.readings(i);
    if (reading.name().empty()) return Problem{fmt::format("sensor.readings[{}].name", i), "is required"};
    if (auto problem = check_text(fmt::format("sensor.readings[{}].name", i), reading.name(), limits)) return problem;
    if (auto problem = check_text(fmt::format("sensor.readings[{}].unit", i), reading.unit(), limits)) return problem;
    if (!std::isfinite(reading.value())) {
      return Problem{fmt::format("sensor.readings[{}].value", i), "must be a finite number"};
    }
  }
  return std::nullopt;
}

std::optional<Problem> check(const Telemetry& telemetry, const DecodeLimits& limits) {
  if (auto problem = check_text("msg_id", telemetry.msg_id(), limits)) return problem;
  if (telemetry.event_time_ms() == 0) {
    return Problem{"event_time_ms", "is required: the event time in Unix epoch milliseconds (field 2)"};
  }
  switch (telemetry.payload_case()) {
    case Telemetry::kLocation: return check_location(telemetry.location());
    case Telemetry::kSensor: return check_sensor(telemetry.sensor(), limits);
    case Telemetry::PAYLOAD_NOT_SET: break;
  }
  return Problem{"payload", "a record needs a location (field 3) or a sensor (field 4)"};
}

void fill(const Telemetry& telemetry, CanonicalRecord& record) {
  record.event_time_ms = telemetry.event_time_ms();
  record.msg_id.assign(telemetry.msg_id());
  if (telemetry.has_location()) {
    const Telemetry::Location& at = telemetry.location();
    record.type = MessageType::location;
    record.location.lat = at.lat();
    record.location.lon = at.lon();
    if (at.has_alt()) record.location.alt = at.alt();
    if (at.has_speed_mps()) record.location.speed = widen(at.speed_mps());
    if (at.has_heading_deg()) record.location.heading = widen(at.heading_deg());
    if (at.has_accuracy_m()) record.location.accuracy = widen(at.accuracy_m());
    if (at.has_battery_pct()) record.location.battery = widen(at.battery_pct());
  } else {
    record.type = MessageType::sensor;
    for (const Telemetry::Reading& reading : telemetry.sensor().readings()) {
      record.readings.push_back(SensorReading{reading.name(), reading.value(), reading.unit()});
    }
  }
}

}  // namespace

ProtobufCodec::ProtobufCodec(DecodeLimits limits)
    : limits_(limits), batch_(std::make_unique<telegate::v1::TelemetryBatch>()) {}

ProtobufCodec::~ProtobufCodec() = default;

std::expected<void, CodecError> ProtobufCodec::decode(std::string_view body, const DecodeContext& context,
                                                      DecodedBatch& out) {
  if (std::find(kContentTypes.begin(), kContentTypes.end(), context.content_type) == kContentTypes.end()) {
    return std::unexpected(CodecError{CodecErrc::unsupported_content_type,
                                      fmt::format("the protobuf codec reads {} or {}, not '{}'", kContentTypes[0],
                                                  kContentTypes[1], context.content_type),
                                      std::nullopt});
  }
  if (body.empty()) {
    return std::unexpected(CodecError{CodecErrc::empty_body, "the body holds no TelemetryBatch", std::nullopt});
  }
  // ParseFromArray clears the message first but keeps its allocations for the next request.
  if (body.size() > static_cast<std::size_t>(INT_MAX) ||
      !batch_->ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return std::unexpected(CodecError{
        CodecErrc::malformed_body,
        fmt::format("not a telegate.v1.TelemetryBatch: the {}-byte body is not valid protobuf of that schema "
                    "(truncated, a wrong wire type, or a string that is not UTF-8)",
                    body.size()),
        std::nullopt});
  }
  const auto& records = batch_->records();
  if (static_cast<std::size_t>(records.size()) > limits_.max_records) {
    return std::unexpected(CodecError{
        CodecErrc::too_many_records,
        fmt::format("{} records in one batch, at most {}", records.size(), limits_.max_records), std::nullopt});
  }
  for (int i = 0; i < records.size(); ++i) {
    const auto index = static_cast<std::size_t>(i);
    if (auto problem = check(records[i], limits_)) {
      out.reject(index, std::move(problem->field), std::move(problem->reason));
      continue;
    }
    CanonicalRecord& record = out.append(index);
    record.device_id.assign(context.device_id);
    fill(records[i], record);
  }
  return {};
}

}  // namespace telegate::codecs
