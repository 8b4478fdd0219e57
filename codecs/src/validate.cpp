#include "telegate/codecs/validate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <fmt/format.h>

namespace telegate::codecs {

namespace {

std::optional<FieldError> problem(const CanonicalRecord& record, std::string_view field, std::string reason) {
  return FieldError{record.index, std::string(field), std::move(reason)};
}

// Ids become Kafka keys and header values: printable ASCII without spaces, bounded.
bool printable(char c) { return c > ' ' && c < 127; }

// Whether every byte of `id` is printable, eight at a time (device and message ids are 10–40
// bytes, reading names 2–8, checked for every record): per byte b with low = b & 0x7f, bit 7
// of low + 0x5f is set iff low >= 0x21, and bit 7 of low + 1 iff low == 0x7f; neither sum
// carries into the next byte. Words overlap instead of copying a short tail (a variable-length
// copy to the stack reloaded as a word stalls store forwarding): the last eight bytes, or for
// shorter ids the first and last four, or the first, middle and last byte padded with 'a'.
[[gnu::always_inline]] inline bool all_printable(std::string_view id) {
  constexpr std::uint64_t kHigh = 0x8080808080808080, kLow7 = 0x7f7f7f7f7f7f7f7f;
  constexpr std::uint64_t kSpaceOrLess = 0x5f5f5f5f5f5f5f5f, kOnes = 0x0101010101010101;
  const auto bad_bits = [](std::uint64_t word) {
    const std::uint64_t low = word & kLow7;
    return (word | ~(low + kSpaceOrLess) | (low + kOnes)) & kHigh;
  };
  const auto load = [&]<typename Word>(std::size_t at) {
    Word word;
    std::memcpy(&word, id.data() + at, sizeof word);
    return std::uint64_t{word};
  };
  const std::size_t size = id.size();
  if (size >= 8) {
    std::uint64_t bad = bad_bits(load.operator()<std::uint64_t>(size - 8));
    for (std::size_t at = 0; at + 8 < size; at += 8) bad |= bad_bits(load.operator()<std::uint64_t>(at));
    return bad == 0;
  }
  if (size >= 4) return bad_bits(load.operator()<std::uint32_t>(0) | load.operator()<std::uint32_t>(size - 4) << 32) == 0;
  if (size == 0) return true;
  const auto byte = [&](std::size_t at) { return std::uint64_t{static_cast<unsigned char>(id[at])}; };
  return bad_bits(0x6161616161000000 | byte(0) | byte(size / 2) << 8 | byte(size - 1) << 16) == 0;
}

// Why `id` is refused; out of line so that the check below inlines into validate.
[[gnu::cold, gnu::noinline]] std::string id_reason(std::string_view id, std::size_t max_bytes) {
  if (id.size() > max_bytes) return fmt::format("must be at most {} bytes, got {}", max_bytes, id.size());
  const auto bad = std::ranges::find_if_not(id, printable);
  return fmt::format("must be printable ASCII without spaces (byte 0x{:02x} at position {})",
                     static_cast<unsigned char>(*bad), bad - id.begin());
}

[[gnu::always_inline]] inline std::optional<std::string> id_problem(std::string_view id, std::size_t max_bytes) {
  if (id.size() <= max_bytes && all_printable(id)) [[likely]] return std::nullopt;
  return id_reason(id, max_bytes);
}

// One bounded number of a location; `value` is null when the record leaves it out.
struct RangeCheck {
  std::string_view field;
  const double* value;
  double min;
  double max;
  bool max_inclusive = true;
};

bool in_range(const RangeCheck& check) {
  // Branch-free (`&`, `|`, an absent value read as 0): two compares per value. NaN fails every
  // comparison; ±inf fail the bounds capped to the finite doubles (only max_speed_mps can be
  // infinite; the minimums are constants). For an exclusive maximum, the next double below it.
  constexpr double kFinite = std::numeric_limits<double>::max();
  const double value = check.value ? *check.value : 0;
  const double max = std::min(check.max_inclusive ? check.max : std::nextafter(check.max, -kFinite), kFinite);
  return (check.value == nullptr) | ((value >= std::max(check.min, -kFinite)) & (value <= max));
}

const double* present(const std::optional<double>& value) { return value ? &*value : nullptr; }

// A location's bounded numbers, in the order their errors are reported.
std::array<RangeCheck, 7> location_ranges(const Location& at, const ValidationLimits& limits) {
  return {{
      {"lat", &at.lat, -90, 90},
      {"lon", &at.lon, -180, 180},
      {"alt", present(at.alt), -1000, 100000},
      {"speed", present(at.speed), 0, limits.max_speed_mps},
      {"heading", present(at.heading), 0, 360, false},
      {"accuracy", present(at.accuracy), 0, 1e6},
      {"battery", present(at.battery), 0, 100},
  }};
}

std::optional<FieldError> validate_location(const CanonicalRecord& record, const ValidationLimits& limits) {
  // All seven at once without early exits (the common case: every value in range); the first
  // failing field is looked for only when one fails. Two calls of location_ranges, so that the
  // compiler can drop the field names from the common path.
  bool all_in_range = true;
  for (const RangeCheck& check : location_ranges(record.location, limits)) all_in_range &= in_range(check);
  if (all_in_range) [[likely]] return std::nullopt;
  const auto checks = location_ranges(record.location, limits);
  const RangeCheck& bad = *std::ranges::find_if_not(checks, in_range);
  return problem(record, bad.field,
                 fmt::format("must be within [{}, {}{}, got {}", bad.min, bad.max, bad.max_inclusive ? "]" : ")",
                             *bad.value));
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
