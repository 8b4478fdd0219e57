// The protobuf_dynamic codec: messages built with the dynamic API from the test descriptor set
// (codecs/protobuf_dynamic/testdata/acme.proto), decoded through field paths.
#include <doctest/doctest.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>

#include <fstream>
#include <iterator>
#include <string>

#include "protobuf_dynamic/protobuf_dynamic_codec.hpp"
#include "telegate/codecs/codec.hpp"

using namespace telegate::codecs;
namespace pb = google::protobuf;

namespace {

const std::string kTestData = std::string(TELEGATE_SOURCE_DIR) + "/codecs/protobuf_dynamic/testdata/";

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  REQUIRE(file.good());
  return std::string(std::istreambuf_iterator<char>(file), {});
}

std::string base64(const std::string& bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned n = static_cast<unsigned char>(bytes[i]) << 16 | static_cast<unsigned char>(bytes[i + 1]) << 8 |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (const int shift : {18, 12, 6, 0}) out.push_back(kAlphabet[(n >> shift) & 63]);
  }
  if (i + 1 == bytes.size()) {
    const unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const unsigned n = static_cast<unsigned char>(bytes[i]) << 16 | static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63], '='};
  }
  return out;
}

// The device's side: the schema from the same descriptor set, messages built by reflection.
struct Device {
  Device() {
    pb::FileDescriptorSet set;
    REQUIRE(set.ParseFromString(read_file(kTestData + "acme.pb")));
    for (const auto& file : set.file()) REQUIRE(pool.BuildFile(file) != nullptr);
  }
  std::unique_ptr<pb::Message> make(const std::string& type) {
    const pb::Descriptor* descriptor = pool.FindMessageTypeByName(type);
    REQUIRE(descriptor != nullptr);
    return std::unique_ptr<pb::Message>(factory.GetPrototype(descriptor)->New());
  }
  // A Point inside `report` (acme.v1.Report or acme.v1.Meta), at `lat_e7`, `lon_e7`, `ts`.
  static pb::Message* add_point(pb::Message& parent, const std::string& field, int lat_e7, int lon_e7,
                                std::uint64_t ts) {
    const pb::Reflection* reflection = parent.GetReflection();
    pb::Message* point = reflection->AddMessage(&parent, parent.GetDescriptor()->FindFieldByName(field));
    pb::Message* pos = point->GetReflection()->MutableMessage(point, point->GetDescriptor()->FindFieldByName("pos"));
    pos->GetReflection()->SetInt32(pos, pos->GetDescriptor()->FindFieldByName("lat_e7"), lat_e7);
    pos->GetReflection()->SetInt32(pos, pos->GetDescriptor()->FindFieldByName("lon_e7"), lon_e7);
    point->GetReflection()->SetUInt64(point, point->GetDescriptor()->FindFieldByName("ts"), ts);
    return point;
  }
  static const pb::FieldDescriptor* field(const pb::Message& message, const std::string& name) {
    return message.GetDescriptor()->FindFieldByName(name);
  }

  pb::DescriptorPool pool;
  pb::DynamicMessageFactory factory;
};

std::unique_ptr<Codec> compile(const std::string& yaml, const DecodeLimits& limits = {}) {
  CodecRegistry registry;
  register_builtin_codecs(registry);
  OptionReader options(YAML::Load(yaml), "codec_options");
  return registry.compile("protobuf_dynamic", options, limits)->instantiate();
}

std::string compile_error(const std::string& yaml) {
  try {
    compile(yaml);
  } catch (const OptionError& error) {
    return error.what();
  }
  return "compiled";
}

// Options that read acme.pb from its file, with `rest` appended.
std::string options(const std::string& rest) {
  return "descriptor_set_file: " + kTestData + "acme.pb\n" + rest;
}

const std::string kReport = R"(
message: acme.v1.Report
records: points
fields:
  lat: {path: pos.lat_e7, scale: 1e-7}
  lon: {path: pos.lon_e7, scale: 1e-7}
  alt: {path: pos.alt}
  time: {path: ts, unit: s}
  speed: {path: spd, unit: kmh}
  heading: {path: hdg, min: 0, max: 360}
  battery: {path: bat}
  msg_id: {path: id}
)";

struct Decoded {
  std::expected<void, CodecError> result;
  DecodedBatch batch;
};

Decoded decode(Codec& codec, const std::string& body, const std::string& content_type = "application/x-protobuf") {
  Decoded out;
  out.result = codec.decode(body, DecodeContext{"acme", "tracker-9", "http", content_type}, out.batch);
  return out;
}

}  // namespace

TEST_CASE("protobuf_dynamic: repeated records, nested paths, scaled integers, units, presence") {
  Device device;
  auto report = device.make("acme.v1.Report");
  pb::Message* first = Device::add_point(*report, "points", 460569460, 145057510, 1795514400);
  const pb::Reflection* point = first->GetReflection();
  point->SetFloat(first, Device::field(*first, "spd"), 36.0f);
  point->SetInt32(first, Device::field(*first, "hdg"), 87);
  point->SetUInt32(first, Device::field(*first, "bat"), 81);
  point->SetString(first, Device::field(*first, "id"), "p-1");
  pb::Message* pos = point->MutableMessage(first, Device::field(*first, "pos"));
  pos->GetReflection()->SetFloat(pos, Device::field(*pos, "alt"), 295.4f);
  Device::add_point(*report, "points", 0, -1, 1795514410);  // zero is a value, not absence

  auto codec = compile(options(kReport));
  auto decoded = decode(*codec, report->SerializeAsString());
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.errors().empty());
  REQUIRE(decoded.batch.records().size() == 2);
  const CanonicalRecord& one = decoded.batch.records()[0];
  CHECK(one.device_id == "tracker-9");
  CHECK(one.location.lat == doctest::Approx(46.056946));
  CHECK(one.location.lon == doctest::Approx(14.505751));
  CHECK(*one.location.alt == 295.4);  // the float as written, not 295.399994
  CHECK(one.event_time_ms == 1795514400000);
  CHECK(*one.location.speed == doctest::Approx(10.0));
  CHECK(*one.location.heading == 87);
  CHECK(*one.location.battery == 81);
  CHECK(one.msg_id == "p-1");
  const CanonicalRecord& two = decoded.batch.records()[1];
  CHECK(two.index == 1);
  CHECK(two.location.lat == 0);
  CHECK(two.location.lon == doctest::Approx(-1e-7));
  CHECK_FALSE(two.location.alt.has_value());  // proto3 optional, unset
  CHECK_FALSE(two.location.speed.has_value());
  CHECK(two.msg_id.empty());  // proto3 string without presence, empty: unset
}

TEST_CASE("protobuf_dynamic: bad records are named by index and field; the rest survive") {
  Device device;
  auto report = device.make("acme.v1.Report");
  Device::add_point(*report, "points", 1, 2, 1795514400);
  pb::Message* no_pos = report->GetReflection()->AddMessage(report.get(), Device::field(*report, "points"));
  no_pos->GetReflection()->SetUInt64(no_pos, Device::field(*no_pos, "ts"), 1795514400);
  pb::Message* wild = Device::add_point(*report, "points", 1, 2, 1795514400);
  wild->GetReflection()->SetInt32(wild, Device::field(*wild, "hdg"), 400);

  auto decoded = decode(*compile(options(kReport)), report->SerializeAsString());
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 1);
  REQUIRE(decoded.batch.errors().size() == 2);
  CHECK(decoded.batch.errors()[0].index == 1);
  CHECK(decoded.batch.errors()[0].field == "lat");
  CHECK(decoded.batch.errors()[0].reason == "is required but absent (at pos.lat_e7)");
  CHECK(decoded.batch.errors()[1].index == 2);
  CHECK(decoded.batch.errors()[1].field == "heading");
  CHECK(decoded.batch.errors()[1].reason == "must be within [0, 360], got 400 (at hdg)");
}

TEST_CASE("protobuf_dynamic: the message as one sensor record; bools, enums and Timestamp paths") {
  Device device;
  auto climate = device.make("acme.v1.Climate");
  const pb::Reflection* reflection = climate->GetReflection();
  reflection->SetUInt64(climate.get(), Device::field(*climate, "ts_ms"), 1795514400250);
  reflection->SetInt32(climate.get(), Device::field(*climate, "temp_dc"), 215);
  reflection->SetBool(climate.get(), Device::field(*climate, "door"), true);

  auto codec = compile(options(R"(
message: acme.v1.Climate
message_type: sensor
fields: {time: {path: ts_ms, unit: ms}}
readings:
  temperature: {path: temp_dc, scale: 0.1, unit_label: Cel}
  humidity: {path: humidity, unit_label: '%RH'}
  door_open: {path: door}
)"));
  auto decoded = decode(*codec, climate->SerializeAsString(), "application/protobuf");
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 1);
  const CanonicalRecord& record = decoded.batch.records()[0];
  CHECK(record.type == MessageType::sensor);
  CHECK(record.event_time_ms == 1795514400250);
  REQUIRE(record.readings.size() == 2);  // humidity is unset
  CHECK(record.readings[0].name == "temperature");
  CHECK(record.readings[0].value == doctest::Approx(21.5));
  CHECK(record.readings[0].unit == "Cel");
  CHECK(record.readings[1].name == "door_open");
  CHECK(record.readings[1].value == 1);

  // google.protobuf.Timestamp through a nested path, an enum as a reading, records nested in a
  // singular message.
  auto report = device.make("acme.v1.Report");
  pb::Message* meta = report->GetReflection()->MutableMessage(report.get(), Device::field(*report, "meta"));
  pb::Message* point = Device::add_point(*meta, "history", 1, 2, 0);
  point->GetReflection()->SetEnumValue(point, Device::field(*point, "mode"), 2);
  pb::Message* stamp = point->GetReflection()->MutableMessage(point, Device::field(*point, "fix_time"));
  stamp->GetReflection()->SetInt64(stamp, Device::field(*stamp, "seconds"), 1795514400);
  auto history = compile(options(R"(
message: acme.v1.Report
records: meta.history
message_type: sensor
fields: {time: {path: fix_time.seconds, unit: s}, msg_id: {path: id, default: none}}
readings: {mode: {path: mode}}
)"));
  auto from_history = decode(*history, report->SerializeAsString());
  REQUIRE(from_history.batch.records().size() == 1);
  CHECK(from_history.batch.records()[0].event_time_ms == 1795514400000);
  CHECK(from_history.batch.records()[0].readings[0].value == 2);
  CHECK(from_history.batch.records()[0].msg_id == "none");
  // No meta at all: no records, accepted.
  auto empty = device.make("acme.v1.Report");
  Device::add_point(*empty, "points", 1, 2, 3);
  auto none = decode(*history, empty->SerializeAsString());
  REQUIRE(none.result.has_value());
  CHECK(none.batch.total() == 0);
}

TEST_CASE("protobuf_dynamic: RFC 3339 text times; the inline base64 descriptor set of test-options.yaml") {
  Device device;
  auto report = device.make("acme.v1.Report");
  pb::Message* point = Device::add_point(*report, "points", 1, 2, 0);
  point->GetReflection()->SetString(point, Device::field(*point, "ts_text"), "2026-11-24T11:00:00+01:00");
  auto codec = compile(options(R"(
message: acme.v1.Report
records: points
fields: {lat: {path: pos.lat_e7}, lon: {path: pos.lon_e7}, time: {path: ts_text, unit: rfc3339}}
)"));
  auto decoded = decode(*codec, report->SerializeAsString());
  REQUIRE(decoded.batch.records().size() == 1);
  CHECK(decoded.batch.records()[0].event_time_ms == 1795514400000);

  // test-options.yaml carries acme.pb in base64; it must compile to the same schema.
  CodecRegistry registry;
  register_builtin_codecs(registry);
  OptionReader inline_options(YAML::LoadFile(kTestData + "../test-options.yaml"), "codec_options");
  auto from_yaml = registry.compile("protobuf_dynamic", inline_options, DecodeLimits{})->instantiate();
  const std::string sample = read_file(kTestData + "../samples/points.valid.protobuf");
  auto sampled = decode(*from_yaml, sample);
  REQUIRE(sampled.result.has_value());
  REQUIRE(sampled.batch.records().size() == 2);
  CHECK(sampled.batch.records()[0].msg_id == "p-1");
}

TEST_CASE("protobuf_dynamic: bodies that are not the message, empty, foreign or too many records") {
  auto codec = compile(options(kReport));
  auto garbage = decode(*codec, std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11));
  REQUIRE_FALSE(garbage.result.has_value());
  CHECK(garbage.result.error().code == CodecErrc::malformed_body);
  CHECK(garbage.result.error().message == "not a serialized acme.v1.Report: protobuf parsing failed");
  CHECK(decode(*codec, "").result.error().code == CodecErrc::empty_body);
  CHECK(decode(*codec, "x", "application/json").result.error().code == CodecErrc::unsupported_content_type);

  Device device;
  auto report = device.make("acme.v1.Report");
  for (int i = 0; i < 3; ++i) Device::add_point(*report, "points", 1, 2, 1795514400);
  DecodeLimits limits;
  limits.max_records = 2;
  auto few = compile(options(kReport), limits);
  CHECK(decode(*few, report->SerializeAsString()).result.error().code == CodecErrc::too_many_records);
}

TEST_CASE("protobuf_dynamic: compile errors name the key") {
  const std::string fields = "fields: {lat: {path: pos.lat_e7}, lon: {path: pos.lon_e7}, time: {path: ts}}\n";
  const std::string points = "message: acme.v1.Report\nrecords: points\n";
  CHECK(compile_error(options(points + fields)) == "compiled");
  CHECK(compile_error("message: acme.v1.Report\n" + fields) ==
        "codec_options.descriptor_set: is required: base64 of a FileDescriptorSet (protoc "
        "--descriptor_set_out=x.pb --include_imports x.proto), or give descriptor_set_file");
  CHECK(compile_error("descriptor_set: 'not base64!'\n" + points + fields) ==
        "codec_options.descriptor_set: must be base64 (of the file protoc --descriptor_set_out=x.pb "
        "--include_imports x.proto writes)");
  CHECK(compile_error("descriptor_set: " + base64("\x0a\x05hello") + "\n" + points + fields).starts_with(
      "codec_options.descriptor_set: is not a FileDescriptorSet"));
  CHECK(compile_error("descriptor_set_file: /nonexistent/x.pb\n" + points + fields) ==
        "codec_options.descriptor_set_file: cannot read '/nonexistent/x.pb'");
  CHECK(compile_error(options("descriptor_set: AAAA\n" + points + fields)) ==
        "codec_options.descriptor_set_file: give descriptor_set or descriptor_set_file, not both");

  // A set built without --include_imports lacks google/protobuf/timestamp.proto.
  pb::FileDescriptorSet set;
  REQUIRE(set.ParseFromString(read_file(kTestData + "acme.pb")));
  set.mutable_file()->DeleteSubrange(0, 1);
  CHECK(compile_error("descriptor_set: " + base64(set.SerializeAsString()) + "\n" + points + fields) ==
        "codec_options.descriptor_set: acme.proto imports google/protobuf/timestamp.proto, which the set does not "
        "hold (build it with protoc --descriptor_set_out=x.pb --include_imports x.proto)");

  CHECK(compile_error(options("message: acme.v1.Rapport\n" + fields)) ==
        "codec_options.message: the descriptor set has no message 'acme.v1.Rapport' (messages: "
        "google.protobuf.Timestamp, acme.v1.Position, acme.v1.Point, acme.v1.Report, acme.v1.Meta, acme.v1.Climate)");
  CHECK(compile_error(options(fields)) ==
        "codec_options.message: is required: the full name of the message the device sends, such as acme.v1.Report");
  CHECK(compile_error(options("message: acme.v1.Report\nrecords: device\n" + fields)) ==
        "codec_options.records: acme.v1.Report.device is string, not a repeated message field holding the records");
  CHECK(compile_error(options("message: acme.v1.Report\nrecords: point\n" + fields)) ==
        "codec_options.records: acme.v1.Report has no field 'point' (fields: points, device, imei, meta)");
  CHECK(compile_error(options(points + "fields: {lat: {path: pos.latitude}, lon: {path: pos.lon_e7}, time: {path: "
                                       "ts}}")) ==
        "codec_options.fields.lat.path: acme.v1.Position has no field 'latitude' (fields: lat_e7, lon_e7, alt)");
  CHECK(compile_error(options(points + "fields: {lat: {path: ts.x}, lon: {path: pos.lon_e7}, time: {path: ts}}")) ==
        "codec_options.fields.lat.path: acme.v1.Point.ts is uint64, not a message that holds 'x'");
  CHECK(compile_error(options(points + "fields: {lat: {path: raw}, lon: {path: pos.lon_e7}, time: {path: ts}}")) ==
        "codec_options.fields.lat.path: acme.v1.Point.raw is bytes, but lat needs a number or a numeric string");
  CHECK(compile_error(options(points + "fields: {lat: {path: pos}, lon: {path: pos.lon_e7}, time: {path: ts}}")) ==
        "codec_options.fields.lat.path: acme.v1.Point.pos is message, but lat needs a number or a numeric string");
  CHECK(compile_error(options(points + "fields: {lat: {path: samples}, lon: {path: pos.lon_e7}, time: {path: "
                                       "ts}}")) ==
        "codec_options.fields.lat.path: acme.v1.Point.samples is repeated: map a single value");
  CHECK(compile_error(options(points + "fields: {lat: {path: pos.lat_e7}, lon: {path: pos.lon_e7}, time: {path: "
                                       "ts, unit: rfc3339}}")) ==
        "codec_options.fields.time.path: acme.v1.Point.ts is uint64, but time needs a string (unit rfc3339)");
  CHECK(compile_error(options(points + "fields: {lat: {path: pos..lat_e7}, lon: {path: pos.lon_e7}, time: {path: "
                                       "ts}}")) ==
        "codec_options.fields.lat.path: must be field names separated by dots, such as pos.lat, got 'pos..lat_e7'");
  CHECK(compile_error(options(points + "fields: {lat: {pointer: /lat}, lon: {path: pos.lon_e7}, time: {path: "
                                       "ts}}")) ==
        "codec_options.fields.lat.path: is required (or give a constant)");
  CHECK(compile_error(options(points + fields + "schema: x\n")) == "codec_options.schema: unknown key");
}

TEST_CASE("base64: standard and URL-safe alphabets, wrapped lines, padding") {
  using protobuf_dynamic::decode_base64;
  CHECK(decode_base64("aGVsbG8=") == "hello");
  CHECK(decode_base64("aGVs\n  bG8=") == "hello");
  CHECK(decode_base64("aGVsbG8") == "hello");
  CHECK(decode_base64("-_8=") == std::string("\xfb\xff", 2));
  CHECK(decode_base64("") == "");
  CHECK_FALSE(decode_base64("aGVsbG8=x"));
  CHECK_FALSE(decode_base64("a"));
  CHECK_FALSE(decode_base64("aGVsbG8==="));
  CHECK_FALSE(decode_base64("aGV*bG8="));
  CHECK(decode_base64(base64(std::string("\x00\x01\x02\xfe\xff", 5))) == std::string("\x00\x01\x02\xfe\xff", 5));
}
