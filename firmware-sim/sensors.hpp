// Field-sensor profiles: a sensor reports temperature, humidity and battery at each of its
// sampling times. Readings are a pure function of the device and the time (a daily cycle, a
// per-device offset, a little noise), so a device stays plausible however it is scheduled.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "motion.hpp"

namespace telegate::sim {

struct SensorReading {
  double temperature_c = 0;
  double humidity_pct = 0;  // relative humidity
  double battery_pct = 0;
};

SensorReading sensor_reading(std::string_view device_id, const Fix& fix);

// telegate JSON `sensor` records with `readings` (codecs/README.md), record i with msg_id
// "<msg_id_prefix>-<first_sequence + i>".
void sensor_json(std::string_view device_id, std::string_view msg_id_prefix, std::uint64_t first_sequence,
                 std::span<const Fix> fixes, std::string& body);

// One SenML JSON pack (RFC 8428): base name urn:dev:<device id>:, base time the first fix, the
// three readings of a fix sharing its time, so the gateway makes one sensor record per fix.
void sensor_senml(std::string_view device_id, std::span<const Fix> fixes, std::string& body);

}  // namespace telegate::sim
