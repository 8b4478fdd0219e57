// The binary codecs: SenML CBOR against the SenML JSON codec (same packs, same resolved records)
// and against hostile CBOR; the telegate.v1.TelemetryBatch protobuf codec field by field.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <string>

#include "protobuf/protobuf_codec.hpp"
#include "senml/senml_codec.hpp"
#include "senml_cbor/senml_cbor_codec.hpp"
#include "telemetry.pb.h"

using namespace telegate::codecs;
using namespace std::string_literals;  // CBOR bodies hold NUL bytes

namespace {

struct Decoded {
  std::expected<void, CodecError> result;
  DecodedBatch batch;
};

template <class ConcreteCodec>
Decoded decode_with(std::string_view body, std::string_view content_type, DecodeLimits limits = {}) {
  ConcreteCodec codec(limits);
  Decoded out;
  out.result = codec.decode(body, DecodeContext{"acme", "probe-7", "coap", content_type}, out.batch);
  return out;
}

Decoded senml_json(std::string_view body) { return decode_with<SenmlJsonCodec>(body, "application/senml+json"); }
Decoded senml_cbor(std::string_view body, DecodeLimits limits = {}) {
  return decode_with<SenmlCborCodec>(body, "application/senml+cbor", limits);
}

std::string file(const std::string& relative) {
  std::ifstream in(std::string(TELEGATE_SOURCE_DIR) + "/codecs/" + relative, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing sample " << relative);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Records equal field by field; times that resolve relative to "now" may differ by the time
// between the two decodes.
void check_same_records(const DecodedBatch& expected, const DecodedBatch& actual) {
  REQUIRE(actual.records().size() == expected.records().size());
  for (std::size_t i = 0; i < expected.records().size(); ++i) {
    CAPTURE(i);
    const CanonicalRecord& want = expected.records()[i];
    const CanonicalRecord& got = actual.records()[i];
    CHECK(got.index == want.index);
    CHECK(got.device_id == want.device_id);
    CHECK(got.type == want.type);
    CHECK(std::abs(got.event_time_ms - want.event_time_ms) < 2000);
    REQUIRE(got.readings.size() == want.readings.size());
    for (std::size_t r = 0; r < want.readings.size(); ++r) {
      CHECK(got.readings[r].name == want.readings[r].name);
      CHECK(got.readings[r].value == want.readings[r].value);  // exact: same doubles
      CHECK(got.readings[r].unit == want.readings[r].unit);
    }
  }
  CHECK(actual.errors().size() == expected.errors().size());
}

}  // namespace

// --- SenML CBOR ---------------------------------------------------------------------------------

TEST_CASE("senml_cbor: RFC 8428 §6's CBOR example resolves exactly as its JSON form (§5.1.3)") {
  auto cbor = senml_cbor(file("senml_cbor/samples/rfc8428-section6.valid.senml+cbor"));
  auto json = senml_json(file("senml/samples/rfc8428-multiple-measurements.valid.senml+json"));
  REQUIRE(cbor.result.has_value());
  REQUIRE(json.result.has_value());
  check_same_records(json.batch, cbor.batch);
  // Absolute times: the two must agree to the millisecond.
  for (std::size_t i = 0; i < json.batch.records().size(); ++i) {
    CHECK(cbor.batch.records()[i].event_time_ms == json.batch.records()[i].event_time_ms);
  }
  const auto records = cbor.batch.records();
  REQUIRE(records.size() == 7);
  CHECK(records[0].device_id == "probe-7");  // from the credentials, never from bn
  CHECK(records[0].event_time_ms == 1276020076001);
  CHECK(records[0].readings[0].name == "urn:dev:ow:10e2073a0108006:voltage");
  CHECK(records[0].readings[0].unit == "V");
  CHECK(records[0].readings[0].value == 120.1);
  CHECK(records[4].readings[0].value == 1.5);  // a half float in the RFC's bytes
  CHECK(records[4].readings[0].unit == "A");   // bu
  CHECK(records[5].event_time_ms == 1276020075001);
}

TEST_CASE("senml_cbor: each JSON sample encoded with integer labels resolves as the JSON codec does") {
  for (const std::string& stem : {std::string("rfc8428-multiple-datapoints"), std::string("rfc8428-single-datapoint"), std::string("base-value-sum-boolean")}) {
    CAPTURE(stem);
    auto cbor = senml_cbor(file("senml_cbor/samples/" + stem + ".valid.senml+cbor"));
    auto json = senml_json(file("senml/samples/" + stem + ".valid.senml+json"));
    REQUIRE(cbor.result.has_value());
    REQUIRE(json.result.has_value());
    CHECK(!cbor.batch.records().empty());
    check_same_records(json.batch, cbor.batch);
  }
}

TEST_CASE("senml_cbor: indefinite lengths, chunked strings, half floats and decimal fractions") {
  auto decoded = senml_cbor(file("senml_cbor/samples/indefinite-decimal-half.valid.senml+cbor"));
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.errors().empty());
  REQUIRE(decoded.batch.records().size() == 1);  // both readings are "now": one record
  const auto& readings = decoded.batch.records()[0].readings;
  REQUIRE(readings.size() == 2);
  CHECK(readings[0].name == "device/temp");  // bn sent as two chunks
  CHECK(readings[0].unit == "Cel");
  CHECK(readings[0].value == 20.0);  // half float 0x4d00
  CHECK(readings[1].name == "device/humidity");
  CHECK(readings[1].value == doctest::Approx(45.5));  // 4([-1, 455])
}

TEST_CASE("senml_cbor: record problems are named by record index and field, as in JSON") {
  auto decoded = senml_cbor(file("senml_cbor/samples/record-problems.invalid.senml+cbor"));
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.records().empty());
  const auto errors = decoded.batch.errors();
  REQUIRE(errors.size() == 9);
  const char* fields[] = {"vs", "v", "n", "v", "must_", "", "label", "v", "v"};
  for (std::size_t i = 0; i < errors.size(); ++i) {
    CAPTURE(i);
    CHECK(errors[i].index == i);
    CHECK(errors[i].field == fields[i]);
    CHECK(!errors[i].reason.empty());
  }
  CHECK(errors[2].reason.find("bad name!") != std::string::npos);
  CHECK(errors[5].reason.find("CBOR map") != std::string::npos);
  CHECK(errors[6].reason.find("integer or a text string") != std::string::npos);
}

TEST_CASE("senml_cbor: unreadable bodies are malformed, with the byte offset") {
  struct Case {
    const char* sample;
    const char* says;
  };
  for (const Case c : {Case{"truncated", "truncated"}, Case{"map-not-pack", "CBOR array"},
                       Case{"trailing", "trailing bytes"}, Case{"deep-nesting", "deeper than 32"},
                       Case{"huge-array-length", "truncated"}, Case{"huge-string-length", "length too large"}}) {
    CAPTURE(c.sample);
    auto decoded = senml_cbor(file(std::string("senml_cbor/samples/") + c.sample + ".invalid.senml+cbor"));
    REQUIRE_FALSE(decoded.result.has_value());
    CHECK(decoded.result.error().code == CodecErrc::malformed_body);
    CHECK(decoded.result.error().offset.has_value());
    CHECK_MESSAGE(decoded.result.error().message.find(c.says) != std::string::npos, decoded.result.error().message);
  }
  auto trailing = senml_cbor(file("senml_cbor/samples/trailing.invalid.senml+cbor"));
  CHECK(trailing.result.error().offset == 195);
}

TEST_CASE("senml_cbor: nesting is bounded without recursion, at any depth") {
  // 100k nested indefinite arrays inside a record: refused at depth 32, no stack growth.
  std::string body = "\x81\xa1\x61x";
  body.append(100'000, '\x9f');
  auto deep = senml_cbor(body);
  REQUIRE_FALSE(deep.result.has_value());
  CHECK(deep.result.error().code == CodecErrc::malformed_body);
  CHECK(deep.result.error().message.find("deeper") != std::string::npos);
  // Nesting within the limit in an extension value is skipped and the record accepted.
  std::string shallow = "\x81\xa3\x00\x61x\x02\x01\x61y"s;
  shallow.append(20, '\x81');
  shallow += '\x00';
  auto fine = senml_cbor(shallow);
  REQUIRE(fine.result.has_value());
  CHECK(fine.batch.records().size() == 1);
}

TEST_CASE("senml_cbor: limits, wrong value types and contract errors") {
  // 3 records, max 2.
  const std::string three = "\x83\xa2\x00\x61" "a\x02\x01\xa2\x00\x61" "b\x02\x02\xa2\x00\x61" "c\x02\x03"s;
  DecodeLimits two;
  two.max_records = 2;
  auto many = senml_cbor(three, two);
  REQUIRE_FALSE(many.result.has_value());
  CHECK(many.result.error().code == CodecErrc::too_many_records);
  REQUIRE(senml_cbor(three).result.has_value());

  DecodeLimits short_strings;
  short_strings.max_string_bytes = 4;
  auto long_name = senml_cbor("\x81\xa2\x00\x65" "abcde\x02\x01"s, short_strings);
  REQUIRE(long_name.result.has_value());
  REQUIRE(long_name.batch.errors().size() == 1);
  CHECK(long_name.batch.errors()[0].field == "n");

  // n as an integer, v as a byte string, vb as a number, t as null: each named.
  for (const auto& [body, field] : std::initializer_list<std::pair<std::string, std::string>>{
           {std::string("\x81\xa2\x00\x01\x02\x01", 6), "n"},
           {std::string("\x81\xa2\x00\x61x\x02\x41\x01", 8), "v"},
           {std::string("\x81\xa2\x00\x61x\x04\x01", 7), "vb"},
           {std::string("\x81\xa3\x00\x61x\x02\x01\x06\xf6", 9), "t"},
           {std::string("\x81\xa2\x00\x61x\x02\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00", 15), "v"},  // +inf
       }) {
    CAPTURE(field);
    auto decoded = senml_cbor(body);
    REQUIRE(decoded.result.has_value());
    REQUIRE(decoded.batch.errors().size() == 1);
    CHECK(decoded.batch.errors()[0].field == field);
  }

  auto empty = senml_cbor("");
  REQUIRE_FALSE(empty.result.has_value());
  CHECK(empty.result.error().code == CodecErrc::empty_body);
  auto json_type = decode_with<SenmlCborCodec>("\x80", "application/senml+json");
  REQUIRE_FALSE(json_type.result.has_value());
  CHECK(json_type.result.error().code == CodecErrc::unsupported_content_type);
  // Not well-formed: reserved additional information 28, and a break with nothing open.
  for (const std::string& bad : {std::string("\x1c"), std::string("\xff"), std::string("\x81\xff")}) {
    auto decoded = senml_cbor(bad);
    REQUIRE_FALSE(decoded.result.has_value());
    CHECK(decoded.result.error().code == CodecErrc::malformed_body);
  }
}

// --- protobuf (telegate.v1.TelemetryBatch) -------------------------------------------------------

namespace {

using telegate::v1::Telemetry;
using telegate::v1::TelemetryBatch;

Decoded protobuf(std::string_view body, DecodeLimits limits = {},
                 std::string_view content_type = "application/x-protobuf") {
  return decode_with<ProtobufCodec>(body, content_type, limits);
}

Telemetry& add_location(TelemetryBatch& batch, std::int64_t time_ms, double lat, double lon) {
  Telemetry& telemetry = *batch.add_records();
  telemetry.set_event_time_ms(time_ms);
  telemetry.mutable_location()->set_lat(lat);
  telemetry.mutable_location()->set_lon(lon);
  return telemetry;
}

}  // namespace

TEST_CASE("protobuf: every field of a location and a sensor record round-trips") {
  TelemetryBatch batch;
  Telemetry& fix = add_location(batch, 1764000000250, 52.520008, 13.404954);
  fix.set_msg_id("trk-42-000017");
  Telemetry::Location& at = *fix.mutable_location();
  at.set_alt(34.5);
  at.set_speed_mps(12.3f);
  at.set_heading_deg(271.5f);
  at.set_accuracy_m(4.8f);
  at.set_battery_pct(87.0f);
  Telemetry& sensor = *batch.add_records();
  sensor.set_msg_id("s-1");
  sensor.set_event_time_ms(1764000001000);
  auto* reading = sensor.mutable_sensor()->add_readings();
  reading->set_name("temperature");
  reading->set_value(-21.25);
  reading->set_unit("Cel");
  reading = sensor.mutable_sensor()->add_readings();
  reading->set_name("count");
  reading->set_value(3);

  auto decoded = protobuf(batch.SerializeAsString());
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.errors().empty());
  const auto records = decoded.batch.records();
  REQUIRE(records.size() == 2);
  const CanonicalRecord& location = records[0];
  CHECK(location.index == 0);
  CHECK(location.device_id == "probe-7");  // from the credentials
  CHECK(location.type == MessageType::location);
  CHECK(location.msg_id == "trk-42-000017");
  CHECK(location.event_time_ms == 1764000000250);
  CHECK(location.location.lat == 52.520008);
  CHECK(location.location.lon == 13.404954);
  CHECK(location.location.alt == 34.5);
  CHECK(location.location.speed == 12.3);  // the float widened by its shortest decimal form
  CHECK(location.location.heading == 271.5);
  CHECK(location.location.accuracy == 4.8);
  CHECK(location.location.battery == 87.0);
  const CanonicalRecord& readings = records[1];
  CHECK(readings.index == 1);
  CHECK(readings.type == MessageType::sensor);
  CHECK(readings.msg_id == "s-1");
  CHECK(readings.event_time_ms == 1764000001000);
  REQUIRE(readings.readings.size() == 2);
  CHECK(readings.readings[0].name == "temperature");
  CHECK(readings.readings[0].value == -21.25);
  CHECK(readings.readings[0].unit == "Cel");
  CHECK(readings.readings[1].name == "count");
  CHECK(readings.readings[1].unit.empty());

  // The second content type reads the same bytes.
  auto vendor = protobuf(batch.SerializeAsString(), {}, "application/vnd.telegate.batch+protobuf");
  REQUIRE(vendor.result.has_value());
  CHECK(vendor.batch.records().size() == 2);
}

TEST_CASE("protobuf: optional location fields absent stay absent; present zeros stay present") {
  TelemetryBatch batch;
  add_location(batch, 1764000000000, -33.8688, 151.2093);
  Telemetry& zeros = add_location(batch, 1764000000000, 0, 0);
  zeros.mutable_location()->set_alt(0);
  zeros.mutable_location()->set_speed_mps(0);
  zeros.mutable_location()->set_battery_pct(0);
  auto decoded = protobuf(batch.SerializeAsString());
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 2);
  const Location& bare = decoded.batch.records()[0].location;
  CHECK(bare.lat == -33.8688);
  CHECK_FALSE(bare.alt.has_value());
  CHECK_FALSE(bare.speed.has_value());
  CHECK_FALSE(bare.heading.has_value());
  CHECK_FALSE(bare.accuracy.has_value());
  CHECK_FALSE(bare.battery.has_value());
  CHECK(decoded.batch.records()[0].msg_id.empty());  // the gateway generates one
  const Location& zero = decoded.batch.records()[1].location;
  CHECK(zero.alt == 0.0);
  CHECK(zero.speed == 0.0);
  CHECK(zero.battery == 0.0);
  CHECK_FALSE(zero.heading.has_value());
}

TEST_CASE("protobuf: record problems name the proto field; good records around them are kept") {
  auto decoded = protobuf(file("protobuf/samples/record-problems.invalid.protobuf"));
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.records().empty());
  const auto errors = decoded.batch.errors();
  const char* fields[] = {"payload",         "event_time_ms",           "location.lat",
                          "location.lon",    "sensor.readings",         "sensor.readings[0].name",
                          "sensor.readings[1].value", "location.lat"};
  REQUIRE(errors.size() == std::size(fields));
  for (std::size_t i = 0; i < errors.size(); ++i) {
    CAPTURE(i);
    CHECK(errors[i].index == i);
    CHECK(errors[i].field == fields[i]);
    CHECK(!errors[i].reason.empty());
  }
  CHECK(errors[2].reason.find("91") != std::string::npos);

  TelemetryBatch batch;
  add_location(batch, 1764000000000, 1, 1);
  add_location(batch, 1764000000000, 1, 200);
  add_location(batch, 1764000000000, 2, 2);
  auto mixed = protobuf(batch.SerializeAsString());
  REQUIRE(mixed.result.has_value());
  REQUIRE(mixed.batch.records().size() == 2);
  CHECK(mixed.batch.records()[1].index == 2);
  REQUIRE(mixed.batch.errors().size() == 1);
  CHECK(mixed.batch.errors()[0].index == 1);
  CHECK(mixed.batch.errors()[0].field == "location.lon");
}

TEST_CASE("protobuf: bytes that are not a TelemetryBatch are malformed") {
  for (const std::string& sample : {std::string("truncated"), std::string("bad-length"), std::string("not-utf8"),
                                    std::string("json-body")}) {
    CAPTURE(sample);
    auto decoded = protobuf(file("protobuf/samples/" + sample + ".invalid.protobuf"));
    REQUIRE_FALSE(decoded.result.has_value());
    CHECK(decoded.result.error().code == CodecErrc::malformed_body);
    CHECK(decoded.result.error().message.find("TelemetryBatch") != std::string::npos);
  }
  // A valid batch cut anywhere inside is refused or yields what it holds, never a crash.
  const std::string whole = file("protobuf/samples/mixed-batch.valid.protobuf");
  for (std::size_t length = 1; length < whole.size(); ++length) {
    auto decoded = protobuf(whole.substr(0, length));
    CHECK((!decoded.result.has_value() || decoded.batch.total() > 0));
  }
}

TEST_CASE("protobuf: limits, content types and a reused message") {
  TelemetryBatch batch;
  for (int i = 0; i < 3; ++i) add_location(batch, 1764000000000 + i, 1, 1);
  const std::string three = batch.SerializeAsString();
  DecodeLimits two;
  two.max_records = 2;
  auto many = protobuf(three, two);
  REQUIRE_FALSE(many.result.has_value());
  CHECK(many.result.error().code == CodecErrc::too_many_records);

  TelemetryBatch readings;
  Telemetry& sensor = *readings.add_records();
  sensor.set_event_time_ms(1764000000000);
  for (int i = 0; i < 3; ++i) {
    auto* reading = sensor.mutable_sensor()->add_readings();
    reading->set_name("r");
    reading->set_value(i);
  }
  DecodeLimits two_readings;
  two_readings.max_readings = 2;
  auto crowded = protobuf(readings.SerializeAsString(), two_readings);
  REQUIRE(crowded.result.has_value());
  REQUIRE(crowded.batch.errors().size() == 1);
  CHECK(crowded.batch.errors()[0].field == "sensor.readings");

  TelemetryBatch long_id;
  add_location(long_id, 1764000000000, 1, 1).set_msg_id(std::string(300, 'x'));
  auto too_long = protobuf(long_id.SerializeAsString());
  REQUIRE(too_long.result.has_value());
  REQUIRE(too_long.batch.errors().size() == 1);
  CHECK(too_long.batch.errors()[0].field == "msg_id");

  auto empty = protobuf("");
  REQUIRE_FALSE(empty.result.has_value());
  CHECK(empty.result.error().code == CodecErrc::empty_body);
  auto json = protobuf(three, {}, "application/json");
  REQUIRE_FALSE(json.result.has_value());
  CHECK(json.result.error().code == CodecErrc::unsupported_content_type);

  // One instance, a big batch then a small one: nothing of the first survives in the second.
  ProtobufCodec codec(DecodeLimits{});
  DecodedBatch out;
  const DecodeContext context{"acme", "probe-7", "http", "application/x-protobuf"};
  REQUIRE(codec.decode(file("protobuf/samples/mixed-batch.valid.protobuf"), context, out).has_value());
  CHECK(out.records().size() == 3);
  out.clear();
  REQUIRE(codec.decode(file("protobuf/samples/location-minimal.valid.protobuf"), context, out).has_value());
  REQUIRE(out.records().size() == 1);
  CHECK(out.records()[0].location.lat == -33.8688);
  CHECK_FALSE(out.records()[0].location.battery.has_value());
}
