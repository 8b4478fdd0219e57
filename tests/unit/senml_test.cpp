// SenML JSON against RFC 8428's own examples (§5.1) and its resolution rules (§4.6).
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <iterator>

#include "senml/senml_codec.hpp"

using namespace telegate::codecs;

namespace {

struct Decoded {
  std::expected<void, CodecError> result;
  DecodedBatch batch;
};

Decoded decode(const std::string& body) {
  SenmlJsonCodec codec(DecodeLimits{});
  Decoded out;
  out.result = codec.decode(body, DecodeContext{"acme", "probe-7", "coap", "application/senml+json"}, out.batch);
  return out;
}

std::string sample(const std::string& name) {
  std::ifstream file(std::string(TELEGATE_SOURCE_DIR) + "/codecs/senml/samples/" + name);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

}  // namespace

TEST_CASE("RFC 8428 §5.1.2: base name prefixes names; same-time readings share one record") {
  auto decoded = decode(sample("rfc8428-multiple-datapoints.valid.senml+json"));
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 1);
  const CanonicalRecord& record = decoded.batch.records()[0];
  CHECK(record.device_id == "probe-7");  // from the credentials, never from bn
  CHECK(record.type == MessageType::sensor);
  REQUIRE(record.readings.size() == 2);
  CHECK(record.readings[0].name == "urn:dev:ow:10e2073a01080063:voltage");
  CHECK(record.readings[0].unit == "V");
  CHECK(record.readings[0].value == 120.1);
  CHECK(record.readings[1].name == "urn:dev:ow:10e2073a01080063:current");
  CHECK(record.readings[1].unit == "A");
  // No time at all: "now" (relative time 0).
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  CHECK(std::abs(record.event_time_ms - now_ms) < 5000);
}

TEST_CASE("RFC 8428 §5.1.3: base time plus relative offsets, base unit as the default unit") {
  auto decoded = decode(sample("rfc8428-multiple-measurements.valid.senml+json"));
  REQUIRE(decoded.result.has_value());
  const auto records = decoded.batch.records();
  // Only consecutive same-time readings share a record: the last current is at bt again but
  // follows five earlier readings, so it gets a record of its own.
  REQUIRE(records.size() == 7);
  CHECK(records[0].event_time_ms == 1276020076001);
  REQUIRE(records[0].readings.size() == 1);
  CHECK(records[0].readings[0].name == "urn:dev:ow:10e2073a0108006:voltage");
  CHECK(records[0].readings[0].unit == "V");
  CHECK(records[1].event_time_ms == 1276020071001);  // bt - 5 s
  CHECK(records[1].readings[0].unit == "A");          // bu
  CHECK(records[1].readings[0].value == 1.2);
  CHECK(records[1].index == 1);
  CHECK(records[5].event_time_ms == 1276020075001);  // bt - 1 s
  CHECK(records[6].event_time_ms == 1276020076001);
  CHECK(records[6].readings[0].value == 1.7);
}

TEST_CASE("base value and base sum add; vb maps to 1 or 0; unknown extension fields are ignored") {
  auto decoded = decode(sample("base-value-sum-boolean.valid.senml+json"));
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.errors().empty());
  REQUIRE(decoded.batch.records().size() == 1);
  const auto& readings = decoded.batch.records()[0].readings;
  REQUIRE(readings.size() == 4);
  CHECK(readings[0].name == "room-1/temp");
  CHECK(readings[0].value == 21.5);    // bv 20 + v 1.5
  CHECK(readings[1].value == 1012.5);  // bs 1000 + s 12.5
  CHECK(readings[2].value == 1.0);     // vb true
  CHECK(readings[3].name == "room-1/extension");
}

TEST_CASE("record problems are named by SenML record index and field") {
  auto decoded = decode(sample("record-problems.invalid.senml+json"));
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.records().empty());
  const auto errors = decoded.batch.errors();
  REQUIRE(errors.size() == 6);
  CHECK(errors[0].field == "vs");
  CHECK(errors[1].field == "v");
  CHECK(errors[2].field == "n");
  CHECK(errors[2].reason.find("bad name!") != std::string::npos);
  CHECK(errors[3].field == "v");
  CHECK(errors[4].field == "must_");
  CHECK(errors[5].index == 5);
}

TEST_CASE("absolute times at and above 2**28 seconds; below that, relative to now") {
  auto absolute = decode(R"([{"n":"a","v":1,"t":268435456}])");
  REQUIRE(absolute.batch.records().size() == 1);
  CHECK(absolute.batch.records()[0].event_time_ms == 268435456000);
  auto relative = decode(R"([{"n":"a","v":1,"t":-60}])");
  REQUIRE(relative.batch.records().size() == 1);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  CHECK(std::abs(relative.batch.records()[0].event_time_ms - (now_ms - 60'000)) < 5000);
}

TEST_CASE("a pack must be an array; a broken one is malformed") {
  auto object = decode(R"({"n":"a","v":1})");
  REQUIRE_FALSE(object.result.has_value());
  CHECK(object.result.error().code == CodecErrc::malformed_body);
  auto truncated = decode(R"([{"n":"a","v":1},{"n":)");
  REQUIRE_FALSE(truncated.result.has_value());
  CHECK(truncated.result.error().code == CodecErrc::malformed_body);
}
