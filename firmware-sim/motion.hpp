// Where a simulated device is: routes from real GPS recordings (or synthetic roads), and the
// positions, speeds and headings a device on them reports, with GPS noise, stops and coverage
// gaps.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace telegate::sim {

// One position report, as a device's GPS produced it.
struct Fix {
  std::int64_t time_ms = 0;  // event time, Unix epoch ms
  double lat = 0;
  double lon = 0;
  double speed_mps = 0;
  double heading_deg = 0;  // [0, 360), rounded to 0.1° as printed
  double accuracy_m = 0;   // the radius of the noise's root mean square
  double battery_pct = 0;
};

// splitmix64: 8 bytes of state per device, where std::mt19937_64 would take 2.5 KB and make a
// 100,000-device fleet cost 250 MB. Good enough for motion noise; not for anything secret.
// A value, owned by whatever it randomizes (a device's motion, a lane's backoff jitter).
class SmallRandom {
 public:
  using result_type = std::uint64_t;
  explicit SmallRandom(std::uint64_t seed) : state_(seed) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }
  result_type operator()() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

struct LatLon {
  double lat;
  double lon;
};

// A polyline devices drive along; immutable once built, shared by every device (any thread).
class Route {
 public:
  // Throws std::invalid_argument naming the route when it has fewer than two distinct points.
  Route(std::string name, std::vector<LatLon> points);

  const std::string& name() const { return name_; }
  double length_m() const { return cumulative_m_.back(); }

  struct Position {
    LatLon at;
    double heading_deg;  // of the segment at that distance, in the direction of the polyline
  };
  // The point `distance_m` along the polyline (clamped to its ends).
  Position at(double distance_m) const;

 private:
  std::string name_;
  std::vector<LatLon> points_;
  std::vector<double> cumulative_m_;  // distance from the first point to point i
  // Of segment i (point i to i + 1): computed once, not per fix (atan2 and cos were ~5 % of
  // telegate-sim's CPU per record).
  std::vector<double> heading_deg_;
};

// The track points (<trkpt lat=… lon=…>) of a GPX document, all segments in order. Throws
// std::invalid_argument when it has none or a coordinate is unreadable.
std::vector<LatLon> parse_gpx_track(std::string_view gpx);
// Every *.gpx in `directory`, sorted by name. Throws std::invalid_argument naming the file.
std::vector<Route> load_routes(const std::filesystem::path& directory);
// Road-like polylines (segments of 50–300 m, gentle turns) near Ljubljana: the fallback when
// no recording is given (--routes none).
std::vector<Route> synthetic_routes(std::size_t count, std::uint64_t seed);

// How devices behave; from the command line, immutable during a run.
struct MotionSettings {
  double min_speed_mps = 8;  // each device cruises at a speed drawn from this range
  double max_speed_mps = 20;
  double stop_every_s = 600;  // mean time between stops (exponential); 0 = never stops
  double stop_min_s = 20;
  double stop_max_s = 120;
  double gap_every_s = 0;  // mean time between coverage gaps; 0 = always covered
  double gap_min_s = 30;
  double gap_max_s = 300;
  double min_accuracy_m = 3;  // each fix's accuracy is drawn from this range, and its noise
  double max_accuracy_m = 5;  // follows it
};

// One device's place on its route; a plain value (about 90 bytes) the fleet keeps per device.
struct DeviceMotion {
  std::uint32_t route = 0;
  float cruise_mps = 0;
  float speed_mps = 0;
  float battery_pct = 0;
  // Along the route there and back, in [0, 2 × length): devices turn round at the ends, so a
  // device never jumps.
  double distance_m = 0;
  std::int64_t last_ms = 0;
  std::int64_t stop_start_ms = 0;  // the current or next stop
  std::int64_t stop_end_ms = 0;
  std::int64_t gap_start_ms = 0;  // the current or next coverage gap
  std::int64_t gap_end_ms = 0;
  SmallRandom random{0};
};

// Moves devices along shared routes. Immutable after construction; used on the load driver's
// thread (any thread could: all per-device state is in DeviceMotion).
class MotionModel {
 public:
  MotionModel(std::vector<Route> routes, MotionSettings settings);

  // A device starting at a random point of a random route at `now_ms`.
  DeviceMotion start(std::uint64_t seed, std::int64_t now_ms) const;
  // Moves the device to `at_ms` (≥ its last time) and returns what its GPS reports there.
  Fix advance(DeviceMotion& device, std::int64_t at_ms) const;
  // Whether the device has network coverage at `at_ms` (moves the gap schedule forward).
  bool covered(DeviceMotion& device, std::int64_t at_ms) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
  MotionSettings settings_;
};

}  // namespace telegate::sim
