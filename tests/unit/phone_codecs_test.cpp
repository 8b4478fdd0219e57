// The phone tracking app codecs (osmand, owntracks, overland) against what the apps send and
// their formats' own documentation examples.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <tuple>

#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/units.hpp"

using namespace telegate::codecs;

namespace {

constexpr std::int64_t k20240501T12Z = 1714564800000;  // 2024-05-01T12:00:00Z
constexpr double kKnot = 1852.0 / 3600.0;

struct Decoded {
  std::expected<void, CodecError> result;
  DecodedBatch batch;

  CanonicalRecord only() const {  // a copy: tests often call it on a temporary
    REQUIRE(result.has_value());
    REQUIRE(batch.errors().empty());
    REQUIRE(batch.records().size() == 1);
    return batch.records()[0];
  }
  FieldError only_error() const {
    REQUIRE(result.has_value());
    CHECK(batch.records().empty());
    REQUIRE(batch.errors().size() == 1);
    return batch.errors()[0];
  }
};

std::unique_ptr<Codec> make(const std::string& codec, const std::string& options_yaml = "", DecodeLimits limits = {}) {
  CodecRegistry registry;
  register_builtin_codecs(registry);
  OptionReader options(options_yaml.empty() ? YAML::Node() : YAML::Load(options_yaml), "codec_options");
  return registry.compile(codec, options, limits)->instantiate();
}

Decoded decode_with(Codec& codec, const std::string& body, const std::string& content_type) {
  Decoded out;
  out.result = codec.decode(body, DecodeContext{"acme", "phone-1", "http", content_type}, out.batch);
  return out;
}

Decoded decode(const std::string& codec, const std::string& body, const std::string& content_type,
               const std::string& options_yaml = "") {
  return decode_with(*make(codec, options_yaml), body, content_type);
}

constexpr const char* kForm = "application/x-www-form-urlencoded";
constexpr const char* kJson = "application/json";

Decoded osmand_form(const std::string& body, const std::string& options_yaml = "") {
  return decode("osmand", body, kForm, options_yaml);
}
Decoded osmand_json(const std::string& body) { return decode("osmand", body, kJson); }

std::string sample(const std::string& codec, const std::string& name) {
  std::ifstream file(std::string(TELEGATE_SOURCE_DIR) + "/codecs/" + codec + "/samples/" + name);
  REQUIRE_MESSAGE(file.good(), "no sample " << name);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

std::string compile_error(const std::string& codec, const std::string& options_yaml) {
  try {
    make(codec, options_yaml);
  } catch (const OptionError& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// osmand, query string / form

TEST_CASE("osmand: a Traccar Client query string, speed in knots by default") {
  auto decoded = osmand_form(sample("osmand", "traccar-client-query.valid.www-form-urlencoded"));
  const CanonicalRecord& record = decoded.only();
  CHECK(record.index == 0);
  CHECK(record.device_id == "123456");
  CHECK(record.type == MessageType::location);
  CHECK(record.event_time_ms == k20240501T12Z);
  CHECK(record.msg_id.empty());
  CHECK(record.location.lat == 52.52);
  CHECK(record.location.lon == 13.405);
  CHECK(record.location.speed == doctest::Approx(10.5 * kKnot));
  CHECK(record.location.speed == doctest::Approx(5.401667).epsilon(1e-6));
  CHECK(record.location.heading == 90);
  CHECK(record.location.alt == 34);
  CHECK(record.location.accuracy == 5);
  CHECK(record.location.battery == 87);
}

TEST_CASE("osmand: OsmAnd's own tracking URL sends epoch milliseconds and hdop") {
  const CanonicalRecord& record = osmand_form(sample("osmand", "osmand-online-tracking.valid.www-form-urlencoded")).only();
  CHECK(record.device_id == "osmand-1");
  CHECK(record.event_time_ms == k20240501T12Z);
  CHECK(record.location.lat == 52.520008);
  CHECK(record.location.heading == 181.2);
  CHECK_FALSE(record.location.accuracy.has_value());  // hdop is not metres: ignored
}

TEST_CASE("osmand: percent-encoding, '+' as space, location=lat,lon and deviceid") {
  auto decoded = osmand_form("deviceid=ph%C3%B6ne%2D7&timestamp=2024-05-01+12%3A00%3A00&location=52.5%2C-13.25");
  const CanonicalRecord& record = decoded.only();
  CHECK(record.device_id == "ph\xC3\xB6ne-7");
  CHECK(record.event_time_ms == k20240501T12Z);
  CHECK(record.location.lat == 52.5);
  CHECK(record.location.lon == -13.25);
  CHECK_FALSE(record.location.speed.has_value());
  CHECK_FALSE(record.location.battery.has_value());
}

TEST_CASE("osmand: every timestamp spelling Traccar accepts") {
  const std::pair<std::string, std::int64_t> cases[] = {
      {"1714564800", k20240501T12Z},
      {"1714564800000", k20240501T12Z},
      {"1714564800.25", k20240501T12Z + 250},
      {"2024-05-01T12:00:00Z", k20240501T12Z},
      {"2024-05-01T12:00:00.500Z", k20240501T12Z + 500},
      {"2024-05-01T14%3A00%3A00%2B02%3A00", k20240501T12Z},
      {"2024-05-01T14:00:00+02:00", k20240501T12Z},  // unencoded '+' arrives as a space
      {"2024-05-01T07:00:00-0500", k20240501T12Z},
      {"2024-05-01%2012:00:00", k20240501T12Z},  // yyyy-MM-dd HH:mm:ss is UTC
      {"2024-05-01+12:00:00", k20240501T12Z},
  };
  for (const auto& [text, expected] : cases) {
    CAPTURE(text);
    CHECK(osmand_form("id=1&lat=1&lon=2&timestamp=" + text).only().event_time_ms == expected);
  }
}

TEST_CASE("osmand: without an id the authenticated device is the record's; a leading '?' is fine") {
  const CanonicalRecord& record = osmand_form("?lat=1&lon=2&timestamp=1714564800\r\n").only();
  CHECK(record.device_id == "phone-1");
}

TEST_CASE("osmand: negative speed, bearing, accuracy mean unknown; empty optional values are absent") {
  const CanonicalRecord& record =
      osmand_form("id=1&lat=1&lon=2&timestamp=1714564800&speed=-1&bearing=-1&accuracy=-1&batt=-1&altitude=").only();
  CHECK_FALSE(record.location.speed.has_value());
  CHECK_FALSE(record.location.heading.has_value());
  CHECK_FALSE(record.location.accuracy.has_value());
  CHECK_FALSE(record.location.battery.has_value());
  CHECK_FALSE(record.location.alt.has_value());
}

TEST_CASE("osmand: speed_unit and time_unit options") {
  CHECK(osmand_form("id=1&lat=1&lon=2&timestamp=1714564800&speed=36", "{speed_unit: kmh}").only().location.speed ==
        doctest::Approx(10.0));
  CHECK(osmand_form("id=1&lat=1&lon=2&timestamp=1714564800&speed=3.5", "{speed_unit: mps}").only().location.speed ==
        3.5);
  // Epoch seconds that `auto` would read as seconds, declared milliseconds.
  CHECK(osmand_form("id=1&lat=1&lon=2&timestamp=1714564800", "{time_unit: ms}").only().event_time_ms == 1714564800);
}

TEST_CASE("osmand: a bad parameter is a record error naming it; decoding does not stop at the first") {
  const std::pair<std::string, std::string> cases[] = {
      {"id=1&timestamp=1714564800&lon=2", "lat"},
      {"id=1&timestamp=1714564800&lat=1", "lon"},
      {"id=1&lat=1&lon=2", "timestamp"},
      {"id=1&timestamp=soon&lat=1&lon=2", "timestamp"},
      {"id=1&timestamp=1714564800&lat=north&lon=2", "lat"},
      {"id=1&timestamp=1714564800&lat=&lon=2", "lat"},
      {"id=1&timestamp=1714564800&lat=nan&lon=2", "lat"},
      {"id=1&timestamp=1714564800&location=52.5", "location"},
      {"id=1&timestamp=1714564800&lat=1&lon=2&speed=fast", "speed"},
      {"id=&timestamp=1714564800&lat=1&lon=2", "id"},
  };
  for (const auto& [body, field] : cases) {
    CAPTURE(body);
    const FieldError& error = osmand_form(body).only_error();
    CHECK(error.index == 0);
    CHECK(error.field == field);
    CHECK_FALSE(error.reason.empty());
  }
  CHECK(osmand_form("id=1&timestamp=1714564800&lat=north&lon=2").only_error().reason == "'north' is not a number");
  CHECK(osmand_form("id=1&timestamp=1714564800&lat=1&lon=2&x&&y=").only().location.lon == 2);  // bare keys: ignored
  CHECK(osmand_form("id=1&lat=1&lon=2").only_error().reason ==
        "is required (epoch seconds or milliseconds, RFC 3339, or yyyy-MM-dd HH:mm:ss in UTC)");
}

TEST_CASE("osmand: a device id longer than the string limit is refused") {
  DecodeLimits limits;
  limits.max_string_bytes = 8;
  auto codec = make("osmand", "", limits);
  const FieldError& error = decode_with(*codec, "id=123456789&timestamp=1&lat=1&lon=2", kForm).only_error();
  CHECK(error.field == "id");
  CHECK(error.reason == "must be at most 8 bytes, got 9");
}

TEST_CASE("osmand: broken percent-encoding makes the body unreadable, at its offset") {
  auto decoded = osmand_form("id=1&lat=1&lon=2&timestamp=1714564800&batt=8%G7");
  REQUIRE_FALSE(decoded.result.has_value());
  CHECK(decoded.result.error().code == CodecErrc::malformed_body);
  CHECK(decoded.result.error().offset == 44);
  CHECK(decoded.result.error().message == "malformed percent-encoding in the value of 'batt'");
  CHECK_FALSE(osmand_form("id=1&lat=1&lon=2&timestamp=1%").result.has_value());
}

// ---------------------------------------------------------------------------------------------
// osmand, Traccar Client JSON

TEST_CASE("osmand: the Traccar Client JSON body, battery level as percent, uuid as msg_id") {
  const CanonicalRecord& record = osmand_json(sample("osmand", "traccar-client.valid.json")).only();
  CHECK(record.device_id == "123456");
  CHECK(record.event_time_ms == k20240501T12Z);
  CHECK(record.msg_id == "0a7c7a3e-2b5f-4c7e-9d8a-3f6a1c2b4d5e");
  CHECK(record.location.lat == 52.52);
  CHECK(record.location.lon == 13.405);
  CHECK(record.location.accuracy == 4.8);
  CHECK(record.location.speed == 2.91);  // m/s already: speed_unit is for the form variant
  CHECK(record.location.heading == 271.5);
  CHECK(record.location.alt == 34.2);
  CHECK(record.location.battery == doctest::Approx(85.0));
}

TEST_CASE("osmand: a JSON array is one record per element; -1 speed and heading are unknown") {
  auto decoded = osmand_json(sample("osmand", "traccar-client-batch.valid.json"));
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 2);
  const CanonicalRecord& first = decoded.batch.records()[0];
  CHECK_FALSE(first.location.speed.has_value());
  CHECK_FALSE(first.location.heading.has_value());
  CHECK(first.location.battery == doctest::Approx(85.0));
  CHECK(decoded.batch.records()[1].index == 1);
  CHECK(decoded.batch.records()[1].event_time_ms == k20240501T12Z + 30'000);
}

TEST_CASE("osmand: JSON record problems are named by index and dotted field") {
  auto decoded = osmand_json(
      R"([{"device_id":"a","location":{"timestamp":"2024-05-01T12:00:00Z","coords":{"latitude":1,"longitude":2}}},)"
      R"({"device_id":"a","location":{"timestamp":"2024-05-01T12:00:00Z","coords":{"latitude":"x","longitude":2}}},)"
      R"({"device_id":"a","location":{"timestamp":"noon","coords":{"latitude":1,"longitude":2}}},)"
      R"({"device_id":"a","location":{"coords":{"latitude":1,"longitude":2}}},)"
      R"({"device_id":"a"},)"
      R"({"device_id":"a","location":[{"timestamp":"2024-05-01T12:00:00Z"}]},)"
      R"({"device_id":"a","location":{"timestamp":"2024-05-01T12:00:00Z","coords":{"latitude":1,"longitude":2},"battery":{"level":85}}},)"
      R"({"device_id":7,"location":{"timestamp":"2024-05-01T12:00:00Z","coords":{"latitude":1,"longitude":2}}},)"
      R"(42,)"
      R"({"location":{"timestamp":1714564800,"coords":{"latitude":1,"longitude":2,"speed":null}}}])");
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 2);
  CHECK(decoded.batch.records()[0].index == 0);
  const CanonicalRecord& last = decoded.batch.records()[1];
  CHECK(last.index == 9);
  CHECK(last.device_id == "phone-1");  // no device_id: the authenticated device
  CHECK(last.event_time_ms == k20240501T12Z);
  CHECK_FALSE(last.location.speed.has_value());
  const std::pair<std::size_t, std::string> expected[] = {
      {1, "location.coords.latitude"}, {2, "location.timestamp"}, {3, "location.timestamp"},
      {4, "location"},                 {5, "location"},           {6, "location.battery.level"},
      {7, "device_id"},                {8, ""}};
  const auto errors = decoded.batch.errors();
  REQUIRE(errors.size() == std::size(expected));
  for (std::size_t i = 0; i < errors.size(); ++i) {
    CAPTURE(i);
    CHECK(errors[i].index == expected[i].first);
    CHECK(errors[i].field == expected[i].second);
  }
  CHECK(errors[0].reason == "must be a number, not a string");
  CHECK(errors[1].reason == "'noon' is not an RFC 3339 date-time");
  CHECK(errors[3].reason == "is required");
  CHECK(errors[4].reason == "must be one location object (batched location arrays are not supported), not an array");
  CHECK(errors[5].reason == "must be a fraction within [0, 1] (-1 when unknown), got 85");
}

TEST_CASE("osmand: unreadable JSON, foreign content types and empty bodies are codec errors") {
  for (const std::string body : {"{\"device_id\":", "\"123456\"", "{} {}", "[1,]"}) {
    CAPTURE(body);
    auto decoded = osmand_json(body);
    REQUIRE_FALSE(decoded.result.has_value());
    CHECK(decoded.result.error().code == CodecErrc::malformed_body);
  }
  auto foreign = decode("osmand", "id=1", "text/plain");
  REQUIRE_FALSE(foreign.result.has_value());
  CHECK(foreign.result.error().code == CodecErrc::unsupported_content_type);
  CHECK(foreign.result.error().message ==
        "the osmand codec reads application/x-www-form-urlencoded and application/json, not 'text/plain'");
  auto empty = osmand_form(" \r\n");
  REQUIRE_FALSE(empty.result.has_value());
  CHECK(empty.result.error().code == CodecErrc::empty_body);
}

TEST_CASE("osmand: too many JSON messages") {
  DecodeLimits limits;
  limits.max_records = 1;
  auto codec = make("osmand", "", limits);
  auto decoded = decode_with(*codec, sample("osmand", "traccar-client-batch.valid.json"), kJson);
  REQUIRE_FALSE(decoded.result.has_value());
  CHECK(decoded.result.error().code == CodecErrc::too_many_records);
}

TEST_CASE("osmand: option errors name the key") {
  CHECK(compile_error("osmand", "{speed_unit: furlongs}") ==
        "codec_options.speed_unit: must be one of mps, kmh, knots, mph, got 'furlongs'");
  CHECK(compile_error("osmand", "{time_unit: fortnights}") ==
        "codec_options.time_unit: must be one of s, ms, us, auto, got 'fortnights'");
  CHECK(compile_error("osmand", "{speed: kmh}") == "codec_options.speed: unknown key");
  CHECK(compile_error("osmand", "{speed_unit: kmh, time_unit: s}") == "(no error)");
}

TEST_CASE("osmand: the app's reply is Traccar's own empty 200, not a native body") {
  CHECK_FALSE(make("osmand")->native_reply().has_value());
}

// ---------------------------------------------------------------------------------------------
// owntracks

namespace {

Decoded owntracks(const std::string& body, const std::string& options_yaml = "") {
  return decode("owntracks", body, kJson, options_yaml);
}

}  // namespace

TEST_CASE("owntracks: the booklet's location message, vel in km/h by default") {
  const CanonicalRecord& record = owntracks(sample("owntracks", "booklet-location.valid.json")).only();
  CHECK(record.index == 0);
  CHECK(record.device_id == "phone-1");  // tid "JJ" is a display label, not an identity
  CHECK(record.type == MessageType::location);
  CHECK(record.event_time_ms == k20240501T12Z);  // tst, not created_at
  CHECK(record.msg_id.empty());
  CHECK(record.location.lat == 51.5073);
  CHECK(record.location.lon == -0.1277);
  CHECK(record.location.speed == doctest::Approx(10.0));  // 36 km/h
  CHECK(record.location.heading == 270);
  CHECK(record.location.alt == 38);
  CHECK(record.location.accuracy == 13);
  CHECK(record.location.battery == 40);
}

TEST_CASE("owntracks: speed_unit option, and its errors name the key") {
  CHECK(owntracks(R"({"_type":"location","lat":1,"lon":2,"tst":1714564800,"vel":10})", "{speed_unit: mps}")
            .only()
            .location.speed == 10);
  CHECK(owntracks(R"({"_type":"location","lat":1,"lon":2,"tst":1714564800,"vel":10})", "{speed_unit: knots}")
            .only()
            .location.speed == doctest::Approx(10 * kKnot));
  CHECK(compile_error("owntracks", "{speed_unit: fast}") ==
        "codec_options.speed_unit: must be one of mps, kmh, knots, mph, got 'fast'");
  CHECK(compile_error("owntracks", "{time_unit: s}") == "codec_options.time_unit: unknown key");
}

TEST_CASE("owntracks: routine non-location messages are accepted and produce nothing") {
  for (const std::string type : {"transition", "waypoint", "waypoints", "lwt", "card", "status", "steps", "cmd",
                                 "beacon", "configuration", "request", "something-new"}) {
    CAPTURE(type);
    auto decoded = owntracks(R"({"_type":")" + type + R"(","lat":"not even a number","tst":1714564800})");
    REQUIRE(decoded.result.has_value());
    CHECK(decoded.batch.records().empty());
    CHECK(decoded.batch.errors().empty());
  }
}

TEST_CASE("owntracks: an array keeps each location's position as its index") {
  auto decoded = owntracks(sample("owntracks", "routine-messages-with-locations.valid.json"));
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.errors().empty());
  REQUIRE(decoded.batch.records().size() == 2);
  CHECK(decoded.batch.records()[0].index == 0);
  CHECK(decoded.batch.records()[1].index == 3);
  CHECK(decoded.batch.records()[1].location.speed == doctest::Approx(5 / 3.6));
  CHECK(decoded.batch.records()[1].location.heading == 45);
  CHECK_FALSE(decoded.batch.records()[0].location.speed.has_value());
}

TEST_CASE("owntracks: encrypted, untyped and incomplete messages are named") {
  auto decoded = owntracks(R"([{"_type":"encrypted","data":"abc"},)"
                           R"({"lat":1,"lon":2,"tst":3},)"
                           R"({"_type":5,"lat":1,"lon":2,"tst":3},)"
                           R"({"_type":"location","lat":1,"lon":2},)"
                           R"({"_type":"location","lon":2,"tst":1714564800},)"
                           R"({"_type":"location","lat":"51.5","lon":2,"tst":1714564800},)"
                           R"({"lat":1,"lon":2,"tst":1714564800,"_type":"location"},)"
                           R"("location"])");
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 1);
  CHECK(decoded.batch.records()[0].index == 6);  // _type may come last
  const std::tuple<std::size_t, std::string, std::string> expected[] = {
      {0, "_type", "encrypted OwnTracks payloads are not supported; turn off encryption in the app"},
      {1, "_type", "is required (every OwnTracks message names its type, e.g. \"location\")"},
      {2, "_type", "must be a string such as \"location\""},
      {3, "tst", "is required for a location message (epoch seconds)"},
      {4, "lat", "is required for a location message"},
      {5, "lat", "must be a number, not a string"},
      {7, "", "an OwnTracks message must be a JSON object, not a string"},
  };
  const auto errors = decoded.batch.errors();
  REQUIRE(errors.size() == std::size(expected));
  for (std::size_t i = 0; i < errors.size(); ++i) {
    CAPTURE(i);
    CHECK(errors[i].index == std::get<0>(expected[i]));
    CHECK(errors[i].field == std::get<1>(expected[i]));
    CHECK(errors[i].reason == std::get<2>(expected[i]));
  }
}

TEST_CASE("owntracks: negative vel, cog, acc are unknown") {
  const CanonicalRecord& record =
      owntracks(R"({"_type":"location","lat":1,"lon":2,"tst":1714564800,"vel":-1,"cog":-1,"acc":-1,"alt":-12})").only();
  CHECK_FALSE(record.location.speed.has_value());
  CHECK_FALSE(record.location.heading.has_value());
  CHECK_FALSE(record.location.accuracy.has_value());
  CHECK(record.location.alt == -12);  // below sea level is a real altitude
}

TEST_CASE("owntracks: unreadable bodies and limits are codec errors; the reply is a JSON array") {
  for (const std::string body : {"{\"_type\":\"location\"", "42", "[{}] x", "{\"_type\":\"location\",}"}) {
    CAPTURE(body);
    auto decoded = owntracks(body);
    REQUIRE_FALSE(decoded.result.has_value());
    CHECK(decoded.result.error().code == CodecErrc::malformed_body);
  }
  DecodeLimits limits;
  limits.max_records = 3;
  auto codec = make("owntracks", "", limits);
  auto too_many = decode_with(*codec, sample("owntracks", "routine-messages-with-locations.valid.json"), kJson);
  REQUIRE_FALSE(too_many.result.has_value());
  CHECK(too_many.result.error().code == CodecErrc::too_many_records);

  const auto reply = make("owntracks")->native_reply();
  REQUIRE(reply.has_value());
  CHECK(reply->content_type == "application/json");
  CHECK(reply->body == "[]");
}

// ---------------------------------------------------------------------------------------------
// overland

namespace {

Decoded overland(const std::string& body, DecodeLimits limits = {}) {
  return decode_with(*make("overland", "", limits), body, kJson);
}

std::string overland_batch(const std::string& features) { return R"({"locations":[)" + features + "]}"; }

std::string point(const std::string& properties, const std::string& coordinates = "[13.405,52.52]") {
  return R"({"type":"Feature","geometry":{"type":"Point","coordinates":)" + coordinates + R"(},"properties":)" +
         properties + "}";
}

}  // namespace

TEST_CASE("overland: the README's batch; colon-less offset, battery fraction to percent") {
  const CanonicalRecord& record = overland(sample("overland", "readme-batch.valid.json")).only();
  CHECK(record.index == 0);
  CHECK(record.device_id == "phone-1");
  CHECK(record.type == MessageType::location);
  CHECK(record.event_time_ms == 1443711600000);  // 2015-10-01T08:00:00-0700
  CHECK(record.location.lon == -122.030581);
  CHECK(record.location.lat == 37.3318);
  CHECK(record.location.alt == 0);
  CHECK(record.location.speed == 4);
  CHECK(record.location.accuracy == 30);
  CHECK_FALSE(record.location.heading.has_value());
  CHECK(record.location.battery == doctest::Approx(89.0));
}

TEST_CASE("overland: each point is a record; -1 means unknown; device_id in properties is not the identity") {
  auto decoded = overland(sample("overland", "batch-with-trip.valid.json"));
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.errors().empty());
  REQUIRE(decoded.batch.records().size() == 3);
  const CanonicalRecord& first = decoded.batch.records()[0];
  CHECK(first.device_id == "phone-1");  // not "my iphone"
  CHECK(first.event_time_ms == k20240501T12Z);
  CHECK(first.location.lat == 52.52);
  CHECK(first.location.lon == 13.405);
  CHECK_FALSE(first.location.speed.has_value());
  CHECK_FALSE(first.location.heading.has_value());
  CHECK(first.location.battery == doctest::Approx(50.0));
  const CanonicalRecord& second = decoded.batch.records()[1];
  CHECK(second.index == 1);
  CHECK(second.location.heading == 45.5);
  CHECK(second.location.speed == 1.4);
  const CanonicalRecord& third = decoded.batch.records()[2];
  CHECK(third.index == 2);
  CHECK(third.event_time_ms == k20240501T12Z + 60'250);  // "+0000" with a fraction
  CHECK_FALSE(third.location.battery.has_value());
  CHECK_FALSE(third.location.alt.has_value());
}

TEST_CASE("overland: timestamp offsets with and without a colon are the same instant") {
  for (const std::string text : {"2017-01-01T10:00:00-0700", "2017-01-01T10:00:00-07:00", "2017-01-01T17:00:00Z",
                                 "2017-01-01T18:00:00+0100", "2017-01-01T17:00:00.000+00:00"}) {
    CAPTURE(text);
    CHECK(overland(overland_batch(point(R"({"timestamp":")" + text + R"("})"))).only().event_time_ms ==
          1483290000000);
  }
}

TEST_CASE("overland: a third coordinate is the altitude when properties have none") {
  CHECK(overland(overland_batch(point(R"({"timestamp":"2017-01-01T17:00:00Z"})", "[1,2,120.5]"))).only().location.alt ==
        120.5);
  CHECK(overland(overland_batch(point(R"({"timestamp":"2017-01-01T17:00:00Z","altitude":7})", "[1,2,120.5]")))
            .only()
            .location.alt == 7);
}

TEST_CASE("overland: bad features are named by index and field; their neighbours survive") {
  const std::string good = point(R"({"timestamp":"2017-01-01T10:00:00-0700"})");
  auto decoded = overland(overland_batch(
      good + "," +
      R"({"type":"Feature","geometry":{"type":"LineString","coordinates":[[1,2],[3,4]]},"properties":{"timestamp":"2017-01-01T10:00:00Z"}},)" +
      R"({"type":"Feature","geometry":{"type":"Point"},"properties":{"timestamp":"2017-01-01T10:00:00Z"}},)" +
      R"({"type":"Feature","properties":{"timestamp":"2017-01-01T10:00:00Z"}},)" + point("{}") + "," +
      point(R"({"timestamp":"2017-01-01 10:00:00"})") + "," + point(R"({"timestamp":"2017-01-01T10:00:00Z"})", "[1]") +
      "," + point(R"({"timestamp":"2017-01-01T10:00:00Z","battery_level":89})") + "," +
      point(R"({"timestamp":"2017-01-01T10:00:00Z","speed":"4"})") + "," +
      R"({"type":"Polygon","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"timestamp":"2017-01-01T10:00:00Z"}},)" +
      R"(null,)" + good));
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 2);
  CHECK(decoded.batch.records()[0].index == 0);
  CHECK(decoded.batch.records()[1].index == 11);
  const std::tuple<std::size_t, std::string, std::string> expected[] = {
      {1, "geometry.type", "must be Point, got 'LineString'"},
      {2, "geometry.coordinates", "is required ([longitude, latitude])"},
      {3, "geometry", "is required (a GeoJSON Point)"},
      {4, "properties.timestamp", "is required"},
      {5, "properties.timestamp",
       "'2017-01-01 10:00:00' is not an ISO 8601 date-time such as 2017-01-01T10:00:00-0700"},
      {6, "geometry.coordinates", "must hold a longitude and a latitude ([longitude, latitude])"},
      {7, "properties.battery_level", "must be a fraction within [0, 1] (-1 when unknown), got 89"},
      {8, "properties.speed", "must be a number, not a string"},
      {9, "type", "must be Feature, got 'Polygon'"},
      {10, "", "a location (GeoJSON Feature) must be a JSON object, not null"},
  };
  const auto errors = decoded.batch.errors();
  REQUIRE(errors.size() == std::size(expected));
  for (std::size_t i = 0; i < errors.size(); ++i) {
    CAPTURE(i);
    CHECK(errors[i].index == std::get<0>(expected[i]));
    CHECK(errors[i].field == std::get<1>(expected[i]));
    CHECK(errors[i].reason == std::get<2>(expected[i]));
  }
}

TEST_CASE("overland: a null or non-object geometry is named") {
  const FieldError null_geometry =
      overland(R"({"locations":[{"type":"Feature","geometry":null,"properties":{"timestamp":"2017-01-01T17:00:00Z"}}]})")
          .only_error();
  CHECK(null_geometry.field == "geometry");
  CHECK(null_geometry.reason == "is required (a GeoJSON Point)");
  const FieldError text_geometry =
      overland(R"({"locations":[{"type":"Feature","geometry":"here","properties":{"timestamp":"2017-01-01T17:00:00Z"}}]})")
          .only_error();
  CHECK(text_geometry.field == "geometry");
  CHECK(text_geometry.reason == "must be a GeoJSON Point object, not a string");
}

TEST_CASE("overland: an empty batch is accepted; batch-level problems are codec errors") {
  auto empty = overland(R"({"locations":[],"current":{}})");
  REQUIRE(empty.result.has_value());
  CHECK(empty.batch.total() == 0);

  const std::pair<std::string, std::string> cases[] = {
      {R"({"current":{}})", "an Overland batch needs a locations array"},
      {R"({"locations":{}})", "locations must be an array of GeoJSON features"},
      {R"([{"locations":[]}])", "an Overland batch must be a JSON object with a locations array, not an array"},
      {R"({"locations":[],"locations":[]})", "the batch holds two locations arrays"},
      {R"({"locations":[]} {})", "trailing content after the JSON value"},
  };
  for (const auto& [body, message] : cases) {
    CAPTURE(body);
    auto decoded = overland(body);
    REQUIRE_FALSE(decoded.result.has_value());
    CHECK(decoded.result.error().code == CodecErrc::malformed_body);
    CHECK(decoded.result.error().message == message);
  }
  auto truncated = overland(R"({"locations":[{"type":"Feature")");
  REQUIRE_FALSE(truncated.result.has_value());
  CHECK(truncated.result.error().code == CodecErrc::malformed_body);
}

TEST_CASE("overland: up to max_records points, then too_many_records") {
  std::string features;
  for (int i = 0; i < 1000; ++i) features += (i ? "," : "") + point(R"({"timestamp":"2017-01-01T17:00:00Z"})");
  auto full = overland(overland_batch(features));
  REQUIRE(full.result.has_value());
  CHECK(full.batch.records().size() == 1000);
  CHECK(full.batch.records()[999].index == 999);

  DecodeLimits limits;
  limits.max_records = 999;
  auto over = overland(overland_batch(features), limits);
  REQUIRE_FALSE(over.result.has_value());
  CHECK(over.result.error().code == CodecErrc::too_many_records);
  CHECK(over.result.error().message == "more than 999 locations in one batch");
}

TEST_CASE("overland: no options; the reply is the one the app waits for") {
  CHECK(compile_error("overland", "{speed_unit: kmh}") == "codec_options.speed_unit: unknown key");
  const auto reply = make("overland")->native_reply();
  REQUIRE(reply.has_value());
  CHECK(reply->content_type == "application/json");
  CHECK(reply->body == R"({"result":"ok"})");
}

TEST_CASE("phone codecs: one instance reused gives the same answer after a bigger or broken body") {
  auto codec = make("overland");
  std::string features;
  for (int i = 0; i < 300; ++i) {
    features += (i ? "," : "") + point(R"({"timestamp":"2017-01-01T17:00:00Z","speed":3,"battery_level":0.5})");
  }
  REQUIRE(decode_with(*codec, overland_batch(features), kJson).result.has_value());
  CHECK_FALSE(decode_with(*codec, R"({"locations":[{"type":)", kJson).result.has_value());
  const CanonicalRecord& record =
      decode_with(*codec, overland_batch(point(R"({"timestamp":"2017-01-01T17:00:00Z"})")), kJson).only();
  CHECK_FALSE(record.location.speed.has_value());
  CHECK_FALSE(record.location.battery.has_value());

  auto osmand = make("osmand");
  REQUIRE(decode_with(*osmand, sample("osmand", "traccar-client-query.valid.www-form-urlencoded"), kForm)
              .result.has_value());
  CHECK_FALSE(decode_with(*osmand, "id=1&lat=%", kForm).result.has_value());
  const CanonicalRecord& form = decode_with(*osmand, "lat=1&lon=2&timestamp=1714564800", kForm).only();
  CHECK(form.device_id == "phone-1");  // not the previous request's id
  CHECK_FALSE(form.location.speed.has_value());
}
