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

TEST_CASE("every range refuses just past each bound, NaN and both infinities, with the exact message") {
  struct Field {
    std::string name;
    void (*set)(CanonicalRecord&, double);
    double min, max;
    bool max_inclusive;
    std::string bounds;  // as the message prints them
  };
  const Field fields[] = {
      {"lat", [](CanonicalRecord& r, double v) { r.location.lat = v; }, -90, 90, true, "[-90, 90]"},
      {"lon", [](CanonicalRecord& r, double v) { r.location.lon = v; }, -180, 180, true, "[-180, 180]"},
      {"alt", [](CanonicalRecord& r, double v) { r.location.alt = v; }, -1000, 100000, true, "[-1000, 100000]"},
      {"speed", [](CanonicalRecord& r, double v) { r.location.speed = v; }, 0, 350, true, "[0, 350]"},
      {"heading", [](CanonicalRecord& r, double v) { r.location.heading = v; }, 0, 360, false, "[0, 360)"},
      {"accuracy", [](CanonicalRecord& r, double v) { r.location.accuracy = v; }, 0, 1e6, true, "[0, 1000000]"},
      {"battery", [](CanonicalRecord& r, double v) { r.location.battery = v; }, 0, 100, true, "[0, 100]"},
  };
  const double inf = std::numeric_limits<double>::infinity();
  for (const Field& f : fields) {
    CAPTURE(f.name);
    const auto with = [&](double value) {
      CanonicalRecord record = good_location();
      f.set(record, value);
      return problem(record);
    };
    CHECK(with(f.min).first.empty());
    CHECK(with(std::nextafter(f.max, -inf)).first.empty());
    CHECK(with(f.max).first == (f.max_inclusive ? "" : f.name));
    CHECK(with(std::nextafter(f.min, -inf)).first == f.name);
    CHECK(with(std::nextafter(f.max, inf)).first == f.name);
    const std::pair<std::string, std::string> refused[] = {
        {f.name, "must be within " + f.bounds + ", got nan"},
        {f.name, "must be within " + f.bounds + ", got inf"},
        {f.name, "must be within " + f.bounds + ", got -inf"},
        {f.name, "must be within " + f.bounds + ", got " + (f.min == 0 ? "-1" : f.name == "lat" ? "-91" : f.name == "lon" ? "-181" : "-1001")},
    };
    CHECK(with(std::nan("")) == refused[0]);
    CHECK(with(inf) == refused[1]);
    CHECK(with(-inf) == refused[2]);
    CHECK(with(f.min - 1) == refused[3]);
  }
  CHECK(problem([] {
          CanonicalRecord record = good_location();
          record.location.lat = 90.5;
          return record;
        }()) == std::pair<std::string, std::string>{"lat", "must be within [-90, 90], got 90.5"});
}

TEST_CASE("the first field out of range is the one named, in lat, lon, alt, speed, heading, accuracy, battery order") {
  CanonicalRecord record = good_location();
  record.location.battery = 101;
  record.location.accuracy = -1;
  record.location.heading = 360;
  record.location.speed = 400;
  record.location.alt = -2000;
  record.location.lon = 200;
  record.location.lat = 100;
  for (const std::string field : {"lat", "lon", "alt", "speed", "heading", "accuracy", "battery"}) {
    CHECK(problem(record).first == field);
    if (field == "lat") record.location.lat = 0;
    if (field == "lon") record.location.lon = 0;
    if (field == "alt") record.location.alt.reset();
    if (field == "speed") record.location.speed = 1;
    if (field == "heading") record.location.heading = 359.9;
    if (field == "accuracy") record.location.accuracy.reset();
  }
  record.location.battery.reset();
  CHECK(problem(record).first.empty());
}

TEST_CASE("the speed bound follows the limits, including an infinite one that still refuses inf") {
  CanonicalRecord record = good_location();
  ValidationLimits limits;
  limits.max_speed_mps = std::numeric_limits<double>::infinity();
  record.location.speed = 1e300;
  CHECK(problem(record, limits).first.empty());
  record.location.speed = std::numeric_limits<double>::infinity();
  CHECK(problem(record, limits) == std::pair<std::string, std::string>{"speed", "must be within [0, inf], got inf"});
}

TEST_CASE("ids: every byte value at every position, for every way the id is split into words") {
  // 1–3 bytes (first, middle, last byte), 4–7 (two overlapping halves), 8, 9 and 21 bytes (whole
  // words and an overlapping last word, so each position mod 8 is both in a word and the tail).
  for (const std::size_t length : {1, 2, 3, 4, 5, 6, 7, 8, 9, 21})
  for (int byte = 0; byte < 256; ++byte) {
    const std::string base = std::string("abcdefghijklmnopqrstu").substr(0, length);
    const char c = static_cast<char>(byte);
    const bool printable = byte > 0x20 && byte < 0x7f;
    for (std::size_t position = 0; position < base.size(); ++position) {
      std::string id = base;
      id[position] = c;
      for (const std::string field : {"device_id", "msg_id"}) {
        CanonicalRecord record = good_location();
        (field == "device_id" ? record.device_id : record.msg_id) = id;
        const auto [got_field, reason] = problem(record);
        if (printable) {
          if (!got_field.empty()) FAIL("byte ", byte, " at ", position, " refused: ", reason);
          continue;
        }
        char expected[96];
        std::snprintf(expected, sizeof expected,
                      "must be printable ASCII without spaces (byte 0x%02x at position %zu)", byte, position);
        if (got_field != field || reason != expected) {
          FAIL("byte ", byte, " at ", position, " in ", field, ": got ", got_field, " / ", reason);
        }
      }
    }
  }
  CanonicalRecord record = good_location();
  record.device_id = "ab\x01" "cdefghijk\x7f";
  CHECK(problem(record).second == "must be printable ASCII without spaces (byte 0x01 at position 2)");
  record.device_id = std::string(128, '~');
  CHECK(problem(record).first.empty());
  record.device_id = std::string(129, '~');
  CHECK(problem(record) == std::pair<std::string, std::string>{"device_id", "must be at most 128 bytes, got 129"});
  for (std::size_t length = 1; length <= 17; ++length) {
    record.device_id = std::string(length, '!');
    CHECK(problem(record).first.empty());
    record.device_id.back() = ' ';
    CHECK(problem(record).first == "device_id");
  }
}

TEST_CASE("reading names are ids too") {
  CanonicalRecord record = good_location();
  record.type = MessageType::sensor;
  record.readings.push_back({"temperature-outdoor", 21.5, "Cel"});
  CHECK(problem(record).first.empty());
  record.readings.push_back({"temperature\toutdoor", 21.5, "Cel"});
  CHECK(problem(record) == std::pair<std::string, std::string>{
                               "readings[1].name", "must be printable ASCII without spaces (byte 0x09 at position 11)"});
}
