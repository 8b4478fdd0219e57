// Validation of canonical records: the stage between codec and envelope.
//
// Pure functions of the record, the limits and the gateway clock: safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/record.hpp"

namespace telegate::codecs {

struct ValidationLimits {
  std::chrono::milliseconds max_future_skew{std::chrono::minutes(5)};
  std::chrono::milliseconds max_age{std::chrono::days(365)};
  double max_speed_mps = 350;  // faster than any road or rail vehicle: a decode or unit bug
  std::size_t max_id_bytes = 128;
  std::size_t max_readings = 64;
};

// nullopt when the record is acceptable; otherwise the first problem found, naming the field.
std::optional<FieldError> validate(const CanonicalRecord& record, const ValidationLimits& limits,
                                   std::int64_t now_ms);

}  // namespace telegate::codecs
