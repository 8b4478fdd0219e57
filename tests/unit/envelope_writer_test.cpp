// The hand-driven Protobuf writer (envelope/src/protobuf_writer.hpp) against the generated
// telegate.v1.Envelope: the same bytes for any record, and no field of envelope.proto unknown
// to the writer.
#include <doctest/doctest.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/stubs/logging.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "protobuf_writer.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/v1/envelope.pb.h"

using namespace telegate;
using namespace telegate::envelope;

namespace {

template <std::size_t N>
std::vector<int> numbers(const std::array<int, N>& known) {
  return {known.begin(), known.end()};
}

std::vector<int> numbers(const google::protobuf::Descriptor* descriptor) {
  std::vector<int> out;
  for (int i = 0; i < descriptor->field_count(); ++i) out.push_back(descriptor->field(i)->number());
  return out;
}

// The reference: the generated message, filled field by field, as the builder did before the writer.
std::string reference_value(const codecs::CanonicalRecord& record, const EnvelopeContext& context,
                            const SealedRecord& sealed) {
  v1::Envelope message;
  message.set_schema_version(kSchemaVersion);
  message.set_tenant(std::string(context.tenant));
  message.set_device_id(record.device_id);
  message.set_device_type(std::string(context.device_type));
  message.set_message_type(record.type == codecs::MessageType::location ? v1::MESSAGE_TYPE_LOCATION
                                                                        : v1::MESSAGE_TYPE_SENSOR);
  message.set_event_time_ms(record.event_time_ms);
  message.set_ingest_time_ms(context.ingest_time_ms);
  message.set_gateway_id(std::string(context.gateway_id));
  message.set_msg_id(sealed.msg_id);
  message.set_msg_id_generated(sealed.msg_id_generated);
  message.set_source_protocol(static_cast<v1::SourceProtocol>(context.protocol));
  message.set_content_type(std::string(context.content_type));
  if (record.type == codecs::MessageType::location) {
    v1::Location& location = *message.mutable_location();
    location.set_lat(record.location.lat);
    location.set_lon(record.location.lon);
    if (record.location.alt) location.set_alt(*record.location.alt);
    if (record.location.speed) location.set_speed(*record.location.speed);
    if (record.location.heading) location.set_heading(*record.location.heading);
    if (record.location.accuracy) location.set_accuracy(*record.location.accuracy);
    if (record.location.battery) location.set_battery(*record.location.battery);
  } else {
    v1::Sensor& sensor = *message.mutable_sensor();
    for (const auto& from : record.readings) {
      v1::SensorReading& reading = *sensor.add_readings();
      reading.set_name(from.name);
      reading.set_value(from.value);
      reading.set_unit(from.unit);
    }
    for (const auto& from : record.attributes) {
      v1::Attribute& attribute = *sensor.add_attributes();
      attribute.set_name(from.name);
      attribute.set_value(from.value);
    }
  }
  std::string out;
  REQUIRE(message.SerializeToString(&out));
  return out;
}

// Random records and contexts over the edges of the wire format: empty and long strings (1-,
// 2- and 3-byte length varints), multi-byte UTF-8, zero, -0.0, NaN and infinite doubles,
// optional fields set to zero, negative and zero times, generated msg_ids.
struct Generator {
  std::mt19937_64 random{20261126};

  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(random); }
  bool coin() { return pick(2) == 0; }

  std::string text() {
    static const std::vector<std::string> kSamples = {
        "", "a", "acme", "truck-0042", "Cel", "%RH", "a&b=c%d+e f", "\"quoted\\\n", "Ω", "温度", "🚚 fleet",
        "urn:dev:mac:0024befffe804ff1", "caf\xc3\xa9"};
    switch (pick(8)) {
      case 0: return std::string(100 + pick(300), static_cast<char>('a' + pick(26)));
      case 1: return pick(20) == 0 ? std::string(17000 + pick(1000), 'x') : std::string(pick(40), '.');
      default: return kSamples[pick(kSamples.size())];
    }
  }
  double number() {
    switch (pick(10)) {
      case 0: return 0.0;
      case 1: return -0.0;
      case 2: return std::numeric_limits<double>::quiet_NaN();
      case 3: return coin() ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
      case 4: return std::numeric_limits<double>::denorm_min();
      default: return std::uniform_real_distribution<double>(-1e6, 1e6)(random);
    }
  }
  std::optional<double> maybe() {
    if (coin()) return std::nullopt;
    return pick(4) == 0 ? 0.0 : number();
  }
  std::int64_t time() {
    switch (pick(5)) {
      case 0: return 0;
      case 1: return -static_cast<std::int64_t>(pick(1'000'000'000));
      case 2: return std::numeric_limits<std::int64_t>::max();
      default: return 1'795'514'400'000 + static_cast<std::int64_t>(pick(1'000'000));
    }
  }
  codecs::CanonicalRecord record() {
    codecs::CanonicalRecord record;
    record.device_id = text();
    record.type = coin() ? codecs::MessageType::location : codecs::MessageType::sensor;
    record.event_time_ms = time();
    record.msg_id = pick(3) == 0 ? std::string() : text();
    record.location = {number(), number(), maybe(), maybe(), maybe(), maybe(), maybe()};
    if (record.type == codecs::MessageType::sensor) {
      for (std::size_t i = pick(5); i > 0; --i) record.readings.push_back({text(), number(), text()});
      for (std::size_t i = pick(3); i > 0; --i) record.attributes.push_back({text(), text()});
    }
    return record;
  }
};

}  // namespace

TEST_CASE("the Protobuf writer knows every field of envelope.proto (add a field there, add it to the writer)") {
  CHECK(numbers(v1::Envelope::descriptor()) == numbers(kEnvelopeFieldNumbers));
  CHECK(numbers(v1::Location::descriptor()) == numbers(kLocationFieldNumbers));
  CHECK(numbers(v1::Sensor::descriptor()) == numbers(kSensorFieldNumbers));
  CHECK(numbers(v1::SensorReading::descriptor()) == numbers(kSensorReadingFieldNumbers));
  CHECK(numbers(v1::Attribute::descriptor()) == numbers(kAttributeFieldNumbers));
  // A new message type (nested in these or beside them) is new schema the writer has not seen.
  CHECK(v1::Envelope::descriptor()->file()->message_type_count() == 5);
  CHECK(v1::Envelope::descriptor()->oneof_decl_count() == 1);
}

TEST_CASE("sealed envelopes are byte for byte Envelope::SerializeToString, over random records and contexts") {
  Generator generate;
  const TopicTemplate topic = *TopicTemplate::compile("telemetry.{tenant}.{device_type}.{type}");
  EnvelopeBuilder builder(Format::protobuf, topic);
  SealedRecord sealed;  // reused, as the pipeline reuses its records
  std::vector<std::string> strings(4);
  EnvelopeContext context;
  int compared = 0;
  for (int i = 0; i < 20'000; ++i) {
    if (i % 50 == 0) {  // a new request: sometimes another tenant, device type or clock
      for (std::string& text : strings) text = generate.pick(3) == 0 ? generate.text() : text;
      context = EnvelopeContext{strings[0], strings[1], strings[2], strings[3],
                                static_cast<SourceProtocol>(1 + generate.pick(4)), generate.time()};
    }
    const codecs::CanonicalRecord record = generate.record();
    builder.seal(record, context, sealed);
    CAPTURE(i);
    REQUIRE(sealed.msg_id_generated == record.msg_id.empty());
    REQUIRE(sealed.value == reference_value(record, context, sealed));
    // Topic and header from the builder's per-context cache match the uncached functions.
    std::string expected;
    topic.expand(context.tenant, context.device_type, record.type, expected);
    REQUIRE(sealed.topic == expected);
    RouteFields fields;
    fields.tenant = context.tenant;
    fields.device_type = context.device_type;
    fields.message_type = record.type;
    fields.event_time_ms = record.event_time_ms;
    fields.msg_id = sealed.msg_id;
    encode_route_header(fields, expected);
    REQUIRE(sealed.route_header == expected);
    REQUIRE(sealed.key == record.device_id);
    ++compared;
  }
  CHECK(compared == 20'000);
}

TEST_CASE("a unit that is not UTF-8 is logged as libprotobuf's own serializer logs it, and written unchanged") {
  static int logged = 0;
  static std::string last;
  const auto previous = google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string& message) {
        ++logged;
        last = message;
      });
  // Built in one expression: GCC 12 at -O3 wrongly reports `msg_id = "m1"` as reading
  // uninitialised bytes when the strings are assigned after default construction.
  codecs::CanonicalRecord record{.device_id = "probe-1",
                                 .type = codecs::MessageType::sensor,
                                 .msg_id = "m1",
                                 .location = {},
                                 .readings = {{"temp", 21.5, "C\xff"}},
                                 .attributes = {}};
  const EnvelopeContext context{"acme", "probe", "gw-1", "application/senml+cbor", SourceProtocol::coap, 1};
  EnvelopeBuilder builder(Format::protobuf, *TopicTemplate::compile("t"));
  SealedRecord sealed;
  builder.seal(record, context, sealed);
  CHECK(logged == 1);
  CHECK(last.find("telegate.v1.SensorReading.unit") != std::string::npos);
  const std::string ours = last;
  CHECK(sealed.value == reference_value(record, context, sealed));  // logs once more, the same words
  CHECK(logged == 2);
  CHECK(last == ours);
  record.readings[0].unit = "°C";  // valid UTF-8, not ASCII: checked in full, nothing logged
  builder.seal(record, context, sealed);
  CHECK(logged == 2);
  google::protobuf::SetLogHandler(previous);
}
