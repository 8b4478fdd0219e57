// Where a simulated device is: the positions, speeds and headings it reports.
#pragma once

#include <cstdint>
#include <random>

namespace telegate::sim {

// One position report, as a device's GPS produced it.
struct Fix {
  std::int64_t time_ms = 0;  // event time, Unix epoch ms
  double lat = 0;
  double lon = 0;
  double speed_mps = 0;
  double heading_deg = 0;  // [0, 360), rounded to 0.1° as printed
  double accuracy_m = 0;
  double battery_pct = 0;
};

// A device moving along a road-like track: speed and heading drift, positions advance by
// speed × elapsed time. Owned by the device it moves.
struct Track {
  double lat;
  double lon;
  double speed_mps;
  double heading_deg;
  std::int64_t last_ms;

  Fix advance(std::int64_t now_ms, std::mt19937_64& random);
};

}  // namespace telegate::sim
