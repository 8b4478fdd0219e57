// Each built-in device format through its own route, sent the way its app sends it (curl
// stands in for the apps: same method, auth scheme, content type and body), defined in the
// config file as an operator doing GitOps would — read back from Kafka with read_committed.
#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "gateway_process.hpp"
#include "kafka_reader.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using telegate::testing::curl;
using telegate::testing::GatewayProcess;
using telegate::testing::HttpResult;
using telegate::testing::TempDir;

namespace {

std::string read_source_file(const std::string& relative) {
  std::ifstream file(std::filesystem::path(TELEGATE_SOURCE_DIR) / relative, std::ios::binary);
  REQUIRE_MESSAGE(file.good(), relative);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// A YAML document nested under a key at `spaces` indentation.
std::string indented(const std::string& yaml, int spaces) {
  std::string out, line;
  std::istringstream in(yaml);
  while (std::getline(in, line)) out += std::string(static_cast<std::size_t>(spaces), ' ') + line + "\n";
  return out;
}

std::string device(const std::string& id, const std::string& type) {
  return "      - {id: " + id + ", device_type: " + type + ", token_sha256: " + gateway::sha256_hex(id + "-token") + "}\n";
}

std::string config_for(const std::string& run) {
  // Old sample timestamps (the formats' own documentation examples) are allowed by a per-type
  // validation override, which is itself part of what this test covers.
  const std::string old_samples_ok = "    validation: {max_age_s: 3153600000}\n";
  return "instance_id: apps-" + run + "\n" +
         testing::kafka_sink_yaml("it." + run + ".apps.{device_type}", 50) +
         "catalog: {store: file}\n"
         "device_types:\n"
         "  - name: owntracks-phone\n"
         "    codec: owntracks\n"
         "    envelope_format: cloudevents\n"
         "    http: {path: /owntracks, auth: basic}\n" +
         old_samples_ok +
         "  - name: overland-phone\n"
         "    codec: overland\n"
         "    http: {path: /overland, auth: bearer}\n" +
         old_samples_ok +
         "  - name: gpslogger-phone\n"
         "    codec: mapping\n"
         "    http: {path: /gpslogger, auth: path_token}\n"
         "    codec_options:\n" +
         indented(read_source_file("codecs/mapping/templates/gpslogger.yaml"), 6) +
         "  - name: compact-tracker\n"
         "    codec: protobuf\n" +
         old_samples_ok +
         "  - name: acme-proto\n"
         "    codec: protobuf_dynamic\n"
         "    codec_options:\n" +
         indented(read_source_file("codecs/protobuf_dynamic/test-options.yaml"), 6) + old_samples_ok +
         "  - name: senml-sensor\n"
         "    codec: senml_cbor\n"
         "    message_types: [sensor]\n" +
         old_samples_ok +
         "tenants:\n"
         "  - name: fleet\n"
         "    devices:\n" +
         device("ot-1", "owntracks-phone") + device("ov-1", "overland-phone") + device("gl-1", "gpslogger-phone") +
         device("pb-1", "compact-tracker") + device("ap-1", "acme-proto") + device("sc-1", "senml-sensor");
}

HttpResult post_file(const GatewayProcess& gateway, const std::string& token, const std::string& content_type,
                     const std::string& sample) {
  return curl({"-X", "POST", "-H", "Authorization: Bearer " + token, "-H", "Content-Type: " + content_type,
               "--data-binary", "@" + (std::filesystem::path(TELEGATE_SOURCE_DIR) / sample).string(),
               gateway.url("/v1/telemetry")});
}

std::size_t accepted_count(const HttpResult& result) {
  const std::size_t at = result.body.find("\"accepted\":");
  return at == std::string::npos ? 0 : std::stoul(result.body.substr(at + 11));
}

std::vector<testing::KafkaMessage> topic(const std::string& run, const std::string& type, std::size_t expected) {
  return testing::read_committed(testing::kafka_bootstrap(), "it." + run + ".apps." + type, expected + 1,
                                 std::chrono::seconds(3));
}

}  // namespace

TEST_CASE("every built-in device app works through its own route and reply") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run));
  gateway.start();
  gateway.wait_ready();

  // OwnTracks HTTP mode: Basic auth, one JSON message per POST, and the app wants a JSON array.
  const std::string owntracks = R"({"_type":"location","lat":51.5073,"lon":-0.1277,"tst":)" + std::to_string((testing::unix_ms() / 1000)) +
                                R"(,"vel":36,"acc":13,"batt":40,"tid":"JJ"})";
  HttpResult ot = curl({"-X", "POST", "-u", "jane:ot-1-token", "-H", "Content-Type: application/json", "--data-binary",
                        owntracks, gateway.url("/owntracks")});
  CHECK(ot.status == 200);
  CHECK(ot.body == "[]");
  HttpResult lwt = curl({"-X", "POST", "-u", "jane:ot-1-token", "-H", "Content-Type: application/json", "--data-binary",
                         R"({"_type":"lwt","tst":1714564800})", gateway.url("/owntracks")});
  CHECK(lwt.status == 200);  // routine message: accepted, nothing written
  CHECK(lwt.body == "[]");
  CHECK(curl({"-X", "POST", "-u", "jane:wrong", "-H", "Content-Type: application/json", "--data-binary", owntracks,
              gateway.url("/owntracks")})
            .status == 401);

  // Overland: a GeoJSON batch with a bearer token; the app resends unless it reads {"result":"ok"}.
  HttpResult ov = curl({"-X", "POST", "-H", "Authorization: Bearer ov-1-token", "-H", "Content-Type: application/json",
                        "--data-binary", "@" + std::string(TELEGATE_SOURCE_DIR) + "/codecs/overland/samples/readme-batch.valid.json",
                        gateway.url("/overland")});
  CHECK(ov.status == 200);
  CHECK(ov.body == R"({"result":"ok"})");

  // GPSLogger "log to custom URL": a GET whose query string the user built from placeholders.
  const HttpResult gl = curl({gateway.url("/gpslogger/gl-1-token?lat=45.5&lon=-73.6&time=" + std::string("2026-11-26T07:00:00.000Z") +
                                          "&s=12.5&alt=40&acc=8&dir=180&batt=77")});
  CHECK_MESSAGE(gl.status == 200, gl.body);
  CHECK(curl({gateway.url("/gpslogger/ov-1-token?lat=1&lon=1&time=2026-11-26T07:00:00Z")}).status == 403);  // wrong type's device

  // Binary formats on the common route, content type chosen by the device.
  const HttpResult pb = post_file(gateway, "pb-1-token", "application/x-protobuf", "codecs/protobuf/samples/mixed-batch.valid.protobuf");
  CHECK_MESSAGE(pb.status == 200, pb.body);
  const HttpResult ap = post_file(gateway, "ap-1-token", "application/x-protobuf", "codecs/protobuf_dynamic/samples/points.valid.protobuf");
  CHECK_MESSAGE(ap.status == 200, ap.body);
  const HttpResult sc = post_file(gateway, "sc-1-token", "application/senml+cbor", "codecs/senml_cbor/samples/rfc8428-section6.valid.senml+cbor");
  CHECK_MESSAGE(sc.status == 200, sc.body);
  CHECK(post_file(gateway, "sc-1-token", "application/json", "codecs/senml_cbor/samples/rfc8428-section6.valid.senml+cbor").status == 415);

  gateway.signal(SIGTERM);
  CHECK(gateway.wait() == 0);

  const auto ot_records = topic(run, "owntracks-phone", 1);
  REQUIRE(ot_records.size() == 1);
  std::map<std::string, std::string> headers(ot_records[0].headers.begin(), ot_records[0].headers.end());
  CHECK(headers["ce_specversion"] == "1.0");
  CHECK(headers["ce_subject"] == "ot-1");
  CHECK(headers["ce_type"] == "io.telegate.location.v1");
  CHECK(headers.contains("tg-route"));
  const auto ot_envelope = envelope::decode_envelope(ot_records[0].value, envelope::Format::cloudevents);
  REQUIRE(ot_envelope.has_value());
  CHECK(*ot_envelope->record.location.speed == doctest::Approx(10.0));  // 36 km/h

  CHECK(topic(run, "overland-phone", 1).size() == 1);
  const auto gl_records = topic(run, "gpslogger-phone", 1);
  REQUIRE(gl_records.size() == 1);
  const auto gl_envelope = envelope::decode_envelope(gl_records[0].value, envelope::Format::protobuf);
  REQUIRE(gl_envelope.has_value());
  CHECK(gl_envelope->record.location.lat == doctest::Approx(45.5));
  CHECK(*gl_envelope->record.location.heading == doctest::Approx(180));
  CHECK(gl_envelope->record.device_id == "gl-1");
  CHECK(topic(run, "compact-tracker", accepted_count(pb)).size() == accepted_count(pb));
  CHECK(topic(run, "acme-proto", accepted_count(ap)).size() == accepted_count(ap));
  const auto sensor = topic(run, "senml-sensor", accepted_count(sc));
  CHECK(sensor.size() == accepted_count(sc));
  CHECK(accepted_count(sc) > 0);
}
