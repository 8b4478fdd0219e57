#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "json/json_codec.hpp"
#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/units.hpp"

using namespace telegate::codecs;

namespace {

struct Decoded {
  std::expected<void, CodecError> result;
  DecodedBatch batch;
};

Decoded decode(const std::string& body, const std::string& content_type = "application/json",
               DecodeLimits limits = {}) {
  JsonCodec codec(limits);
  Decoded out;
  out.result = codec.decode(body, DecodeContext{"acme", "truck-1", "http", content_type}, out.batch);
  return out;
}

const std::string kLocation =
    R"({"device_id":"truck-1","type":"location","ts":1795514400000,"msg_id":"m-1","lat":46.0569,"lon":14.5058,)"
    R"("alt":295.5,"speed":13.4,"heading":87.5,"accuracy":4.5,"battery":81})";

// A location record's fields, to compare two decodes whole.
auto fields_of(const CanonicalRecord& r) {
  return std::tuple(r.device_id, r.type, r.event_time_ms, r.msg_id, r.location.lat, r.location.lon, r.location.alt,
                    r.location.speed, r.location.heading, r.location.accuracy, r.location.battery);
}

}  // namespace

TEST_CASE("a location record: every field lands in the canonical record") {
  auto decoded = decode(kLocation);
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 1);
  const CanonicalRecord& record = decoded.batch.records()[0];
  CHECK(record.index == 0);
  CHECK(record.device_id == "truck-1");
  CHECK(record.type == MessageType::location);
  CHECK(record.event_time_ms == 1795514400000);
  CHECK(record.msg_id == "m-1");
  CHECK(record.location.lat == 46.0569);
  CHECK(record.location.lon == 14.5058);
  CHECK(record.location.alt == 295.5);
  CHECK(record.location.speed == 13.4);
  CHECK(record.location.heading == 87.5);
  CHECK(record.location.accuracy == 4.5);
  CHECK(record.location.battery == 81);
}

TEST_CASE("sensor readings: an array, or a single name/value/unit") {
  auto decoded = decode(R"([{"device_id":"p","type":"sensor","ts":1,"readings":[{"name":"t","value":21.5,"unit":"Cel"},)"
                        R"({"name":"rh","value":40}]},{"device_id":"p","type":"sensor","ts":2,"name":"fuel","value":0.5,"unit":"/"}])");
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 2);
  const auto& first = decoded.batch.records()[0].readings;
  REQUIRE(first.size() == 2);
  CHECK(first[0].name == "t");
  CHECK(first[0].value == 21.5);
  CHECK(first[0].unit == "Cel");
  CHECK(first[1].unit.empty());
  const auto& second = decoded.batch.records()[1].readings;
  REQUIRE(second.size() == 1);
  CHECK(second[0].name == "fuel");
  CHECK(decoded.batch.records()[1].index == 1);
}

TEST_CASE("RFC 3339 timestamps") {
  CHECK(parse_rfc3339_ms("2026-11-24T10:00:00Z") == 1795514400000);
  CHECK(parse_rfc3339_ms("2026-11-24t10:00:00z") == 1795514400000);
  CHECK(parse_rfc3339_ms("2026-11-24 10:00:00Z") == 1795514400000);
  CHECK(parse_rfc3339_ms("2026-11-24T10:00:00.25Z") == 1795514400250);
  CHECK(parse_rfc3339_ms("2026-11-24T10:00:00.123456789Z") == 1795514400123);
  CHECK(parse_rfc3339_ms("2026-11-24T12:00:00+02:00") == 1795514400000);
  CHECK(parse_rfc3339_ms("2026-11-24T04:30:00-05:30") == 1795514400000);
  CHECK(parse_rfc3339_ms("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339_ms("1969-12-31T23:59:59Z") == -1000);
  CHECK(parse_rfc3339_ms("2024-02-29T00:00:00Z") == 1709164800000);
  CHECK(parse_rfc3339_ms("2000-02-29T00:00:00Z") == 951782400000);
  CHECK_FALSE(parse_rfc3339_ms("2023-02-29T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339_ms("1900-02-29T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339_ms("2026-13-01T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339_ms("2026-04-31T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339_ms("2026-11-24T24:00:00Z"));
  CHECK_FALSE(parse_rfc3339_ms("2026-11-24T10:60:00Z"));
  CHECK_FALSE(parse_rfc3339_ms("2026-11-24T10:00:00"));  // no offset
  CHECK_FALSE(parse_rfc3339_ms("2026-11-24T10:00:00.Z"));
  CHECK_FALSE(parse_rfc3339_ms("2026-11-24T10:00:00+2:00"));
  CHECK_FALSE(parse_rfc3339_ms("2026-11-24T10:00:00Zjunk"));
  CHECK_FALSE(parse_rfc3339_ms("yesterday"));
  CHECK_FALSE(parse_rfc3339_ms(""));
}

TEST_CASE("ts as RFC 3339 text or epoch milliseconds; anything else is named") {
  auto text = decode(R"({"device_id":"d","type":"location","ts":"2026-11-24T10:00:00Z","lat":1,"lon":2})");
  REQUIRE(text.batch.records().size() == 1);
  CHECK(text.batch.records()[0].event_time_ms == 1795514400000);

  auto bad = decode(R"([{"device_id":"d","type":"location","ts":1.5,"lat":1,"lon":2},)"
                    R"({"device_id":"d","type":"location","ts":"soon","lat":1,"lon":2},)"
                    R"({"device_id":"d","type":"location","ts":true,"lat":1,"lon":2}])");
  REQUIRE(bad.result.has_value());
  CHECK(bad.batch.records().empty());
  REQUIRE(bad.batch.errors().size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(bad.batch.errors()[i].index == i);
    CHECK(bad.batch.errors()[i].field == "ts");
  }
  CHECK(bad.batch.errors()[1].reason.find("RFC 3339") != std::string::npos);
}

TEST_CASE("bad records are named by index and field; their neighbours survive") {
  auto decoded = decode(R"([)" + kLocation + R"(,{"device_id":7,"type":"location","ts":1,"lat":1,"lon":2},)" +
                        R"({"device_id":"d","type":"boat","ts":1,"lat":1,"lon":2},)" +
                        R"({"device_id":"d","type":"location","ts":1,"lat":"north","lon":2},)" +
                        R"({"device_id":"d","type":"location","ts":1,"lon":2},)" +
                        R"({"type":"location","ts":1,"lat":1,"lon":2},)" +
                        R"({"device_id":"d","type":"sensor","ts":1},)" + R"(42,)" + kLocation + "]");
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 2);
  CHECK(decoded.batch.records()[0].index == 0);
  CHECK(decoded.batch.records()[1].index == 8);
  const auto errors = decoded.batch.errors();
  REQUIRE(errors.size() == 7);
  const std::pair<std::size_t, std::string> expected[] = {{1, "device_id"}, {2, "type"},     {3, "lat"}, {4, "lat"},
                                                          {5, "device_id"}, {6, "readings"}, {7, ""}};
  for (std::size_t i = 0; i < errors.size(); ++i) {
    CAPTURE(i);
    CHECK(errors[i].index == expected[i].first);
    CHECK(errors[i].field == expected[i].second);
    CHECK_FALSE(errors[i].reason.empty());
  }
}

TEST_CASE("unknown fields are skipped, nested or not") {
  auto decoded = decode(R"({"device_id":"d","extra":{"deep":[1,{"x":null}]},"type":"location","ts":1,"lat":1,"lon":2,"z":"y"})");
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.records().size() == 1);
  CHECK(decoded.batch.errors().empty());
}

TEST_CASE("field order does not matter: shuffled records decode to the same record") {
  // Keys are classified from their raw bytes, by length; every order must reach every field.
  const auto reference = decode(kLocation);
  REQUIRE(reference.batch.records().size() == 1);
  const CanonicalRecord& expected = reference.batch.records()[0];
  std::vector<std::string> fields;  // kLocation's "key":value pairs (no value holds a comma)
  for (std::size_t at = 1, comma; at < kLocation.size(); at = comma + 1) {
    comma = std::min(kLocation.find(',', at), kLocation.size() - 1);
    fields.push_back(kLocation.substr(at, comma - at));
  }
  REQUIRE(fields.size() == 11);
  std::mt19937 random(7);
  for (int round = 0; round < 500; ++round) {
    std::shuffle(fields.begin(), fields.end(), random);
    std::string body = "{";
    for (std::size_t i = 0; i < fields.size(); ++i) body += (i ? "," : "") + fields[i];
    body += "}";
    CAPTURE(body);
    auto decoded = decode(body);
    REQUIRE(decoded.batch.records().size() == 1);
    CHECK(fields_of(decoded.batch.records()[0]) == fields_of(expected));
  }
}

TEST_CASE("escaped keys and values read as their unescaped text; near-miss keys are unknown") {
  auto escaped = decode(R"({"device\u005fid":"tr\u0075ck-1","\u0074ype":"loc\u0061tion","t\u0073":5,)"
                        R"("msg_id":"a\"b\\c","l\u0061t":1,"lo\u006e":2,"n\u006fte":"\ud83d\ude9a"})");
  auto plain = decode(R"({"device_id":"truck-1","type":"location","ts":5,"msg_id":"a\"b\\c","lat":1,"lon":2})");
  REQUIRE(escaped.batch.records().size() == 1);
  REQUIRE(plain.batch.records().size() == 1);
  CHECK(fields_of(escaped.batch.records()[0]) == fields_of(plain.batch.records()[0]));
  CHECK(escaped.batch.records()[0].msg_id == "a\"b\\c");

  // Same length or a prefix of a known key, other case, trailing space: all unknown, so skipped.
  auto near = decode(R"({"device_id":"d","type":"location","ts":1,"lat":1,"lon":2,)"
                     R"("device_ie":7,"device_i":7,"device_idx":7,"Lat":"x","lat ":"x","t":"x","tsx":"x","":"x"})");
  REQUIRE(near.batch.records().size() == 1);
  CHECK(near.batch.errors().empty());

  // An invalid escape is malformed JSON in a key, known or not, and in a value that is read;
  // in an unknown field's value it is skipped unread, as before.
  for (const std::string body : {R"({"dev\xice_id":"d"})", R"({"no\xte":1})", R"({"device_id":"d\x"})"}) {
    CAPTURE(body);
    auto bad = decode(body);
    REQUIRE_FALSE(bad.result.has_value());
    CHECK(bad.result.error().message == "malformed JSON: Problem while parsing a string");
  }
  auto unread = decode(R"({"device_id":"d","type":"location","ts":1,"lat":1,"lon":2,"note":"\x"})");
  CHECK(unread.batch.records().size() == 1);
}

TEST_CASE("a field given twice: the last value wins, a bad value in either refuses the record") {
  auto twice = decode(R"({"device_id":"a","type":"location","ts":1,"lat":1,"lon":2,"device_id":"b","lat":3})");
  REQUIRE(twice.batch.records().size() == 1);
  CHECK(twice.batch.records()[0].device_id == "b");
  CHECK(twice.batch.records()[0].location.lat == 3);
  for (const std::string body : {R"({"device_id":"d","type":"location","ts":1,"lat":"x","lon":2,"lat":1})",
                                 R"({"device_id":"d","type":"location","ts":1,"lat":1,"lon":2,"lat":"x"})"}) {
    CAPTURE(body);
    auto refused = decode(body);
    REQUIRE(refused.batch.errors().size() == 1);
    CHECK(refused.batch.errors()[0].field == "lat");
  }
}

TEST_CASE("each refused field keeps its exact reason") {
  const std::string head = R"({"device_id":"d","type":"location","ts":1,"lat":1,"lon":2,)";
  const std::pair<std::string, std::pair<std::string, std::string>> cases[] = {
      {head + R"("device_id":7})", {"device_id", "must be a string"}},
      {head + R"("msg_id":[]})", {"msg_id", "must be a string"}},
      {head + R"("type":1})", {"type", "must be a string: location or sensor"}},
      {head + R"("type":"boat"})", {"type", "must be location or sensor, got 'boat'"}},
      {head + R"("ts":"soon"})", {"ts", "'soon' is not an RFC 3339 date-time such as 2026-11-24T10:00:00Z"}},
      {head + R"("ts":1.5})", {"ts", "must be a whole number of epoch milliseconds or an RFC 3339 string"}},
      {head + R"("ts":null})", {"ts", "must be epoch milliseconds or an RFC 3339 string"}},
      {head + R"("lat":"n"})", {"lat", "must be a number"}},
      {head + R"("lon":{}})", {"lon", "must be a number"}},
      {head + R"("alt":true})", {"alt", "must be a number"}},
      {head + R"("speed":"1"})", {"speed", "must be a number"}},
      {head + R"("heading":null})", {"heading", "must be a number"}},
      {head + R"("accuracy":[1]})", {"accuracy", "must be a number"}},
      {head + R"("battery":"full"})", {"battery", "must be a number"}},
      {head + R"("name":1})", {"name", "must be a string"}},
      {head + R"("value":"v"})", {"value", "must be a number"}},
      {head + R"("unit":2})", {"unit", "must be a string"}},
      {head + R"("readings":{}})", {"readings", "must be an array of {name, value, unit} objects"}},
      {R"({"device_id":"d","type":"sensor","ts":1,"readings":[1]})", {"readings[0]", "must be an object"}},
      {R"({"device_id":"d","type":"sensor","ts":1,"readings":[{"name":1,"value":1}]})",
       {"readings[0].name", "must be a string"}},
      {R"({"device_id":"d","type":"sensor","ts":1,"readings":[{"name":"n","value":1,"unit":[]}]})",
       {"readings[0].unit", "must be a string"}},
      {R"({"device_id":"d","type":"sensor","ts":1,"readings":[{"name":"n","value":"1"}]})",
       {"readings[0].value", "must be a number"}},
      {R"({"device_id":"d","type":"sensor","ts":1,"readings":[{"n\u0061me":"n"}]})", {"readings[0].value", "is required"}},
      {R"({"type":"location","ts":1,"lat":1,"lon":2})", {"device_id", "is required"}},
      {R"({"device_id":"d","ts":1,"lat":1,"lon":2})", {"type", "is required (location or sensor)"}},
      {R"({"device_id":"d","type":"location","lat":1,"lon":2})", {"ts", "is required (epoch milliseconds or RFC 3339)"}},
      {R"({"device_id":"d","type":"location","ts":1,"lon":2})", {"lat", "is required for a location record"}},
      {R"({"device_id":"d","type":"location","ts":1,"lat":2})", {"lon", "is required for a location record"}},
      {R"({"device_id":"d","type":"sensor","ts":1,"value":2})", {"name", "is required with value"}},
      {R"({"device_id":"d","type":"sensor","ts":1})", {"readings", "a sensor record needs readings, or name and value"}},
      {R"(["d"])", {"", "a record must be a JSON object, not a string"}},
  };
  for (const auto& [body, expected] : cases) {
    CAPTURE(body);
    auto decoded = decode(body);
    REQUIRE(decoded.result.has_value());
    REQUIRE(decoded.batch.errors().size() == 1);
    CHECK(decoded.batch.errors()[0].field == expected.first);
    CHECK(decoded.batch.errors()[0].reason == expected.second);
  }
  DecodeLimits limits;
  limits.max_string_bytes = 4;
  auto long_msg = decode(head + R"("msg_id":"m\u002d123"})", "application/json", limits);
  REQUIRE(long_msg.batch.errors().size() == 1);
  CHECK(long_msg.batch.errors()[0].reason == "must be at most 4 bytes, got 5");
}

TEST_CASE("NDJSON: one record per line, blank lines and CRLF allowed") {
  const std::string body = kLocation + "\r\n\r\n" + kLocation + "\n\n" + kLocation;
  auto decoded = decode(body, "application/x-ndjson");
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.records().size() == 3);
  CHECK(decoded.batch.records()[2].index == 2);

  auto broken = decode(kLocation + "\n{\"device_id\":", "application/x-ndjson");
  REQUIRE_FALSE(broken.result.has_value());
  CHECK(broken.result.error().code == CodecErrc::malformed_body);
}

TEST_CASE("a body that is not JSON is malformed, with the parser's reason") {
  for (const std::string& body : {std::string(R"([{"device_id":"d",)"), kLocation + " trailing", std::string("nope"),
                                 std::string(R"({"device_id":"d" "type":1})"), std::string("\"text\"")}) {
    CAPTURE(body);
    auto decoded = decode(body);
    REQUIRE_FALSE(decoded.result.has_value());
    CHECK(decoded.result.error().code == CodecErrc::malformed_body);
    CHECK_FALSE(decoded.result.error().message.empty());
  }
  auto trailing = decode(kLocation + " trailing");
  REQUIRE(trailing.result.error().offset.has_value());
  CHECK(*trailing.result.error().offset == kLocation.size() + 1);
}

TEST_CASE("limits: records per body, string sizes; deep unknown values are skipped") {
  DecodeLimits limits;
  limits.max_records = 2;
  auto too_many = decode("[" + kLocation + "," + kLocation + "," + kLocation + "]", "application/json", limits);
  REQUIRE_FALSE(too_many.result.has_value());
  CHECK(too_many.result.error().code == CodecErrc::too_many_records);

  limits = DecodeLimits{};
  limits.max_string_bytes = 16;
  auto long_id = decode(R"({"device_id":"this-id-is-far-too-long","type":"location","ts":1,"lat":1,"lon":2})",
                        "application/json", limits);
  REQUIRE(long_id.result.has_value());
  REQUIRE(long_id.batch.errors().size() == 1);
  CHECK(long_id.batch.errors()[0].field == "device_id");

  const std::string deep = std::string(5000, '[') + std::string(5000, ']');
  auto skipped = decode(R"({"device_id":"d","x":)" + deep + R"(,"type":"location","ts":1,"lat":1,"lon":2})");
  REQUIRE(skipped.result.has_value());
  CHECK(skipped.batch.records().size() == 1);
}

TEST_CASE("empty bodies and foreign content types are refused") {
  auto empty = decode("  \n ");
  REQUIRE_FALSE(empty.result.has_value());
  CHECK(empty.result.error().code == CodecErrc::empty_body);
  auto foreign = decode(kLocation, "text/plain");
  REQUIRE_FALSE(foreign.result.has_value());
  CHECK(foreign.result.error().code == CodecErrc::unsupported_content_type);
}

TEST_CASE("one codec instance reused: no state leaks from a bigger or broken body") {
  JsonCodec codec(DecodeLimits{});
  DecodedBatch batch;
  const DecodeContext context{"acme", "truck-1", "http", "application/json"};
  std::string big = "[";
  for (int i = 0; i < 500; ++i) big += (i ? "," : "") + kLocation;
  big += "]";
  REQUIRE(codec.decode(big, context, batch).has_value());
  CHECK(batch.records().size() == 500);
  batch.clear();
  CHECK_FALSE(codec.decode(R"([{"device_id":)", context, batch).has_value());
  batch.clear();
  REQUIRE(codec.decode(R"({"device_id":"d","type":"location","ts":5,"lat":1,"lon":2})", context, batch).has_value());
  REQUIRE(batch.records().size() == 1);
  const CanonicalRecord& record = batch.records()[0];
  CHECK(record.msg_id.empty());  // not the previous body's
  CHECK_FALSE(record.location.alt.has_value());
  CHECK(record.event_time_ms == 5);
}

TEST_CASE("speed and epoch units convert to m/s and Unix milliseconds") {
  CHECK(metres_per_second_per(*parse_speed_unit("kmh")) * 36.0 == doctest::Approx(10.0));
  CHECK(metres_per_second_per(*parse_speed_unit("knots")) * 3600.0 == doctest::Approx(1852.0));
  CHECK(metres_per_second_per(*parse_speed_unit("mph")) * 3600.0 == doctest::Approx(1609.344));
  CHECK(metres_per_second_per(*parse_speed_unit("m/s")) == 1.0);
  CHECK_FALSE(parse_speed_unit("furlongs"));

  CHECK(epoch_to_ms(1795514400, EpochUnit::seconds) == 1795514400000);
  CHECK(epoch_to_ms(1795514400.25, EpochUnit::seconds) == 1795514400250);
  CHECK(epoch_to_ms(1795514400123456, EpochUnit::microseconds) == 1795514400123);
  CHECK(epoch_to_ms(1795514400, EpochUnit::automatic) == 1795514400000);
  CHECK(epoch_to_ms(1795514400000, EpochUnit::automatic) == 1795514400000);
  CHECK(epoch_to_ms(1795514400000000, EpochUnit::automatic) == 1795514400000);
  CHECK_FALSE(epoch_to_ms(1e300, EpochUnit::milliseconds));
  CHECK_FALSE(epoch_to_ms(std::nan(""), EpochUnit::seconds));
}

TEST_CASE("unit options name the key and the allowed values") {
  YAML::Node node = YAML::Load("{speed_unit: furlongs}");
  OptionReader options(node, "codec_options");
  CHECK_THROWS_WITH(read_speed_unit(options, "speed_unit", SpeedUnit::mps),
                    "codec_options.speed_unit: must be one of mps, kmh, knots, mph, got 'furlongs'");
  OptionReader empty(YAML::Node(), "codec_options");
  CHECK(read_epoch_unit(empty, "time_unit", EpochUnit::seconds) == EpochUnit::seconds);
}
