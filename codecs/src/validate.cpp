#include "telegate/codecs/validate.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace telegate::codecs {

namespace {

std::optional<FieldError> problem(const CanonicalRecord& record, std::string_view field, std::string reason) {
  return FieldError{record.index, std::string(field), std::move(reason)};
}

// Ids become Kafka keys and header values: printable ASCII without spaces, bounded.
std::optional<std::string> id_problem(std::string_view id, std::size_t max_bytes) {
  if (id.size() > max_bytes) return fmt::format("must be at most {} bytes, got {}", max_bytes, id.size());
  const auto bad = std::find_if(id.begin(), id.end(), [](char c) { return c <= ' ' || c >= 127; });
  if (bad != id.end()) {
    return fmt::format("must be printable ASCII without spaces (byte 0x{:02x} at position {})",
                       static_cast<unsigned char>(*bad), bad - id.begin());
  }
  return std::nullopt;
}

std::optional<FieldError> check_range(const CanonicalRecord& record, std::string_view field,
                                      const std::optional<double>& value, double min, double max,
                                      bool max_inclusive = true) {
  if (!value) return std::nullopt;
  const bool in_range = std::isfinite(*value) && *value >= min && (max_inclusive ? *value <= max : *value < max);
  if (in_range) return std::nullopt;
  return problem(record, field,
                 fmt::format("must be within [{}, {}{}, got {}", min, max, max_inclusive ? "]" : ")", *value));
}

std::optional<FieldError> validate_location(const CanonicalRecord& record, const ValidationLimits& limits) {
  const Location& at = record.location;
  if (auto error = check_range(record, "lat", at.lat, -90, 90)) return error;
  if (auto error = check_range(record, "lon", at.lon, -180, 180)) return error;
  if (auto error = check_range(record, "alt", at.alt, -1000, 100000)) return error;
  if (auto error = check_range(record, "speed", at.speed, 0, limits.max_speed_mps)) return error;
  if (auto error = check_range(record, "heading", at.heading, 0, 360, false)) return error;
  if (auto error = check_range(record, "accuracy", at.accuracy, 0, 1e6)) return error;
  if (auto error = check_range(record, "battery", at.battery, 0, 100)) return error;
  return std::nullopt;
}

std::optional<FieldError> validate_sensor(const CanonicalRecord& record, const ValidationLimits& limits) {
  if (record.readings.empty()) return problem(record, "readings", "a sensor record needs at least one reading");
  if (record.readings.size() > limits.max_readings) {
    return problem(record, "readings",
                   fmt::format("at most {} readings per record, got {}", limits.max_readings, record.readings.size()));
  }
  for (std::size_t i = 0; i < record.readings.size(); ++i) {
    const SensorReading& reading = record.readings[i];
    if (reading.name.empty()) return problem(record, fmt::format("readings[{}].name", i), "must not be empty");
    if (auto reason = id_problem(reading.name, limits.max_id_bytes)) {
      return problem(record, fmt::format("readings[{}].name", i), *reason);
    }
    if (!std::isfinite(reading.value)) {
      return problem(record, fmt::format("readings[{}].value", i), "must be a finite number");
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<FieldError> validate(const CanonicalRecord& record, const ValidationLimits& limits,
                                   std::int64_t now_ms) {
  if (record.device_id.empty()) return problem(record, "device_id", "is required");
  if (auto reason = id_problem(record.device_id, limits.max_id_bytes)) return problem(record, "device_id", *reason);
  if (auto reason = id_problem(record.msg_id, limits.max_id_bytes)) return problem(record, "msg_id", *reason);

  const std::int64_t ahead = record.event_time_ms - now_ms;
  if (ahead > limits.max_future_skew.count()) {
    return problem(record, "ts",
                   fmt::format("is {} s ahead of the gateway clock (at most {} s allowed)", ahead / 1000,
                               limits.max_future_skew.count() / 1000));
  }
  if (-ahead > limits.max_age.count()) {
    return problem(record, "ts",
                   fmt::format("is {} s old (at most {} s allowed)", -ahead / 1000, limits.max_age.count() / 1000));
  }
  return record.type == MessageType::location ? validate_location(record, limits) : validate_sensor(record, limits);
}

}  // namespace telegate::codecs
