#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "telegate/codecs/validate.hpp"

using namespace telegate::codecs;

namespace {

constexpr std::int64_t kNow = 1795514400000;

CanonicalRecord good_location() {
  CanonicalRecord record;
  record.index = 3;
  record.device_id = "truck-1";
  record.type = MessageType::location;
  record.event_time_ms = kNow - 1000;
  record.location.lat = 46.05;
  record.location.lon = 14.5;
  return record;
}

// The field a record fails on, and its reason; "" when the record is valid.
std::pair<std::string, std::string> problem(const CanonicalRecord& record, ValidationLimits limits = {}) {
  const auto error = validate(record, limits, kNow);
  if (!error) return {"", ""};
  CHECK(error->index == record.index);
  return {error->field, error->reason};
}

}  // namespace

TEST_CASE("a plausible record is valid") { CHECK(problem(good_location()).first.empty()); }

TEST_CASE("coordinates and motion must be in range and finite") {
  struct Case {
    void (*mutate)(CanonicalRecord&);
    std::string field;
    std::string mentions;
  };
  const Case cases[] = {
      {[](CanonicalRecord& r) { r.location.lat = 90.0001; }, "lat", "[-90, 90]"},
      {[](CanonicalRecord& r) { r.location.lat = -91; }, "lat", "[-90, 90]"},
      {[](CanonicalRecord& r) { r.location.lat = std::nan(""); }, "lat", "[-90, 90]"},
      {[](CanonicalRecord& r) { r.location.lon = 180.5; }, "lon", "[-180, 180]"},
      {[](CanonicalRecord& r) { r.location.lon = std::numeric_limits<double>::infinity(); }, "lon", "[-180, 180]"},
      {[](CanonicalRecord& r) { r.location.alt = 200000; }, "alt", "100000"},
      {[](CanonicalRecord& r) { r.location.speed = -1; }, "speed", "[0, 350]"},
      {[](CanonicalRecord& r) { r.location.speed = 351; }, "speed", "[0, 350]"},
      {[](CanonicalRecord& r) { r.location.heading = 360; }, "heading", "[0, 360)"},
      {[](CanonicalRecord& r) { r.location.heading = -0.5; }, "heading", "[0, 360)"},
      {[](CanonicalRecord& r) { r.location.accuracy = -3; }, "accuracy", "[0,"},
      {[](CanonicalRecord& r) { r.location.battery = 101; }, "battery", "[0, 100]"},
  };
  for (const Case& c : cases) {
    CanonicalRecord record = good_location();
    c.mutate(record);
    const auto [field, reason] = problem(record);
    CAPTURE(reason);
    CHECK(field == c.field);
    CHECK(reason.find(c.mentions) != std::string::npos);
  }
  CanonicalRecord edges = good_location();
  edges.location.lat = -90;
  edges.location.lon = 180;
  edges.location.heading = 0;
  edges.location.speed = 0;
  edges.location.battery = 100;
  CHECK(problem(edges).first.empty());
}

TEST_CASE("event time: not too far ahead of the gateway clock, not too old") {
  CanonicalRecord record = good_location();
  record.event_time_ms = kNow + 301'000;
  auto [field, reason] = problem(record);
  CHECK(field == "ts");
  CHECK(reason.find("301 s ahead") != std::string::npos);
  CHECK(reason.find("300 s") != std::string::npos);

  record.event_time_ms = kNow + 299'000;
  CHECK(problem(record).first.empty());

  ValidationLimits limits;
  limits.max_age = std::chrono::hours(1);
  record.event_time_ms = kNow - 3'601'000;
  CHECK(problem(record, limits).first == "ts");
}

TEST_CASE("ids become Kafka keys: printable, no spaces, bounded") {
  CanonicalRecord record = good_location();
  record.device_id = "";
  CHECK(problem(record).first == "device_id");
  record.device_id = "truck 1";
  auto [field, reason] = problem(record);
  CHECK(field == "device_id");
  CHECK(reason.find("0x20") != std::string::npos);
  record.device_id = std::string(129, 'a');
  CHECK(problem(record).first == "device_id");
  record.device_id = "truck-1";
  record.msg_id = "line\nbreak";
  CHECK(problem(record).first == "msg_id");
}

TEST_CASE("sensor records need sane readings") {
  CanonicalRecord record = good_location();
  record.type = MessageType::sensor;
  CHECK(problem(record).first == "readings");
  record.readings.push_back({"temperature", 21.5, "Cel"});
  CHECK(problem(record).first.empty());
  record.readings.push_back({"", 1, ""});
  CHECK(problem(record).first == "readings[1].name");
  record.readings[1] = {"rh", std::nan(""), "%"};
  CHECK(problem(record).first == "readings[1].value");
  record.readings.resize(1);
  ValidationLimits limits;
  limits.max_readings = 3;
  for (int i = 0; i < 3; ++i) record.readings.push_back({"r" + std::to_string(i), 1, ""});
  const auto [field, reason] = problem(record, limits);
  CHECK(field == "readings");
  CHECK(reason.find("at most 3") != std::string::npos);
}
