// Units that device apps disagree on, made explicit per device type.
//
// Canonical records carry speed in m/s and time in Unix epoch milliseconds. Apps send km/h
// (OwnTracks `vel`), knots (OsmAnd as Traccar reads it), mph, and epochs in s, ms or µs, so
// each codec that reads such a field takes a `speed_unit` / `time_unit` option, with the
// format's documented convention as the default (docs/onboarding.md lists them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "telegate/codecs/options.hpp"

namespace telegate::codecs {

enum class SpeedUnit : std::uint8_t { mps, kmh, knots, mph };
enum class EpochUnit : std::uint8_t { seconds, milliseconds, microseconds, automatic };

inline constexpr std::string_view kSpeedUnitNames = "mps, kmh, knots, mph";
inline constexpr std::string_view kEpochUnitNames = "s, ms, us, auto";

std::optional<SpeedUnit> parse_speed_unit(std::string_view text) noexcept;
std::optional<EpochUnit> parse_epoch_unit(std::string_view text) noexcept;
std::string_view to_string(SpeedUnit unit) noexcept;
std::string_view to_string(EpochUnit unit) noexcept;

// Multiply a speed in `unit` by this to get m/s.
double metres_per_second_per(SpeedUnit unit) noexcept;

// An epoch number in `unit` as Unix milliseconds; nullopt when not finite or out of range.
// `automatic` reads the magnitude: below 1e11 seconds (until year 5138), below 1e14
// milliseconds, otherwise microseconds.
std::optional<std::int64_t> epoch_to_ms(double value, EpochUnit unit) noexcept;

// RFC 3339 / ISO 8601 date-time ("2024-05-01T12:00:00.250Z", "+02:00" offsets) as Unix ms.
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text) noexcept;

// Option readers with the format's default when the key is absent.
SpeedUnit read_speed_unit(OptionReader& options, std::string_view key, SpeedUnit fallback);
EpochUnit read_epoch_unit(OptionReader& options, std::string_view key, EpochUnit fallback);

}  // namespace telegate::codecs
