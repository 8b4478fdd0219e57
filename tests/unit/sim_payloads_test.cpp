// telegate-sim's device profiles, decoded by the gateway's own codecs: what each profile sends
// must read back as the fixes it was made from.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <tuple>
#include <vector>

#include "batch_acks.hpp"
#include "payloads.hpp"
#include "sensors.hpp"
#include "telegate/codecs/codec.hpp"

using namespace telegate::sim;
using namespace telegate::codecs;

namespace {

const Fix kFixes[] = {
    {1'790'000'000'000, 46.0512345, 14.5054321, 12.5, 359.9, 4.2, 87},
    {1'790'000'005'000, 46.0513345, 14.5055321, 0.0, 0.0, 3.1, 86},
};

std::unique_ptr<Codec> codec(const std::string& name) {
  CodecRegistry registry;
  register_builtin_codecs(registry);
  return registry.create(name, {});
}

DecodedBatch decode(Profile profile, std::size_t fixes, const std::string& codec_name) {
  std::string body;
  encode(profile, "dev-7", "run-dev-7", 40, std::span(kFixes, fixes), body);
  DecodedBatch batch;
  const auto decoded = codec(codec_name)->decode(
      body, DecodeContext{"sim", "dev-7", "http", profile_info(profile).wire.content_type}, batch);
  REQUIRE_MESSAGE(decoded.has_value(), body);
  REQUIRE_MESSAGE(batch.errors().empty(), body);
  REQUIRE(batch.records().size() == fixes);
  return batch;
}

void check_location(const CanonicalRecord& record, const Fix& fix, double speed_tolerance, double heading_tolerance) {
  CHECK(record.device_id == "dev-7");
  CHECK(std::abs(record.location.lat - fix.lat) < 1e-6);  // 0.1 m: OwnTracks prints 6 decimals
  CHECK(std::abs(record.location.lon - fix.lon) < 1e-6);
  REQUIRE(record.location.speed);
  CHECK(std::abs(*record.location.speed - fix.speed_mps) <= speed_tolerance);
  REQUIRE(record.location.heading);
  CHECK(std::abs(*record.location.heading - fix.heading_deg) <= heading_tolerance);
  REQUIRE(record.location.accuracy);
  CHECK(std::abs(*record.location.accuracy - fix.accuracy_m) <= 0.5);
  REQUIRE(record.location.battery);
  CHECK(*record.location.battery == doctest::Approx(fix.battery_pct));
}

}  // namespace

TEST_CASE("telegate-json and telegate-protobuf: batches their codecs read back field for field, msg_ids included") {
  CHECK(profile_info(Profile::telegate_protobuf).wire.content_type == "application/x-protobuf");
  // JSON prints speed with 2 decimals and heading with 1; protobuf floats come back exactly.
  for (const auto& [profile, codec_name, tolerance] :
       {std::tuple{Profile::telegate_json, "json", 0.05}, std::tuple{Profile::telegate_protobuf, "protobuf", 0.001}}) {
    CAPTURE(codec_name);
    const DecodedBatch batch = decode(profile, 2, codec_name);
    for (std::size_t i = 0; i < 2; ++i) {
      const CanonicalRecord& record = batch.records()[i];
      CHECK(record.msg_id == "run-dev-7-" + std::to_string(40 + i));
      CHECK(record.event_time_ms == kFixes[i].time_ms);
      check_location(record, kFixes[i], tolerance, tolerance);
    }
  }
}

TEST_CASE("telegate-json: byte for byte what printf's %.7f/%.2f/%.1f/%.0f made, for random fixes the world over") {
  // The body is rendered with to_chars from scaled integers; printf rounds the exact binary
  // value. Random values almost never sit within an ulp of a tie, so the two must agree.
  SmallRandom random(7);
  const auto uniform = [&random](double low, double high) {
    return low + (high - low) * static_cast<double>(random() >> 11) / static_cast<double>(1ULL << 53);
  };
  std::vector<Fix> fixes;
  for (int i = 0; i < 20'000; ++i) {
    fixes.push_back({1'790'000'000'000 + i * 997, uniform(-90, 90), uniform(-180, 180), uniform(0, 40),
                     std::round(uniform(0, 360) * 10) / 10, std::round(uniform(3, 5) * 10) / 10, std::round(uniform(5, 100))});
  }
  fixes.push_back({0, -0.00000001, -0.0, 0.0, 0.0, 0.0, 0.0});  // signs of values that round to zero
  fixes.push_back({1, 89.99999999, -179.99999996, 0.005, 359.9, 10.0, 100.0});  // carries into the integer part
  std::string expected = "[";
  for (std::size_t i = 0; i < fixes.size(); ++i) {
    const Fix& fix = fixes[i];
    char text[512];
    const int length = std::snprintf(
        text, sizeof text,
        R"(%s{"device_id":"dev-7","type":"location","ts":%lld,"msg_id":"run-dev-7-%llu","lat":%.7f,"lon":%.7f,"speed":%.2f,"heading":%.1f,"accuracy":%.1f,"battery":%.0f})",
        i ? "," : "", static_cast<long long>(fix.time_ms), static_cast<unsigned long long>(40 + i), fix.lat, fix.lon,
        fix.speed_mps, fix.heading_deg, fix.accuracy_m, fix.battery_pct);
    expected.append(text, static_cast<std::size_t>(length));
  }
  expected += ']';
  std::string body = "a longer body left from the previous batch";
  encode(Profile::telegate_json, "dev-7", "run-dev-7", 40, fixes, body);
  REQUIRE(body.size() == expected.size());
  CHECK(body == expected);
}

TEST_CASE("osmand: the OsmAnd query string, one fix, speed in knots, time in seconds; no msg_id") {
  const ProfileInfo& info = profile_info(Profile::osmand);
  CHECK(info.max_records_per_body == 1);
  CHECK(info.wire.http_payload == HttpPayload::query);
  CHECK(info.wire.http_auth == HttpAuth::path_token);
  const DecodedBatch batch = decode(Profile::osmand, 1, "osmand");
  const CanonicalRecord& record = batch.records()[0];
  CHECK(record.msg_id.empty());  // the gateway generates one: the app has none to send
  CHECK(record.event_time_ms == kFixes[0].time_ms / 1000 * 1000);
  check_location(record, kFixes[0], 0.01, 0.05);
}

TEST_CASE("owntracks: one _type location message with the app's integer fields; the app's reply is native") {
  const ProfileInfo& info = profile_info(Profile::owntracks);
  CHECK(info.max_records_per_body == 1);
  CHECK(info.wire.reply == ReplyStyle::native);
  CHECK(info.wire.http_auth == HttpAuth::basic);
  std::string body;
  encode(Profile::owntracks, "dev-7", "run-dev-7", 0, std::span(kFixes, 1), body);
  CHECK(body.starts_with(R"({"_type":"location","tid":"-7","tst":1790000000,)"));
  const DecodedBatch batch = decode(Profile::owntracks, 1, "owntracks");
  const CanonicalRecord& record = batch.records()[0];
  CHECK(record.event_time_ms == kFixes[0].time_ms / 1000 * 1000);
  // km/h and degrees as integers: 45 km/h for 12.5 m/s, 360 → 0.
  check_location(record, kFixes[0], 0.3, 360.0);
  CHECK(*record.location.heading == 0.0);
  CHECK(*record.location.speed == doctest::Approx(45.0 / 3.6));
}

TEST_CASE("profiles by name, and an unknown one listed") {
  CHECK(parse_profile("osmand") == Profile::osmand);
  CHECK_THROWS_WITH_AS(parse_profile("traccar"), doctest::Contains("telegate-json | telegate-protobuf | osmand | owntracks"),
                       std::invalid_argument);
}

namespace {

// The readings a sensor profile sent for fix i, named as the codec names them.
void check_readings(const CanonicalRecord& record, std::size_t i, const std::string& name_prefix) {
  const telegate::sim::SensorReading expected = sensor_reading("dev-7", kFixes[i]);
  CHECK(record.type == MessageType::sensor);
  CHECK(record.event_time_ms == kFixes[i].time_ms);
  REQUIRE(record.readings.size() == 3);
  CHECK(record.readings[0].name == name_prefix + "temperature");
  CHECK(record.readings[0].unit == "Cel");
  CHECK(record.readings[0].value == doctest::Approx(expected.temperature_c).epsilon(0.001));
  CHECK(record.readings[0].value > 5.0);
  CHECK(record.readings[0].value < 30.0);
  CHECK(record.readings[1].name == name_prefix + "humidity");
  CHECK(record.readings[1].value == doctest::Approx(expected.humidity_pct).epsilon(0.01));
  CHECK(record.readings[2].name == name_prefix + "battery");
  CHECK(record.readings[2].value == doctest::Approx(kFixes[i].battery_pct));
}

}  // namespace

TEST_CASE("sensor-json: sensor records the json codec reads back, msg_ids included") {
  const DecodedBatch batch = decode(Profile::sensor_json, 2, "json");
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(batch.records()[i].msg_id == "run-dev-7-" + std::to_string(40 + i));
    check_readings(batch.records()[i], i, "");
  }
}

TEST_CASE("sensor-senml: one sensor record per fix from the senml codec, readings named bn + n") {
  const DecodedBatch batch = decode(Profile::sensor_senml, 2, "senml");
  for (std::size_t i = 0; i < 2; ++i) check_readings(batch.records()[i], i, "urn:dev:dev-7:");
}

TEST_CASE("sensor readings: the same device and time read the same, another device differs") {
  CHECK(sensor_reading("dev-7", kFixes[0]).temperature_c == sensor_reading("dev-7", kFixes[0]).temperature_c);
  CHECK(sensor_reading("dev-7", kFixes[0]).temperature_c != sensor_reading("dev-8", kFixes[0]).temperature_c);
}

TEST_CASE("BatchAcks: a whole-batch ack names the batch's msg_ids but the rejected ones") {
  Batch batch;
  batch.records = 4;
  batch.msg_id_prefix = "run-dev-7";
  batch.first_sequence = 10;
  BatchAcks acks;
  Outcome outcome;
  const std::size_t rejected[] = {1, 3};
  acks.acknowledge(batch, outcome, rejected);
  REQUIRE(outcome.acknowledged.size() == 2);
  CHECK(outcome.acknowledged[0] == "run-dev-7-10");
  CHECK(outcome.acknowledged[1] == "run-dev-7-12");
  acks.acknowledge(batch, outcome);
  CHECK(outcome.acknowledged.size() == 4);
  batch.msg_id_prefix.clear();  // a profile without msg_ids: the gateway made them, none to name
  acks.acknowledge(batch, outcome);
  CHECK(outcome.acknowledged.empty());
}
