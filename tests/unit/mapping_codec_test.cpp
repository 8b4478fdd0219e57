// The mapping codec: codec_options compiled into a plan, then JSON, NDJSON and form bodies
// decoded through it. Compile errors must name the dotted key; record errors the field.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>

#include "mapping/mapping_codec.hpp"
#include "telegate/codecs/codec.hpp"

using namespace telegate::codecs;

namespace {

std::unique_ptr<Codec> compile(const std::string& yaml, const DecodeLimits& limits = {}) {
  CodecRegistry registry;
  register_builtin_codecs(registry);
  OptionReader options(YAML::Load(yaml), "codec_options");
  return registry.compile("mapping", options, limits)->instantiate();
}

// The OptionError text of compiling `yaml`, or "compiled" when it compiles.
std::string compile_error(const std::string& yaml) {
  try {
    compile(yaml);
  } catch (const OptionError& error) {
    return error.what();
  }
  return "compiled";
}

struct Decoded {
  std::expected<void, CodecError> result;
  DecodedBatch batch;
};

Decoded decode(Codec& codec, const std::string& body, const std::string& content_type = "application/json") {
  Decoded out;
  out.result = codec.decode(body, DecodeContext{"acme", "tracker-9", "http", content_type}, out.batch);
  return out;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const std::string kTracker = R"(
records: /data/points
message_type: location
fields:
  lat:      {pointer: /lat_e7, scale: 1e-7}
  lon:      {pointer: /lon_e7, scale: 1e-7}
  time:     {pointer: /ts, unit: s}
  speed:    {pointer: /spd, unit: kmh}
  alt:      {pointer: /alt, default: 0}
  heading:  {pointer: /hdg, min: 0, max: 360}
  accuracy: {pointer: /acc}
  battery:  {pointer: /bat, scale: 100}
  msg_id:   {pointer: /uuid}
  device_id: {pointer: /imei}
)";

// Minimal options around one field under test.
std::string with_time(const std::string& time_spec) {
  return "fields:\n  lat: {pointer: /lat}\n  lon: {pointer: /lon}\n  time: " + time_spec;
}

}  // namespace

TEST_CASE("the issue's example: scaled integers, units, defaults, ranges, ids") {
  auto codec = compile(kTracker);
  auto decoded = decode(*codec, R"({"data": {"points": [
      {"lat_e7": 460569460, "lon_e7": 145057510, "ts": 1795514400, "spd": 36, "hdg": 87.5, "acc": 4.5,
       "bat": 0.81, "uuid": "p-1", "imei": 356938035643809},
      {"lat_e7": -338688000, "lon_e7": 1512093000, "ts": 1795514410}]}})");
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.errors().empty());
  REQUIRE(decoded.batch.records().size() == 2);
  const CanonicalRecord& first = decoded.batch.records()[0];
  CHECK(first.index == 0);
  CHECK(first.type == MessageType::location);
  CHECK(first.location.lat == doctest::Approx(46.056946));
  CHECK(first.location.lon == doctest::Approx(14.505751));
  CHECK(first.event_time_ms == 1795514400000);
  CHECK(*first.location.speed == doctest::Approx(10.0));  // 36 km/h
  CHECK(*first.location.alt == 0);                         // default
  CHECK(*first.location.heading == 87.5);
  CHECK(*first.location.accuracy == 4.5);
  CHECK(*first.location.battery == doctest::Approx(81));
  CHECK(first.msg_id == "p-1");
  CHECK(first.device_id == "356938035643809");  // a numeric IMEI reads as its digits

  const CanonicalRecord& second = decoded.batch.records()[1];
  CHECK(second.index == 1);
  CHECK(second.location.lat == doctest::Approx(-33.8688));
  CHECK(second.device_id == "tracker-9");  // no imei: the authenticated device
  CHECK(second.msg_id.empty());
  CHECK_FALSE(second.location.speed.has_value());
  CHECK_FALSE(second.location.battery.has_value());
}

TEST_CASE("time units: s, ms, us, auto, rfc3339; scale and offset apply before the unit") {
  const std::string body_number = R"({"lat": 1, "lon": 2, "t": 1795514400})";
  CHECK(decode(*compile(with_time("{pointer: /t, unit: s}")), body_number).batch.records()[0].event_time_ms ==
        1795514400000);
  CHECK(decode(*compile(with_time("{pointer: /t, unit: ms}")), R"({"lat":1,"lon":2,"t":1795514400123})")
            .batch.records()[0]
            .event_time_ms == 1795514400123);
  CHECK(decode(*compile(with_time("{pointer: /t, unit: us}")), R"({"lat":1,"lon":2,"t":1795514400123456})")
            .batch.records()[0]
            .event_time_ms == 1795514400123);
  auto automatic = compile(with_time("{pointer: /t, unit: auto}"));
  CHECK(decode(*automatic, body_number).batch.records()[0].event_time_ms == 1795514400000);
  CHECK(decode(*automatic, R"({"lat":1,"lon":2,"t":1795514400500})").batch.records()[0].event_time_ms ==
        1795514400500);
  // auto also reads RFC 3339 text, and numeric strings.
  CHECK(decode(*automatic, R"({"lat":1,"lon":2,"t":"2026-11-24T10:00:00Z"})").batch.records()[0].event_time_ms ==
        1795514400000);
  CHECK(decode(*automatic, R"({"lat":1,"lon":2,"t":"1795514400"})").batch.records()[0].event_time_ms ==
        1795514400000);

  auto rfc3339 = compile(with_time("{pointer: /t, unit: rfc3339}"));
  CHECK(decode(*rfc3339, R"({"lat":1,"lon":2,"t":"2026-11-24T11:00:00.250+01:00"})")
            .batch.records()[0]
            .event_time_ms == 1795514400250);
  auto bad = decode(*rfc3339, R"({"lat":1,"lon":2,"t":1795514400})");
  REQUIRE(bad.batch.errors().size() == 1);
  CHECK(bad.batch.errors()[0].field == "time");
  CHECK(bad.batch.errors()[0].reason == "must be an RFC 3339 date-time string (at /t)");

  // A device that counts seconds since 2000-01-01 (offset 946684800 s to the Unix epoch).
  auto since_2000 = compile(with_time("{pointer: /t, unit: s, offset: 946684800}"));
  CHECK(decode(*since_2000, R"({"lat":1,"lon":2,"t":848829600})").batch.records()[0].event_time_ms ==
        1795514400000);
  // Deciseconds.
  auto deciseconds = compile(with_time("{pointer: /t, unit: s, scale: 0.1}"));
  CHECK(decode(*deciseconds, R"({"lat":1,"lon":2,"t":17955144005})").batch.records()[0].event_time_ms ==
        1795514400500);
}

TEST_CASE("a time that is optional falls back to the gateway clock; a required one is named") {
  auto optional = compile(with_time("{pointer: /t, required: false}"));
  auto decoded = decode(*optional, R"({"lat": 1, "lon": 2})");
  REQUIRE(decoded.batch.records().size() == 1);
  CHECK(std::abs(decoded.batch.records()[0].event_time_ms - now_ms()) < 5000);

  auto required = compile(with_time("{pointer: /t}"));
  auto missing = decode(*required, R"([{"lat": 1, "lon": 2}, {"lat": 1, "lon": 2, "t": 1795514400}])");
  REQUIRE(missing.result.has_value());
  REQUIRE(missing.batch.errors().size() == 1);
  CHECK(missing.batch.errors()[0].index == 0);
  CHECK(missing.batch.errors()[0].field == "time");
  CHECK(missing.batch.errors()[0].reason == "is required but absent (at /t)");
  REQUIRE(missing.batch.records().size() == 1);
  CHECK(missing.batch.records()[0].index == 1);
}

TEST_CASE("speed units convert to m/s") {
  auto speed = [](const std::string& unit, double value) {
    auto codec = compile("fields: {lat: {pointer: /a}, lon: {pointer: /o}, time: {pointer: /t}, speed: {pointer: /v" +
                         (unit.empty() ? std::string() : ", unit: " + unit) + "}}");
    auto decoded = decode(*codec, R"({"a":1,"o":2,"t":1795514400,"v":)" + std::to_string(value) + "}");
    return *decoded.batch.records()[0].location.speed;
  };
  CHECK(speed("", 12.5) == 12.5);  // mps by default
  CHECK(speed("mps", 12.5) == 12.5);
  CHECK(speed("kmh", 90) == doctest::Approx(25));
  CHECK(speed("knots", 10) == doctest::Approx(5.144444));
  CHECK(speed("mph", 10) == doctest::Approx(4.4704));
}

TEST_CASE("defaults, per-field constants and the constants shorthand") {
  auto codec = compile(R"(
fields:
  lat: {pointer: /lat}
  lon: {pointer: /lon}
  time: {pointer: /t}
  alt: {pointer: /alt, default: 120}
  accuracy: {constant: 25}
  msg_id: {pointer: /id, default: none-given}
constants: {battery: 100, heading: 0}
)");
  auto decoded = decode(*codec, R"([{"lat":1,"lon":2,"t":1795514400}, {"lat":1,"lon":2,"t":1795514400,"alt":3,"id":"x"}])");
  REQUIRE(decoded.batch.records().size() == 2);
  const auto& first = decoded.batch.records()[0];
  CHECK(*first.location.alt == 120);
  CHECK(*first.location.accuracy == 25);
  CHECK(*first.location.battery == 100);
  CHECK(*first.location.heading == 0);
  CHECK(first.msg_id == "none-given");
  const auto& second = decoded.batch.records()[1];
  CHECK(*second.location.alt == 3);
  CHECK(second.msg_id == "x");

  // Constants for a fixed-position sensor's lat/lon.
  auto fixed = compile("fields: {time: {pointer: /t}}\nconstants: {lat: 46.05, lon: 14.5, device_id: gate-3}");
  auto at_gate = decode(*fixed, R"({"t": 1795514400})");
  REQUIRE(at_gate.batch.records().size() == 1);
  CHECK(at_gate.batch.records()[0].location.lat == 46.05);
  CHECK(at_gate.batch.records()[0].device_id == "gate-3");
}

TEST_CASE("min/max reject the record naming field and range; its neighbours survive") {
  auto codec = compile(R"(
fields:
  lat: {pointer: /lat}
  lon: {pointer: /lon}
  time: {pointer: /t}
  heading: {pointer: /h, min: 0, max: 360}
  battery: {pointer: /b, scale: 100, min: 0, max: 100}
)");
  auto decoded = decode(*codec, R"([{"lat":1,"lon":2,"t":1795514400,"h":400},
                                    {"lat":1,"lon":2,"t":1795514400,"h":10},
                                    {"lat":1,"lon":2,"t":1795514400,"b":1.5}])");
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.errors().size() == 2);
  CHECK(decoded.batch.errors()[0].index == 0);
  CHECK(decoded.batch.errors()[0].field == "heading");
  CHECK(decoded.batch.errors()[0].reason == "must be within [0, 360], got 400 (at /h)");
  CHECK(decoded.batch.errors()[1].index == 2);
  CHECK(decoded.batch.errors()[1].field == "battery");
  CHECK(decoded.batch.errors()[1].reason == "must be within [0, 100], got 150 (at /b)");  // after scale
  REQUIRE(decoded.batch.records().size() == 1);
  CHECK(decoded.batch.records()[0].index == 1);
}

TEST_CASE("numbers may be numeric strings; other types are named") {
  auto codec = compile(with_time("{pointer: /t}"));
  auto strings = decode(*codec, R"({"lat": " 46.5", "lon": "+14.25", "t": "1795514400"})");
  REQUIRE(strings.batch.records().size() == 1);
  CHECK(strings.batch.records()[0].location.lat == 46.5);
  CHECK(strings.batch.records()[0].location.lon == 14.25);

  auto wrong = decode(*codec, R"([{"lat": "north", "lon": 1, "t": 1},
                                  {"lat": true, "lon": 1, "t": 1},
                                  {"lat": {"deg": 1}, "lon": 1, "t": 1},
                                  {"lat": 1, "lon": [1], "t": 1},
                                  "not a record"])");
  REQUIRE(wrong.result.has_value());
  CHECK(wrong.batch.records().empty());
  REQUIRE(wrong.batch.errors().size() == 5);
  CHECK(wrong.batch.errors()[0].reason == "must be a number, got 'north' (at /lat)");
  CHECK(wrong.batch.errors()[1].reason == "must be a number, not a boolean (at /lat)");
  CHECK(wrong.batch.errors()[2].reason == "must be a number, not an object (at /lat)");
  CHECK(wrong.batch.errors()[3].field == "lon");
  CHECK(wrong.batch.errors()[3].reason == "must be a number, not an array (at /lon)");
  CHECK(wrong.batch.errors()[4].index == 4);
  CHECK(wrong.batch.errors()[4].field.empty());
  CHECK(wrong.batch.errors()[4].reason == "a record must be a JSON object, not a string");
}

TEST_CASE("required and optional fields; null is absent") {
  auto codec = compile(R"(
fields:
  lat: {pointer: /lat}
  lon: {pointer: /lon}
  time: {pointer: /t}
  battery: {pointer: /b, required: true}
  alt: {pointer: /alt}
)");
  auto decoded = decode(*codec, R"([{"lat":1,"lon":2,"t":1795514400,"b":50,"alt":null},
                                    {"lat":1,"lon":2,"t":1795514400}])");
  REQUIRE(decoded.batch.records().size() == 1);
  CHECK_FALSE(decoded.batch.records()[0].location.alt.has_value());
  REQUIRE(decoded.batch.errors().size() == 1);
  CHECK(decoded.batch.errors()[0].index == 1);
  CHECK(decoded.batch.errors()[0].field == "battery");
}

TEST_CASE("sensor readings: names, unit labels, scale; booleans read as 1/0") {
  auto codec = compile(R"(
message_type: sensor
fields:
  time: {pointer: /ts, unit: ms}
  device_id: {pointer: /dev}
readings:
  temperature: {pointer: /t, unit_label: Cel, scale: 0.1}
  humidity: {pointer: /h, unit_label: '%RH'}
  door_open: {pointer: /door}
)");
  auto decoded = decode(*codec, R"([{"ts": 1795514400000, "dev": "probe-1", "t": 215, "h": "40.5", "door": true},
                                    {"ts": 1795514400000, "t": 200},
                                    {"ts": 1795514400000}])");
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 2);
  const CanonicalRecord& first = decoded.batch.records()[0];
  CHECK(first.type == MessageType::sensor);
  CHECK(first.device_id == "probe-1");
  REQUIRE(first.readings.size() == 3);
  CHECK(first.readings[0].name == "temperature");
  CHECK(first.readings[0].value == doctest::Approx(21.5));
  CHECK(first.readings[0].unit == "Cel");
  CHECK(first.readings[1].name == "humidity");
  CHECK(first.readings[1].value == 40.5);
  CHECK(first.readings[1].unit == "%RH");
  CHECK(first.readings[2].value == 1);
  CHECK(decoded.batch.records()[1].readings.size() == 1);  // absent readings are left out
  REQUIRE(decoded.batch.errors().size() == 1);
  CHECK(decoded.batch.errors()[0].index == 2);
  CHECK(decoded.batch.errors()[0].field == "readings");
}

TEST_CASE("form bodies: /name reads a form field; percent-decoding, '+' as space, empty is absent") {
  auto codec = compile(R"(
fields:
  lat: {pointer: /lat}
  lon: {pointer: /lon}
  time: {pointer: /time, unit: rfc3339}
  alt: {pointer: /alt}
  msg_id: {pointer: /id}
  accuracy: {pointer: /nested/acc}
)");
  const std::string form = "application/x-www-form-urlencoded";
  auto decoded = decode(*codec, "?lat=46.5&lon=14.25&time=2026-11-24T11%3A00%3A00%2B01%3A00&alt=&id=a+b%2Fc&lat=9\r\n",
                        form);
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 1);
  const CanonicalRecord& record = decoded.batch.records()[0];
  CHECK(record.location.lat == 46.5);  // the first of a repeated field
  CHECK(record.event_time_ms == 1795514400000);
  CHECK_FALSE(record.location.alt.has_value());
  CHECK(record.msg_id == "a b/c");
  CHECK_FALSE(record.location.accuracy.has_value());  // a multi-token pointer never matches a form

  // An unencoded '+' offset arrives as a space and still reads.
  auto plus = decode(*codec, "lat=1&lon=2&time=2026-11-24T11:00:00+01:00", form);
  REQUIRE(plus.batch.records().size() == 1);
  CHECK(plus.batch.records()[0].event_time_ms == 1795514400000);

  auto broken = decode(*codec, "lat=1&lon=%4&time=x", form);
  REQUIRE_FALSE(broken.result.has_value());
  CHECK(broken.result.error().code == CodecErrc::malformed_body);
  CHECK(broken.result.error().offset == 10);

  auto missing = decode(*codec, "lat=1&time=2026-11-24T10:00:00Z", form);
  REQUIRE(missing.batch.errors().size() == 1);
  CHECK(missing.batch.errors()[0].field == "lon");
}

TEST_CASE("GPSLogger template: compiles and decodes a real GPSLogger query string") {
  std::ifstream file(std::string(TELEGATE_SOURCE_DIR) + "/codecs/mapping/templates/gpslogger.yaml");
  REQUIRE(file.good());
  const std::string yaml(std::istreambuf_iterator<char>(file), {});
  auto codec = compile(yaml);
  // As GPSLogger for Android sends it for ?lat=%LAT&lon=%LON&time=%TIME&s=%SPD&alt=%ALT&acc=%ACC&dir=%DIR&batt=%BATT
  auto decoded = decode(*codec,
                        "lat=46.05694605&lon=14.50575123&time=2026-11-24T10%3A00%3A00.000Z&s=13.4&alt=295.0"
                        "&acc=4.5&dir=87.5&batt=81.0",
                        "application/x-www-form-urlencoded");
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.errors().empty());
  REQUIRE(decoded.batch.records().size() == 1);
  const CanonicalRecord& record = decoded.batch.records()[0];
  CHECK(record.device_id == "tracker-9");
  CHECK(record.location.lat == doctest::Approx(46.05694605));
  CHECK(record.location.lon == doctest::Approx(14.50575123));
  CHECK(record.event_time_ms == 1795514400000);
  CHECK(*record.location.speed == 13.4);  // %SPD is m/s already
  CHECK(*record.location.alt == 295);
  CHECK(*record.location.accuracy == 4.5);
  CHECK(*record.location.heading == 87.5);
  CHECK(*record.location.battery == 81);

  // No fix yet for speed and bearing: GPSLogger leaves them empty.
  auto partial = decode(*codec, "lat=46.05&lon=14.5&time=2026-11-24T10:00:00Z&s=&alt=&acc=&dir=&batt=55",
                        "application/x-www-form-urlencoded");
  REQUIRE(partial.batch.records().size() == 1);
  CHECK_FALSE(partial.batch.records()[0].location.speed.has_value());
  CHECK_FALSE(partial.batch.records()[0].location.heading.has_value());
}

TEST_CASE("records: a pointer to the array, else the body is one record or an array of them") {
  auto nested = compile("records: /payload/0/fixes\n" + with_time("{pointer: /t}"));
  auto decoded = decode(*nested, R"({"payload": [{"fixes": [{"lat":1,"lon":2,"t":1795514400}]}]})");
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.records().size() == 1);
  auto single = decode(*nested, R"({"payload": [{"fixes": {"lat":1,"lon":2,"t":1795514400}}]})");
  CHECK(single.batch.records().size() == 1);  // an object where the array was expected: one record

  auto missing = decode(*nested, R"({"payload": []})");
  REQUIRE_FALSE(missing.result.has_value());
  CHECK(missing.result.error().code == CodecErrc::malformed_body);
  CHECK(missing.result.error().message == "no records at /payload/0/fixes: the body has no such value");
  auto scalar = decode(*nested, R"({"payload": [{"fixes": 3}]})");
  REQUIRE_FALSE(scalar.result.has_value());
  CHECK(scalar.result.error().message == "the records at /payload/0/fixes must be an array of objects, not a number");

  auto plain = compile(with_time("{pointer: /t}"));
  CHECK(decode(*plain, R"({"lat":1,"lon":2,"t":1795514400})").batch.records().size() == 1);
  CHECK(decode(*plain, R"([{"lat":1,"lon":2,"t":1795514400},{"lat":1,"lon":2,"t":1795514400}])").batch.records().size() ==
        2);
  CHECK(decode(*plain, "[]").batch.total() == 0);  // an empty batch is accepted
  auto number = decode(*plain, "42");
  REQUIRE_FALSE(number.result.has_value());
  CHECK(number.result.error().message == "the body must be a record object or an array of records, not a number");
}

TEST_CASE("JSON pointers: array indices, ~0 and ~1 escapes, keys that look like indices") {
  auto codec = compile(R"(
fields:
  lat: {pointer: /fix/0}
  lon: {pointer: /fix/1}
  time: {pointer: /meta/a~1b/t~0s}
  alt: {pointer: /by-id/07}
)");
  auto decoded = decode(*codec, R"({"fix": [46.5, 14.25], "meta": {"a/b": {"t~s": 1795514400}}, "by-id": {"07": 12}})");
  REQUIRE(decoded.batch.records().size() == 1);
  const CanonicalRecord& record = decoded.batch.records()[0];
  CHECK(record.location.lat == 46.5);
  CHECK(record.location.lon == 14.25);
  CHECK(record.event_time_ms == 1795514400000);
  CHECK(*record.location.alt == 12);
  auto out_of_bounds = decode(*codec, R"({"fix": [46.5], "meta": {"a/b": {"t~s": 1795514400}}})");
  REQUIRE(out_of_bounds.batch.errors().size() == 1);
  CHECK(out_of_bounds.batch.errors()[0].field == "lon");
}

TEST_CASE("NDJSON: every line read like a body; indices run across lines") {
  auto codec = compile(with_time("{pointer: /t}"));
  auto decoded = decode(*codec,
                        "{\"lat\":1,\"lon\":2,\"t\":1795514400}\r\n\n"
                        "[{\"lat\":1,\"t\":1795514400},{\"lat\":1,\"lon\":2,\"t\":1795514400}]\n",
                        "application/x-ndjson");
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 2);
  CHECK(decoded.batch.records()[1].index == 2);
  REQUIRE(decoded.batch.errors().size() == 1);
  CHECK(decoded.batch.errors()[0].index == 1);

  auto broken = decode(*codec, "{\"lat\":1,\"lon\":2,\"t\":1795514400}\n{\"lat\":", "application/x-ndjson");
  REQUIRE_FALSE(broken.result.has_value());
  CHECK(broken.result.error().code == CodecErrc::malformed_body);
  CHECK(broken.result.error().offset == 33);
}

TEST_CASE("limits, empty bodies and foreign content types") {
  DecodeLimits limits;
  limits.max_records = 2;
  limits.max_string_bytes = 4;
  auto codec = compile(with_time("{pointer: /t}") + "\n  msg_id: {pointer: /id}", limits);
  auto many = decode(*codec, R"([{"lat":1,"lon":2,"t":1},{"lat":1,"lon":2,"t":1},{"lat":1,"lon":2,"t":1}])");
  REQUIRE_FALSE(many.result.has_value());
  CHECK(many.result.error().code == CodecErrc::too_many_records);
  auto long_id = decode(*codec, R"({"lat":1,"lon":2,"t":1,"id":"12345"})");
  REQUIRE(long_id.batch.errors().size() == 1);
  CHECK(long_id.batch.errors()[0].field == "msg_id");

  CHECK(decode(*codec, " \n").result.error().code == CodecErrc::empty_body);
  CHECK(decode(*codec, "", "application/x-www-form-urlencoded").result.error().code == CodecErrc::empty_body);
  CHECK(decode(*codec, "{}", "text/csv").result.error().code == CodecErrc::unsupported_content_type);
  CHECK(decode(*codec, "{\"lat\":").result.error().code == CodecErrc::malformed_body);
}

TEST_CASE("compile errors name the key") {
  CHECK(compile_error(with_time("{pointer: /t}")) == "compiled");
  CHECK(compile_error("fields: {lat: {pointer: lat}, lon: {pointer: /lon}, time: {pointer: /t}}") ==
        "codec_options.fields.lat.pointer: must be a JSON pointer starting with / (such as /lat or /data/0/lat), "
        "got 'lat'");
  CHECK(compile_error("fields: {lat: {pointer: /a~2}, lon: {pointer: /lon}, time: {pointer: /t}}") ==
        "codec_options.fields.lat.pointer: '~' must be followed by 0 or 1 in a JSON pointer (~0 is ~, ~1 is /), "
        "got '/a~2'");
  CHECK(compile_error("records: data\n" + with_time("{pointer: /t}")).starts_with("codec_options.records: must be a JSON pointer"));
  CHECK(compile_error(with_time("{pointer: /t}") + "\n  latitude: {pointer: /x}") ==
        "codec_options.fields.latitude: unknown field; known fields: lat, lon, alt, speed, heading, accuracy, "
        "battery, time, msg_id, device_id");
  CHECK(compile_error(with_time("{pointer: /t, unit: h}")) ==
        "codec_options.fields.time.unit: must be one of s, ms, us, auto, rfc3339, got 'h'");
  CHECK(compile_error(with_time("{pointer: /t}") + "\n  speed: {pointer: /v, unit: fps}") ==
        "codec_options.fields.speed.unit: must be one of mps, kmh, knots, mph, got 'fps'");
  CHECK(compile_error(with_time("{pointer: /t}") + "\n  alt: {pointer: /v, unit: ft}") ==
        "codec_options.fields.alt.unit: applies to speed (mps, kmh, knots, mph) and time (s, ms, us, auto, "
        "rfc3339) only");
  CHECK(compile_error(with_time("{pointer: /t}") + "\n  msg_id: {pointer: /v, scale: 2}") ==
        "codec_options.fields.msg_id.scale: applies to numbers and times only: msg_id and device_id are text");
  CHECK(compile_error(with_time("{pointer: /t}") + "\n  alt: {pointer: /v, scale: x}") ==
        "codec_options.fields.alt.scale: must be a number, got 'x'");
  CHECK(compile_error(with_time("{pointer: /t}") + "\n  alt: {pointer: /v, constant: 1}") ==
        "codec_options.fields.alt.constant: give either pointer or constant, not both");
  CHECK(compile_error(with_time("{pointer: /t}") + "\n  alt: {scale: 2}") ==
        "codec_options.fields.alt.pointer: is required (or give a constant)");
  CHECK(compile_error(with_time("{pointer: /t}") + "\n  alt: {pointer: /v, min: 5, max: 1}") ==
        "codec_options.fields.alt.max: must not be below min (5)");
  CHECK(compile_error(with_time("{pointer: /t}") + "\n  alt: {pointer: /v, mapping: 1}") ==
        "codec_options.fields.alt.mapping: unknown key");
  CHECK(compile_error(with_time("{pointer: /t, default: 0}")) ==
        "codec_options.fields.time.default: the event time must come from the payload (required: false falls "
        "back to the gateway clock)");
  CHECK(compile_error(with_time("{pointer: /t, unit: rfc3339, scale: 1000}")) ==
        "codec_options.fields.time.scale: does not apply to unit rfc3339 (the time is text)");
  CHECK(compile_error("fields: {lat: {pointer: /a, required: false}, lon: {pointer: /o}, time: {pointer: /t}}") ==
        "codec_options.fields.lat.required: a location record needs lat and lon: give a default instead of "
        "required: false");
  CHECK(compile_error("fields: {lat: {pointer: /a}, lon: {pointer: /o}}") ==
        "codec_options.fields.time: is required: map the event time (with required: false the gateway clock "
        "stands in when a record has none)");
  CHECK(compile_error("fields: {lat: {pointer: /a}, time: {pointer: /t}}") ==
        "codec_options.fields.lon: is required for message_type location (map it, or give a constant)");
  CHECK(compile_error("message_type: event\n" + with_time("{pointer: /t}")) ==
        "codec_options.message_type: must be one of location, sensor, got 'event'");
  CHECK(compile_error("message_type: sensor\nfields: {time: {pointer: /t}, lat: {pointer: /a}}\nreadings: {x: "
                      "{pointer: /x}}") ==
        "codec_options.fields.lat: a sensor record has no lat (message_type is sensor): map the value under readings");
  CHECK(compile_error("message_type: sensor\nfields: {time: {pointer: /t}}") ==
        "codec_options.readings: message_type sensor needs at least one reading");
  CHECK(compile_error(with_time("{pointer: /t}") + "\nreadings: {x: {pointer: /x}}") ==
        "codec_options.readings: only for message_type sensor (this device type sends location)");
  CHECK(compile_error("message_type: sensor\nfields: {time: {pointer: /t}}\nreadings: {x: {pointer: /x, unit: C}}") ==
        "codec_options.readings.x.unit: a reading's unit is its label: use unit_label (e.g. unit_label: Cel)");
  CHECK(compile_error(with_time("{pointer: /t}") + "\nconstants: {battery: 100, altitude: 3}") ==
        "codec_options.constants.altitude: unknown field; known fields: lat, lon, alt, speed, heading, accuracy, "
        "battery, time, msg_id, device_id");
  CHECK(compile_error(with_time("{pointer: /t}") + "\nconstants: {lat: 1}") ==
        "codec_options.constants.lat: is already mapped under fields");
  CHECK(compile_error(with_time("{pointer: /t}") + "\nconstants: {battery: full}") ==
        "codec_options.constants.battery: must be a number, got 'full'");
  CHECK(compile_error(with_time("{pointer: /t}") + "\nrecord: /x") == "codec_options.record: unknown key");
  CHECK(compile_error("fields: {lat: /lat}") == "codec_options.fields.lat: must be a mapping");

  DecodeLimits few_readings;
  few_readings.max_readings = 1;
  CHECK_THROWS_WITH(compile("message_type: sensor\nfields: {time: {pointer: /t}}\nreadings: {x: {pointer: /x}, y: "
                            "{pointer: /y}}",
                            few_readings),
                    "codec_options.readings: at most 1 readings per record (decode.max_readings), got 2");
}

TEST_CASE("one codec instance reused: nothing leaks from the previous body") {
  auto codec = compile(kTracker);
  auto first = decode(*codec, R"({"data":{"points":[{"lat_e7":1,"lon_e7":2,"ts":1795514400,"spd":10,"uuid":"u"}]}})");
  REQUIRE(first.batch.records().size() == 1);
  DecodedBatch batch;
  REQUIRE(codec->decode(R"({"data":{"points":[{"lat_e7":1,"lon_e7":2,"ts":1795514400}]}})",
                        DecodeContext{"acme", "tracker-9", "http", "application/json"}, batch)
              .has_value());
  REQUIRE(batch.records().size() == 1);
  CHECK(batch.records()[0].msg_id.empty());
  CHECK_FALSE(batch.records()[0].location.speed.has_value());
}
