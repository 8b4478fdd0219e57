#include "motion.hpp"

#include <algorithm>
#include <cmath>

namespace telegate::sim {

Fix Track::advance(std::int64_t now_ms, std::mt19937_64& random) {
  const double seconds = static_cast<double>(now_ms - last_ms) / 1000.0;
  last_ms = now_ms;
  std::normal_distribution<double> turn(0.0, 3.0), accelerate(0.0, 0.5);
  // Rounded as it is printed (%.1f), so 359.96 cannot go out as "360.0", which is invalid.
  heading_deg = std::fmod(std::round((heading_deg + turn(random) + 360.0) * 10.0) / 10.0, 360.0);
  speed_mps = std::clamp(speed_mps + accelerate(random), 0.0, 33.0);
  const double metres = speed_mps * seconds;
  const double radians = heading_deg * M_PI / 180.0;
  lat += metres * std::cos(radians) / 111'320.0;
  lon += metres * std::sin(radians) / (111'320.0 * std::cos(lat * M_PI / 180.0));
  return Fix{now_ms, lat, lon, speed_mps, heading_deg, 4.5, 87};
}

}  // namespace telegate::sim
