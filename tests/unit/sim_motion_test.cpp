// telegate-sim's device motion (speed, heading and positions agree; stops; GPS noise) and the
// fleet's store-and-forward through coverage gaps.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "load_driver.hpp"
#include "motion.hpp"
#include "telegate/codecs/codec.hpp"

using namespace telegate::sim;

namespace {

constexpr double kMetresPerDegree = 111'320.0;
constexpr std::int64_t kStart = 1'790'000'000'000;  // any epoch ms

// East and north metres between two fixes (flat earth: fixes are at most a few km apart).
std::pair<double, double> displacement(const Fix& a, const Fix& b) {
  const double mid = (a.lat + b.lat) / 2.0 * M_PI / 180.0;
  return {(b.lon - a.lon) * kMetresPerDegree * std::cos(mid), (b.lat - a.lat) * kMetresPerDegree};
}

double angle_between(double a, double b) {
  const double d = std::fmod(std::abs(a - b), 360.0);
  return std::min(d, 360.0 - d);
}

MotionSettings no_stops() {
  MotionSettings settings;
  settings.stop_every_s = 0;
  return settings;
}

}  // namespace

TEST_CASE("on a straight road, distance covered = mean speed × time and heading = direction, within the GPS noise") {
  // 111 km due east along the equator, so the device never turns round in this test.
  const MotionModel model({Route("east", {{0.0, 10.0}, {0.0, 11.0}})}, no_stops());
  DeviceMotion device = model.start(1, kStart);
  device.distance_m = 0;
  Fix previous = model.advance(device, kStart);
  for (int i = 1; i <= 100; ++i) {
    const Fix fix = model.advance(device, kStart + i * 30'000);
    const auto [east, north] = displacement(previous, fix);
    const double expected_m = (previous.speed_mps + fix.speed_mps) / 2.0 * 30.0;
    // Noise: σ = accuracy/√2 ≤ 3.6 m per axis per fix; 25 m is 5σ of the difference of two fixes.
    CHECK(std::abs(std::hypot(east, north) - expected_m) < 25.0);
    CHECK(angle_between(std::atan2(east, north) * 180.0 / M_PI, fix.heading_deg) < 8.0);
    CHECK(fix.heading_deg == doctest::Approx(90.0));
    CHECK(fix.speed_mps >= 4.0);
    CHECK(fix.accuracy_m >= 3.0);
    CHECK(fix.accuracy_m <= 5.0);
    previous = fix;
  }
}

TEST_CASE("the noise's spread matches the accuracy the fixes report") {
  const MotionModel model({Route("east", {{0.0, 10.0}, {0.0, 11.0}})}, no_stops());
  double squared_error = 0, squared_accuracy = 0;
  for (std::uint64_t seed = 0; seed < 2000; ++seed) {
    DeviceMotion device = model.start(seed, kStart);
    device.distance_m = 50'000;
    const Fix fix = model.advance(device, kStart);  // no time passes: only the noise moves it
    const double truth_lon = 10.0 + 50'000 / kMetresPerDegree;
    const auto [east, north] = displacement(Fix{0, 0.0, truth_lon}, fix);
    squared_error += east * east + north * north;
    squared_accuracy += fix.accuracy_m * fix.accuracy_m;
  }
  CHECK(std::sqrt(squared_error / 2000) == doctest::Approx(std::sqrt(squared_accuracy / 2000)).epsilon(0.1));
}

TEST_CASE("a device on a recorded route reports headings of the road and moves no farther than its speed allows") {
  const auto routes = load_routes(TELEGATE_SOURCE_DIR "/firmware-sim/routes");
  REQUIRE(routes.size() == 3);
  for (const Route& route : routes) CHECK_MESSAGE(route.length_m() > 1000, route.name());
  const MotionModel model(routes, no_stops());
  for (std::uint64_t seed = 0; seed < 6; ++seed) {
    DeviceMotion device = model.start(seed, kStart);
    Fix previous = model.advance(device, kStart);
    for (int i = 1; i <= 600; ++i) {
      const Fix fix = model.advance(device, kStart + i * 1000);
      const auto [east, north] = displacement(previous, fix);
      // The chord is at most the road driven; the noise adds at most ~25 m.
      CHECK(std::hypot(east, north) <= (previous.speed_mps + fix.speed_mps) / 2.0 + 25.0);
      CHECK(fix.heading_deg >= 0.0);
      CHECK(fix.heading_deg < 360.0);
      previous = fix;
    }
  }
}

TEST_CASE("a stopped device reports speed 0 and stays put, then drives on") {
  MotionSettings settings;
  settings.stop_every_s = 120;
  settings.stop_min_s = 30;
  settings.stop_max_s = 60;
  const MotionModel model({Route("east", {{0.0, 10.0}, {0.0, 12.0}})}, settings);
  DeviceMotion device = model.start(3, kStart);
  device.distance_m = 0;
  Fix previous = model.advance(device, kStart);
  std::size_t stopped = 0, moving = 0;
  for (int i = 1; i <= 3600; ++i) {
    const Fix fix = model.advance(device, kStart + i * 1000);
    if (fix.speed_mps == 0.0 && previous.speed_mps == 0.0) {
      ++stopped;
      const auto [east, north] = displacement(previous, fix);
      CHECK(std::hypot(east, north) < 25.0);  // only noise
    } else if (fix.speed_mps > 0.0) {
      ++moving;
    }
    previous = fix;
  }
  // About 3600 / (120 + 45) ≈ 22 stops of ~45 s: a quarter of the time.
  CHECK(stopped > 300);
  CHECK(moving > 1800);
}

TEST_CASE("through coverage gaps the fleet keeps records and sends them later, once, in order, with their times") {
  MotionSettings settings;
  settings.gap_every_s = 60;
  settings.gap_min_s = 30;
  settings.gap_max_s = 90;
  const MotionModel model(synthetic_routes(2, 5), settings);
  LoadPlan plan;
  plan.devices = 2;
  plan.batch = 2;
  plan.records = 400;
  plan.report_interval_s = 10;
  plan.run_id = "run";
  Fleet fleet(plan, model);

  telegate::codecs::CodecRegistry registry;
  telegate::codecs::register_builtin_codecs(registry);
  const auto codec = registry.create("json", {});
  std::map<std::size_t, std::vector<std::pair<std::string, std::int64_t>>> sent;  // device → (msg_id, time)
  std::size_t late_batches = 0;
  Batch batch;
  while (fleet.take(batch)) {  // the schedule is virtual: no waiting needed
    telegate::codecs::DecodedBatch decoded;
    REQUIRE(codec->decode(batch.body, {"sim", batch.device_id, "http", "application/json"}, decoded).has_value());
    REQUIRE(decoded.errors().empty());
    REQUIRE(decoded.records().size() == batch.records);
    if (batch.records > plan.batch) {
      ++late_batches;
      // A released backlog spans the gap: its first record is older than one report interval.
      CHECK(decoded.records().back().event_time_ms - decoded.records().front().event_time_ms > 10'000);
    }
    for (const auto& record : decoded.records()) sent[batch.device].emplace_back(record.msg_id, record.event_time_ms);
  }
  CHECK(late_batches > 0);
  CHECK(fleet.forwarded() > 0);
  CHECK(fleet.made() == 400);
  std::size_t total = 0;
  for (const auto& [device, records] : sent) {
    for (std::size_t i = 0; i < records.size(); ++i) {
      CHECK(records[i].first == "run-sim-" + std::to_string(device) + "-" + std::to_string(i));  // each once, in order
      if (i) CHECK(records[i].second > records[i - 1].second);  // event times as made: 5 s apart
    }
    total += records.size();
  }
  CHECK(total == 400);
}

TEST_CASE("the GPX reader takes track points in any attribute order and refuses unreadable ones") {
  const auto points = parse_gpx_track(
      "<gpx><wpt lat=\"1\" lon=\"2\"/><trk><trkseg><trkpt lon='13.7' lat='45.2'><ele>3</ele></trkpt>\n"
      "<trkpt\n lat=\"45.3\" lon=\"13.8\"/></trkseg></trk></gpx>");
  REQUIRE(points.size() == 2);  // the waypoint is not part of the track
  CHECK(points[0].lat == 45.2);
  CHECK(points[0].lon == 13.7);
  CHECK(points[1].lon == 13.8);
  CHECK_THROWS_AS(parse_gpx_track("<gpx></gpx>"), std::invalid_argument);
  CHECK_THROWS_AS(parse_gpx_track("<trkpt lat=\"45.2\" lon=\"east\"/>"), std::invalid_argument);
  CHECK_THROWS_AS(parse_gpx_track("<trkpt lat=\"145.2\" lon=\"13\"/>"), std::invalid_argument);
  CHECK_THROWS_AS(parse_gpx_track("<trkpt lat=\"45.2\" lon="), std::invalid_argument);
  CHECK_THROWS_AS(Route("one point", {{45.0, 13.0}, {45.0, 13.0}}), std::invalid_argument);
}
