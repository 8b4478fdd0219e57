#include "sensors.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <numbers>

namespace telegate::sim {

namespace {

// A uniform value in [-1, 1) from a hash: no state, so a retried batch reads the same.
double noise(std::uint64_t seed, std::int64_t time_ms) {
  std::uint64_t z = seed ^ (static_cast<std::uint64_t>(time_ms) * 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) / static_cast<double>(1ULL << 52) - 1.0;
}

}  // namespace

SensorReading sensor_reading(std::string_view device_id, const Fix& fix) {
  const std::uint64_t seed = std::hash<std::string_view>{}(device_id);
  constexpr double kDayMs = 86'400'000.0;
  // Warmest mid-afternoon (UTC), each sensor a few degrees off its neighbours.
  const double day_phase = std::fmod(static_cast<double>(fix.time_ms), kDayMs) / kDayMs - 0.375;
  const double offset = 3.0 * noise(seed, 0);
  const double temperature = 18.0 + offset + 6.0 * std::sin(2 * std::numbers::pi * day_phase) + 0.3 * noise(seed, fix.time_ms);
  // Relative humidity falls as the air warms.
  const double humidity = std::clamp(60.0 - 2.0 * (temperature - 18.0) + 2.0 * noise(seed + 1, fix.time_ms), 5.0, 100.0);
  return {temperature, humidity, fix.battery_pct};
}

void sensor_json(std::string_view device_id, std::string_view msg_id_prefix, std::uint64_t first_sequence,
                 std::span<const Fix> fixes, std::string& body) {
  auto out = std::back_inserter(body);
  body += '[';
  for (std::size_t i = 0; i < fixes.size(); ++i) {
    const SensorReading reading = sensor_reading(device_id, fixes[i]);
    fmt::format_to(out,
                   R"({}{{"device_id":"{}","type":"sensor","ts":{},"msg_id":"{}-{}","readings":[)"
                   R"({{"name":"temperature","value":{:.2f},"unit":"Cel"}},{{"name":"humidity","value":{:.1f},"unit":"%RH"}},)"
                   R"({{"name":"battery","value":{:.0f},"unit":"%EL"}}]}})",
                   i ? "," : "", device_id, fixes[i].time_ms, msg_id_prefix, first_sequence + i, reading.temperature_c,
                   reading.humidity_pct, reading.battery_pct);
  }
  body += ']';
}

void sensor_senml(std::string_view device_id, std::span<const Fix> fixes, std::string& body) {
  auto out = std::back_inserter(body);
  body += '[';
  const std::int64_t base_ms = fixes.empty() ? 0 : fixes.front().time_ms;
  for (std::size_t i = 0; i < fixes.size(); ++i) {
    const SensorReading reading = sensor_reading(device_id, fixes[i]);
    if (i == 0) {
      fmt::format_to(out, R"({{"bn":"urn:dev:{}:","bt":{:.3f},)", device_id, static_cast<double>(base_ms) / 1000.0);
    } else {
      fmt::format_to(out, R"(,{{)");
    }
    const double t = static_cast<double>(fixes[i].time_ms - base_ms) / 1000.0;
    fmt::format_to(out,
                   R"("n":"temperature","u":"Cel","t":{0:.3f},"v":{1:.2f}}},{{"n":"humidity","u":"%RH","t":{0:.3f},"v":{2:.1f}}},)"
                   R"({{"n":"battery","u":"%EL","t":{0:.3f},"v":{3:.0f}}})",
                   t, reading.temperature_c, reading.humidity_pct, reading.battery_pct);
  }
  body += ']';
}

}  // namespace telegate::sim
