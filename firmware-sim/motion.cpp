#include "motion.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace telegate::sim {

namespace {

constexpr double kMetresPerDegree = 111'320.0;
constexpr double kRadiansPerDegree = M_PI / 180.0;

// East and north metres from `from` to `to`: flat-earth over one segment, which is exact
// enough for the tens of metres between track points.
std::pair<double, double> offset_m(LatLon from, LatLon to) {
  const double mid_lat = (from.lat + to.lat) / 2.0 * kRadiansPerDegree;
  return {(to.lon - from.lon) * kMetresPerDegree * std::cos(mid_lat), (to.lat - from.lat) * kMetresPerDegree};
}

double normalized_heading(double degrees) {
  // Rounded as it is printed (one decimal), so 359.96 cannot go out as "360.0", which is invalid.
  const double rounded = std::round(std::fmod(degrees + 720.0, 360.0) * 10.0) / 10.0;
  return rounded >= 360.0 ? 0.0 : rounded;
}

double uniform(SmallRandom& random, double low, double high) {
  return std::uniform_real_distribution<double>(low, high)(random);
}

// Seconds until the next event of a Poisson process with this mean.
double exponential(SmallRandom& random, double mean_s) { return -mean_s * std::log(1.0 - uniform(random, 0.0, 1.0)); }

std::int64_t ms(double seconds) { return static_cast<std::int64_t>(seconds * 1000.0); }

// Moves a [start, end) event window (a stop, a gap) on until it ends after `at_ms`.
void schedule_after(std::int64_t at_ms, double every_s, double min_s, double max_s, std::int64_t& start,
                    std::int64_t& end, SmallRandom& random) {
  if (every_s <= 0) return;
  while (end <= at_ms) {
    start = end + ms(exponential(random, every_s));
    end = start + ms(uniform(random, min_s, max_s));
  }
}

}  // namespace

Route::Route(std::string name, std::vector<LatLon> points) : name_(std::move(name)) {
  for (const LatLon point : points) {
    if (!points_.empty()) {
      const auto [east, north] = offset_m(points_.back(), point);
      const double metres = std::hypot(east, north);
      if (metres < 0.01) continue;  // a repeated point (the receiver standing still) has no heading
      cumulative_m_.push_back(cumulative_m_.back() + metres);
      heading_deg_.push_back(std::atan2(east, north) / kRadiansPerDegree);
    } else {
      cumulative_m_.push_back(0.0);
    }
    points_.push_back(point);
  }
  if (points_.size() < 2) throw std::invalid_argument("route " + name_ + ": needs at least two distinct points");
}

Route::Position Route::at(double distance_m) const {
  distance_m = std::clamp(distance_m, 0.0, length_m());
  const auto after = std::upper_bound(cumulative_m_.begin(), cumulative_m_.end(), distance_m);
  const std::size_t i = std::min<std::size_t>(std::max<std::ptrdiff_t>(after - cumulative_m_.begin() - 1, 0), points_.size() - 2);
  const double fraction = (distance_m - cumulative_m_[i]) / (cumulative_m_[i + 1] - cumulative_m_[i]);
  const LatLon from = points_[i], to = points_[i + 1];
  return {{from.lat + (to.lat - from.lat) * fraction, from.lon + (to.lon - from.lon) * fraction}, heading_deg_[i]};
}

// A hand-written reader for the one thing needed (trkpt lat/lon attributes): an XML library
// would be a new dependency of the whole build for ten lines, and the files are our own
// checked-in recordings, not untrusted input.
std::vector<LatLon> parse_gpx_track(std::string_view gpx) {
  const auto attribute = [](std::string_view tag, std::string_view name) {
    for (std::size_t at = tag.find(name); at != std::string_view::npos; at = tag.find(name, at + 1)) {
      // A whole attribute name (not the tail of another one) followed by ="…" or ='…'.
      const bool separated = at > 0 && std::isspace(static_cast<unsigned char>(tag[at - 1]));
      if (!separated || at + name.size() + 1 >= tag.size() || tag[at + name.size()] != '=') continue;
      const char quote = tag[at + name.size() + 1];
      const std::size_t begin = at + name.size() + 2;
      const std::size_t end = tag.find(quote, begin);
      if ((quote != '"' && quote != '\'') || end == std::string_view::npos) break;
      double value = 0;
      const auto [ptr, error] = std::from_chars(tag.data() + begin, tag.data() + end, value);
      if (error != std::errc() || ptr != tag.data() + end || !std::isfinite(value)) break;
      return value;
    }
    throw std::invalid_argument("a <trkpt> without a readable " + std::string(name) + ": " + std::string(tag));
  };
  std::vector<LatLon> points;
  for (std::size_t at = gpx.find("<trkpt"); at != std::string_view::npos; at = gpx.find("<trkpt", at + 1)) {
    if (at + 6 >= gpx.size() || !std::isspace(static_cast<unsigned char>(gpx[at + 6]))) continue;  // <trkptx
    const std::size_t close = gpx.find('>', at);
    if (close == std::string_view::npos) throw std::invalid_argument("a <trkpt> tag that never closes");
    const std::string_view tag = gpx.substr(at, close - at);
    const LatLon point{attribute(tag, "lat"), attribute(tag, "lon")};
    if (std::abs(point.lat) > 90 || std::abs(point.lon) > 180) {
      throw std::invalid_argument("a <trkpt> outside [-90, 90] × [-180, 180]: " + std::string(tag));
    }
    points.push_back(point);
  }
  if (points.empty()) throw std::invalid_argument("no <trkpt> track points");
  return points;
}

std::vector<Route> load_routes(const std::filesystem::path& directory) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (entry.path().extension() == ".gpx") files.push_back(entry.path());
  }
  if (files.empty()) throw std::invalid_argument("--routes: no .gpx file in " + directory.string());
  std::sort(files.begin(), files.end());
  std::vector<Route> routes;
  for (const auto& file : files) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    try {
      routes.emplace_back(file.filename().string(), parse_gpx_track(text.str()));
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument("--routes: " + file.string() + ": " + error.what());
    }
  }
  return routes;
}

std::vector<Route> synthetic_routes(std::size_t count, std::uint64_t seed) {
  SmallRandom random(seed);
  std::vector<Route> routes;
  for (std::size_t r = 0; r < count; ++r) {
    std::vector<LatLon> points{{46.05 + uniform(random, -0.2, 0.2), 14.51 + uniform(random, -0.2, 0.2)}};
    double heading = uniform(random, 0, 360);
    for (int i = 0; i < 200; ++i) {
      heading += std::normal_distribution<double>(0.0, 25.0)(random);
      const double metres = uniform(random, 50, 300);
      const LatLon last = points.back();
      points.push_back({last.lat + metres * std::cos(heading * kRadiansPerDegree) / kMetresPerDegree,
                        last.lon + metres * std::sin(heading * kRadiansPerDegree) /
                                       (kMetresPerDegree * std::cos(last.lat * kRadiansPerDegree))});
    }
    routes.emplace_back("synthetic-" + std::to_string(r), std::move(points));
  }
  return routes;
}

MotionModel::MotionModel(std::vector<Route> routes, MotionSettings settings)
    : routes_(std::move(routes)), settings_(settings) {
  if (routes_.empty()) throw std::invalid_argument("motion: no routes");
}

DeviceMotion MotionModel::start(std::uint64_t seed, std::int64_t now_ms) const {
  DeviceMotion device;
  device.random = SmallRandom(seed);
  device.route = static_cast<std::uint32_t>(device.random() % routes_.size());
  device.distance_m = uniform(device.random, 0, 2 * routes_[device.route].length_m());
  device.cruise_mps = static_cast<float>(uniform(device.random, settings_.min_speed_mps, settings_.max_speed_mps));
  device.speed_mps = device.cruise_mps;
  device.battery_pct = static_cast<float>(uniform(device.random, 40, 100));
  device.last_ms = now_ms;
  device.stop_start_ms = device.stop_end_ms = device.gap_start_ms = device.gap_end_ms = now_ms;
  schedule_after(now_ms, settings_.stop_every_s, settings_.stop_min_s, settings_.stop_max_s, device.stop_start_ms,
                 device.stop_end_ms, device.random);
  schedule_after(now_ms, settings_.gap_every_s, settings_.gap_min_s, settings_.gap_max_s, device.gap_start_ms,
                 device.gap_end_ms, device.random);
  return device;
}

Fix MotionModel::advance(DeviceMotion& device, std::int64_t at_ms) const {
  at_ms = std::max(at_ms, device.last_ms);
  const Route& route = routes_[device.route];
  // Time spent stopped between the last fix and this one does not move the device.
  const std::int64_t stopped_ms =
      std::max<std::int64_t>(0, std::min(at_ms, device.stop_end_ms) - std::max(device.last_ms, device.stop_start_ms));
  const double moving_s = static_cast<double>(at_ms - device.last_ms - stopped_ms) / 1000.0;
  if (moving_s > 0) {
    // Speed drifts around the device's cruising speed; the distance covered is the mean of the
    // old and new speeds × time, so reported speeds agree with the positions.
    const double old_speed = device.speed_mps;
    const double drift = std::normal_distribution<double>(0.0, 0.3 * std::sqrt(moving_s))(device.random);
    const double new_speed = std::clamp(old_speed + 0.2 * (device.cruise_mps - old_speed) + drift,
                                        0.5 * device.cruise_mps, 1.5 * device.cruise_mps);
    device.speed_mps = static_cast<float>(new_speed);
    device.distance_m = std::fmod(device.distance_m + (old_speed + new_speed) / 2.0 * moving_s, 2 * route.length_m());
  }
  const bool stopped = device.stop_start_ms <= at_ms && at_ms < device.stop_end_ms;
  device.battery_pct = std::max(5.0f, device.battery_pct - static_cast<float>(at_ms - device.last_ms) / 1.2e6f);  // 3 %/h
  device.last_ms = at_ms;
  schedule_after(at_ms, settings_.stop_every_s, settings_.stop_min_s, settings_.stop_max_s, device.stop_start_ms,
                 device.stop_end_ms, device.random);

  const bool backwards = device.distance_m > route.length_m();
  const Route::Position position = route.at(backwards ? 2 * route.length_m() - device.distance_m : device.distance_m);
  // Noise: normal per axis, σ = accuracy / √2, so the accuracy is the error's root mean square.
  const double accuracy = uniform(device.random, settings_.min_accuracy_m, settings_.max_accuracy_m);
  std::normal_distribution<double> noise(0.0, accuracy / std::sqrt(2.0));
  const double north = noise(device.random), east = noise(device.random);
  Fix fix;
  fix.time_ms = at_ms;
  fix.lat = position.at.lat + north / kMetresPerDegree;
  fix.lon = position.at.lon + east / (kMetresPerDegree * std::cos(position.at.lat * kRadiansPerDegree));
  fix.speed_mps = stopped ? 0.0 : device.speed_mps;
  fix.heading_deg = normalized_heading(position.heading_deg + (backwards ? 180.0 : 0.0));
  fix.accuracy_m = std::round(accuracy * 10.0) / 10.0;
  fix.battery_pct = std::round(device.battery_pct);
  return fix;
}

bool MotionModel::covered(DeviceMotion& device, std::int64_t at_ms) const {
  if (settings_.gap_every_s <= 0) return true;
  schedule_after(at_ms, settings_.gap_every_s, settings_.gap_min_s, settings_.gap_max_s, device.gap_start_ms,
                 device.gap_end_ms, device.random);
  return at_ms < device.gap_start_ms;
}

}  // namespace telegate::sim
