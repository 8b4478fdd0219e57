#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <utility>

#include "telegate/envelope/envelope.hpp"

using namespace telegate;
using namespace telegate::envelope;

namespace {

codecs::CanonicalRecord location_record() {
  codecs::CanonicalRecord record;
  record.device_id = "truck-1";
  record.type = codecs::MessageType::location;
  record.event_time_ms = 1795514400000;
  record.msg_id = "truck-1-000042";
  record.location.lat = 46.0569;
  record.location.lon = 14.5058;
  record.location.speed = 13.4;
  record.location.battery = 81;
  return record;
}

codecs::CanonicalRecord sensor_record(std::string device_id, std::string msg_id) {
  codecs::CanonicalRecord record;
  record.device_id = std::move(device_id);
  record.type = codecs::MessageType::sensor;
  record.event_time_ms = 1795514400000;
  record.msg_id = std::move(msg_id);
  return record;
}

const EnvelopeContext kContext{"acme", "tracker", "gw-1", "application/json", SourceProtocol::http, 1795514401234};

}  // namespace

TEST_CASE("topic templates expand placeholders and refuse unknown ones") {
  const auto topic = TopicTemplate::compile("telemetry.{tenant}.{device_type}.{type}");
  REQUIRE(topic.has_value());
  std::string out = "stale";
  topic->expand("acme", "tracker", codecs::MessageType::sensor, out);
  CHECK(out == "telemetry.acme.tracker.sensor");
  CHECK(TopicTemplate::compile("fixed-topic").has_value());

  const auto unknown = TopicTemplate::compile("t.{tennant}");
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().message.find("{tennant}") != std::string::npos);
  CHECK_FALSE(TopicTemplate::compile("t.{tenant").has_value());
  CHECK_FALSE(TopicTemplate::compile("t.tenant}").has_value());
  CHECK_FALSE(TopicTemplate::compile("").has_value());
}

TEST_CASE("the tg-route header round-trips, escaping what needs it") {
  RouteFields fields;
  fields.tenant = "acme & co=1";
  fields.device_type = "tracker";
  fields.message_type = codecs::MessageType::sensor;
  fields.event_time_ms = -1234;
  fields.msg_id = "id with spaces/%\xf0\x9f\x9a\x9a";
  fields.format = Format::json;
  std::string header;
  encode_route_header(fields, header);
  CHECK(header.find(' ') == std::string::npos);
  CHECK(header.find("t=acme%20%26%20co%3D1") != std::string::npos);
  const auto decoded = decode_route_header(header);
  REQUIRE(decoded.has_value());
  CHECK(decoded->tenant == fields.tenant);
  CHECK(decoded->device_type == "tracker");
  CHECK(decoded->message_type == codecs::MessageType::sensor);
  CHECK(decoded->event_time_ms == -1234);
  CHECK(decoded->msg_id == fields.msg_id);
  CHECK(decoded->format == Format::json);
}

TEST_CASE("malformed tg-route headers are refused with a reason") {
  for (const std::string bad : {"", "v=1", "v=x&t=a&mt=location&et=1&id=i", "v=1&t=a&mt=boat&et=1&id=i",
                                "v=1&t=a&mt=location&et=1&id=%zz", "v=1&t=a&mt=location&et=1&id=i&f=xml",
                                "v=1&t=a&mt=location&et=12ab&id=i", "garbage"}) {
    CAPTURE(bad);
    const auto decoded = decode_route_header(bad);
    REQUIRE_FALSE(decoded.has_value());
    CHECK_FALSE(decoded.error().message.empty());
  }
}

TEST_CASE("sealing a location record: key, topic, header and a Protobuf envelope that decodes back") {
  EnvelopeBuilder builder(Format::protobuf, *TopicTemplate::compile("telemetry.{tenant}.{type}"));
  SealedRecord sealed;
  builder.seal(location_record(), kContext, sealed);
  CHECK(sealed.key == "truck-1");
  CHECK(sealed.topic == "telemetry.acme.location");
  CHECK(sealed.msg_id == "truck-1-000042");
  CHECK(sealed.route_header == "v=1&t=acme&dt=tracker&mt=location&et=1795514400000&id=truck-1-000042&f=pb");

  const auto decoded = decode_envelope(sealed.value, Format::protobuf);
  REQUIRE(decoded.has_value());
  CHECK(decoded->tenant == "acme");
  CHECK(decoded->device_type == "tracker");
  CHECK(decoded->gateway_id == "gw-1");
  CHECK(decoded->content_type == "application/json");
  CHECK(decoded->ingest_time_ms == 1795514401234);
  CHECK(decoded->protocol == SourceProtocol::http);
  CHECK_FALSE(decoded->msg_id_generated);
  CHECK(decoded->record.device_id == "truck-1");
  CHECK(decoded->record.event_time_ms == 1795514400000);
  CHECK(decoded->record.location.lat == 46.0569);
  CHECK(decoded->record.location.lon == 14.5058);
  CHECK(decoded->record.location.speed == 13.4);
  CHECK(decoded->record.location.battery == 81);
  CHECK_FALSE(decoded->record.location.alt.has_value());
}

TEST_CASE("the JSON format renders the same envelope and reads back identically") {
  EnvelopeBuilder builder(Format::json, *TopicTemplate::compile("t"));
  codecs::CanonicalRecord record = sensor_record("probe-\"7\"", "m1");
  record.readings.push_back({"temp\nline", 21.5, "Cel"});
  record.readings.push_back({"rh", 0.1, "%RH"});
  SealedRecord sealed;
  builder.seal(record, kContext, sealed);
  CHECK(sealed.route_header.ends_with("&f=json"));
  CHECK(sealed.value.find(R"("device_id":"probe-\"7\"")") != std::string::npos);
  CHECK(sealed.value.find(R"("name":"temp\nline")") != std::string::npos);
  CHECK(sealed.value.find(R"("value":0.1)") != std::string::npos);  // shortest round-trip form

  const auto decoded = decode_envelope(sealed.value, Format::json);
  REQUIRE(decoded.has_value());
  CHECK(decoded->record.device_id == "probe-\"7\"");
  REQUIRE(decoded->record.readings.size() == 2);
  CHECK(decoded->record.readings[0].name == "temp\nline");
  CHECK(decoded->record.readings[1].value == 0.1);

  // Both formats render to the same JSON.
  EnvelopeBuilder protobuf(Format::protobuf, *TopicTemplate::compile("t"));
  SealedRecord binary;
  protobuf.seal(record, kContext, binary);
  CHECK(render_json(binary.value, Format::protobuf).value() == sealed.value);
}

TEST_CASE("sensor attributes (a tracker's byte-string I/O elements) round-trip in both formats, absent when empty") {
  codecs::CanonicalRecord record = sensor_record("356307042441013", "m2");
  record.readings.push_back({"io_21", 3, ""});
  record.attributes.push_back({"io_256", "aabbcc"});
  for (const Format format : {Format::protobuf, Format::json}) {
    EnvelopeBuilder builder(format, *TopicTemplate::compile("t"));
    SealedRecord sealed;
    builder.seal(record, kContext, sealed);
    const auto decoded = decode_envelope(sealed.value, format);
    REQUIRE(decoded.has_value());
    REQUIRE(decoded->record.attributes.size() == 1);
    CHECK(decoded->record.attributes[0].name == "io_256");
    CHECK(decoded->record.attributes[0].value == "aabbcc");
    CHECK(render_json(sealed.value, format).value().find(R"("attributes":[{"name":"io_256","value":"aabbcc"}])") !=
          std::string::npos);
  }
  record.attributes.clear();
  EnvelopeBuilder json(Format::json, *TopicTemplate::compile("t"));
  SealedRecord sealed;
  json.seal(record, kContext, sealed);
  CHECK(sealed.value.find("attributes") == std::string::npos);
}

TEST_CASE("one builder alternating locations and sensors: each envelope holds only its own record's fields") {
  // The builder keeps the payload's Location and Sensor between records (no allocation per
  // record): nothing of the previous record of either kind may leak into the next.
  EnvelopeBuilder builder(Format::protobuf, *TopicTemplate::compile("t"));
  codecs::CanonicalRecord sensor = sensor_record("probe-1", "");
  sensor.readings.push_back({"temp", 21.5, "Cel"});
  sensor.readings.push_back({"rh", 40, "%RH"});
  codecs::CanonicalRecord bare = location_record();
  bare.location.speed.reset();
  bare.location.battery.reset();
  bare.location.lat = 1;
  SealedRecord sealed;
  builder.seal(location_record(), kContext, sealed);
  builder.seal(sensor, kContext, sealed);
  auto decoded = decode_envelope(sealed.value, Format::protobuf);
  REQUIRE(decoded.has_value());
  CHECK(decoded->record.type == codecs::MessageType::sensor);
  CHECK(decoded->record.readings.size() == 2);

  builder.seal(bare, kContext, sealed);
  decoded = decode_envelope(sealed.value, Format::protobuf);
  REQUIRE(decoded.has_value());
  CHECK(decoded->record.type == codecs::MessageType::location);
  CHECK(decoded->record.location.lat == 1);
  CHECK_FALSE(decoded->record.location.speed.has_value());  // the first record's, not carried over
  CHECK_FALSE(decoded->record.location.battery.has_value());
  CHECK(decoded->record.readings.empty());

  sensor.readings.pop_back();
  builder.seal(sensor, kContext, sealed);
  decoded = decode_envelope(sealed.value, Format::protobuf);
  REQUIRE(decoded.has_value());
  REQUIRE(decoded->record.readings.size() == 1);  // the earlier sensor's second reading is gone
  CHECK(decoded->record.readings[0].name == "temp");
}

TEST_CASE("records without msg_id get distinct, time-ordered UUIDv7 ids") {
  EnvelopeBuilder builder(Format::protobuf, *TopicTemplate::compile("t"));
  codecs::CanonicalRecord record = location_record();
  record.msg_id.clear();
  const std::regex uuid_v7("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> ids;
  SealedRecord sealed;
  for (int i = 0; i < 100'000; ++i) {
    builder.seal(record, kContext, sealed);
    if (i < 100) CHECK(std::regex_match(sealed.msg_id, uuid_v7));
    ids.insert(sealed.msg_id);
  }
  CHECK(ids.size() == 100'000);
  // The first 48 bits are the ingest time in ms.
  CHECK(std::stoull(sealed.msg_id.substr(0, 8) + sealed.msg_id.substr(9, 4), nullptr, 16) == 1795514401234ull);
  const auto decoded = decode_envelope(sealed.value, Format::protobuf);
  REQUIRE(decoded.has_value());
  CHECK(decoded->msg_id_generated);
  CHECK(decoded->record.msg_id == sealed.msg_id);
}

TEST_CASE("garbage is not an envelope") {
  CHECK_FALSE(decode_envelope("\xff\xff\xff", Format::protobuf).has_value());
  CHECK_FALSE(decode_envelope("{\"tenant\":5}", Format::json).has_value());
  CHECK_FALSE(decode_envelope("not json", Format::json).has_value());
  CHECK_FALSE(render_json("\x0a\xff", Format::protobuf).has_value());
}

TEST_CASE("CloudEvents binary mode: attributes in ce_* headers, the JSON envelope as data") {
  EnvelopeBuilder builder(Format::cloudevents, *TopicTemplate::compile("t.{tenant}"));
  SealedRecord sealed;
  builder.seal(location_record(), kContext, sealed);
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : sealed.headers) headers[std::string(name)] = value;
  CHECK(headers["ce_specversion"] == "1.0");
  CHECK(headers["ce_id"] == "truck-1-000042");
  CHECK(headers["ce_source"] == "telegate:acme/tracker");
  CHECK(headers["ce_type"] == "io.telegate.location.v1");
  CHECK(headers["ce_time"] == "2026-11-24T10:00:00.000Z");
  CHECK(headers["ce_subject"] == "truck-1");
  CHECK(headers["content-type"] == "application/json");
  CHECK(decode_route_header(sealed.route_header)->format == Format::cloudevents);
  const auto decoded = decode_envelope(sealed.value, Format::cloudevents);
  REQUIRE(decoded.has_value());
  CHECK(decoded->record.location.lat == doctest::Approx(46.0569));

  // The same builder reused for the Protobuf format carries no extra headers.
  EnvelopeBuilder plain(Format::protobuf, *TopicTemplate::compile("t"));
  plain.seal(location_record(), kContext, sealed);
  CHECK(sealed.headers.empty());
}

TEST_CASE("RFC 3339 rendering of Unix milliseconds, before and after the epoch") {
  auto render = [](std::int64_t ms) {
    std::string out;
    append_rfc3339(out, ms);
    return out;
  };
  CHECK(render(0) == "1970-01-01T00:00:00.000Z");
  CHECK(render(1709164800123) == "2024-02-29T00:00:00.123Z");
  CHECK(render(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(render(951782400000) == "2000-02-29T00:00:00.000Z");
}

TEST_CASE("JSON strings: every byte that needs an escape gets one, wherever it falls in a word") {
  // The escaper scans eight bytes at a time: put each kind of byte at every offset of a word,
  // next to non-ASCII bytes (which must pass as they are), and compare with a byte-by-byte one.
  const auto reference = [](std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
      const auto byte = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (byte < 0x20) {
        char code[8];
        std::snprintf(code, sizeof code, "\\u%04x", byte);
        out += code;
      } else {
        out += c;
      }
    }
    return out + "\"";
  };
  for (int special = 0; special < 256; ++special) {
    for (std::size_t offset = 0; offset < 19; ++offset) {
      std::string text = "abc\xc3\xa9\xff\x80xyz0123456789";
      text.insert(offset, 1, static_cast<char>(special));
      std::string out = "prefix";
      append_json_string(out, text);
      CAPTURE(special);
      CAPTURE(offset);
      REQUIRE(out == "prefix" + reference(text));
    }
  }
}
