#include "telegate/codecs/units.hpp"

#include <cmath>

namespace telegate::codecs {

namespace {

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `count` digits at `at`; -1 if any is not a digit.
constexpr int digits(std::string_view text, std::size_t at, std::size_t count) {
  if (at + count > text.size()) return -1;
  int value = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    if (!is_digit(text[i])) return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

constexpr bool is_leap(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

constexpr int days_in_month(int year, int month) {
  constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : kDays[month - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
constexpr std::int64_t days_from_civil(int year, int month, int day) {
  year -= month <= 2;
  const int era = (year >= 0 ? year : year - 399) / 400;
  const int year_of_era = year - era * 400;
  const int day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return static_cast<std::int64_t>(era) * 146097 + day_of_era - 719468;
}

}  // namespace

std::optional<SpeedUnit> parse_speed_unit(std::string_view text) noexcept {
  if (text == "mps" || text == "m/s") return SpeedUnit::mps;
  if (text == "kmh" || text == "km/h") return SpeedUnit::kmh;
  if (text == "knots" || text == "kn") return SpeedUnit::knots;
  if (text == "mph") return SpeedUnit::mph;
  return std::nullopt;
}

std::optional<EpochUnit> parse_epoch_unit(std::string_view text) noexcept {
  if (text == "s") return EpochUnit::seconds;
  if (text == "ms") return EpochUnit::milliseconds;
  if (text == "us") return EpochUnit::microseconds;
  if (text == "auto") return EpochUnit::automatic;
  return std::nullopt;
}

std::string_view to_string(SpeedUnit unit) noexcept {
  switch (unit) {
    case SpeedUnit::mps: return "mps";
    case SpeedUnit::kmh: return "kmh";
    case SpeedUnit::knots: return "knots";
    case SpeedUnit::mph: return "mph";
  }
  return "mps";
}

std::string_view to_string(EpochUnit unit) noexcept {
  switch (unit) {
    case EpochUnit::seconds: return "s";
    case EpochUnit::milliseconds: return "ms";
    case EpochUnit::microseconds: return "us";
    case EpochUnit::automatic: return "auto";
  }
  return "auto";
}

double metres_per_second_per(SpeedUnit unit) noexcept {
  switch (unit) {
    case SpeedUnit::mps: return 1.0;
    case SpeedUnit::kmh: return 1000.0 / 3600.0;
    case SpeedUnit::knots: return 1852.0 / 3600.0;
    case SpeedUnit::mph: return 1609.344 / 3600.0;
  }
  return 1.0;
}

std::optional<std::int64_t> epoch_to_ms(double value, EpochUnit unit) noexcept {
  if (!std::isfinite(value)) return std::nullopt;
  if (unit == EpochUnit::automatic) {
    const double magnitude = std::fabs(value);
    unit = magnitude < 1e11 ? EpochUnit::seconds : magnitude < 1e14 ? EpochUnit::milliseconds : EpochUnit::microseconds;
  }
  double millis = value;
  if (unit == EpochUnit::seconds) millis = value * 1000.0;
  if (unit == EpochUnit::microseconds) millis = value / 1000.0;
  constexpr double kLimit = 9.0e15;  // far past any plausible time, well inside int64 and double precision
  if (!(std::fabs(millis) < kLimit)) return std::nullopt;
  return static_cast<std::int64_t>(std::llround(millis));
}

std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text) noexcept {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || text[13] != ':' || text[16] != ':') return std::nullopt;
  if (text[10] != 'T' && text[10] != 't' && text[10] != ' ') return std::nullopt;
  const int year = digits(text, 0, 4), month = digits(text, 5, 2), day = digits(text, 8, 2);
  const int hour = digits(text, 11, 2), minute = digits(text, 14, 2), second = digits(text, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return std::nullopt;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60) return std::nullopt;

  std::size_t at = 19;
  int millis = 0;
  if (at < text.size() && text[at] == '.') {
    const std::size_t start = ++at;
    while (at < text.size() && is_digit(text[at])) {
      if (at - start < 3) millis = millis * 10 + (text[at] - '0');
      ++at;
    }
    if (at == start || at - start > 9) return std::nullopt;
    for (std::size_t scale = at - start; scale < 3; ++scale) millis *= 10;
  }
  if (at >= text.size()) return std::nullopt;
  int offset_minutes = 0;
  if (text[at] == 'Z' || text[at] == 'z') {
    ++at;
  } else if (text[at] == '+' || text[at] == '-') {
    const int offset_hours = digits(text, at + 1, 2), offset_mins = digits(text, at + 4, 2);
    if (offset_hours < 0 || offset_hours > 23 || offset_mins < 0 || offset_mins > 59 || at + 3 >= text.size() ||
        text[at + 3] != ':') {
      return std::nullopt;
    }
    offset_minutes = (offset_hours * 60 + offset_mins) * (text[at] == '-' ? -1 : 1);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != text.size()) return std::nullopt;
  const std::int64_t seconds = days_from_civil(year, month, day) * 86'400 + hour * 3'600 + minute * 60 + second -
                               static_cast<std::int64_t>(offset_minutes) * 60;
  return seconds * 1000 + millis;
}

SpeedUnit read_speed_unit(OptionReader& options, std::string_view key, SpeedUnit fallback) {
  options.enumeration(key, fallback, parse_speed_unit, kSpeedUnitNames);
  return fallback;
}

EpochUnit read_epoch_unit(OptionReader& options, std::string_view key, EpochUnit fallback) {
  options.enumeration(key, fallback, parse_epoch_unit, kEpochUnitNames);
  return fallback;
}

}  // namespace telegate::codecs
