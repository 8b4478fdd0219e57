// Teltonika: the framing (gateway/tracker/teltonika/) and the AVL codec (codecs/teltonika/)
// against the Teltonika wiki's worked examples ("Codec" page), every decoded value asserted, and
// against damaged frames: truncation at every byte, wrong CRC, unknown codec id, count mismatch,
// lengths beyond max_frame_bytes. And the tracker.<protocol> config section.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "telegate/gateway/config.hpp"
#include "teltonika_examples.hpp"
#include "teltonika/teltonika_codec.hpp"
#include "tracker/teltonika/teltonika_protocol.hpp"

using namespace telegate::codecs;
using namespace telegate::gateway::tracker;
using namespace telegate::testing::teltonika;

namespace {

std::vector<std::uint8_t> hex(std::string_view text) {
  const std::string raw = bytes(text);
  return {raw.begin(), raw.end()};
}

std::string as_text(const std::vector<std::uint8_t>& data) { return std::string(data.begin(), data.end()); }

// The AVL data of a TCP frame (what the CRC covers).
std::string avl_data(std::string_view frame_hex) {
  const auto frame = hex(frame_hex);
  return std::string(frame.begin() + 8, frame.end() - 4);
}

// A TCP frame around `data` with a correct CRC.
std::vector<std::uint8_t> frame_around(const std::string& data) {
  std::vector<std::uint8_t> out{0, 0, 0, 0};
  const auto length = static_cast<std::uint32_t>(data.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(length >> shift));
  out.insert(out.end(), data.begin(), data.end());
  const std::uint16_t crc = teltonika::crc16_ibm(std::span(out).subspan(8));
  out.insert(out.end(), {0, 0, static_cast<std::uint8_t>(crc >> 8), static_cast<std::uint8_t>(crc & 0xFF)});
  return out;
}

struct Decoded {
  std::expected<void, CodecError> result;
  DecodedBatch batch;
};

Decoded decode(std::string_view body, DecodeLimits limits = {}) {
  TeltonikaCodec codec(limits);
  Decoded out;
  out.result = codec.decode(body, DecodeContext{"fleet", "356307042441013", "tcp", kTeltonikaContentType}, out.batch);
  return out;
}

double reading(const CanonicalRecord& record, std::string_view name) {
  for (const SensorReading& r : record.readings) {
    if (r.name == name) return r.value;
  }
  FAIL("no reading " << name);
  return -1;
}

}  // namespace

TEST_CASE("teltonika codec: the wiki's Codec 8 example, value by value") {
  const auto decoded = decode(avl_data(kCodec8));
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.errors().empty());
  // No GPS fix (0 satellites, 0,0): the AVL record is one sensor record with its IO elements.
  REQUIRE(decoded.batch.records().size() == 1);
  const CanonicalRecord& record = decoded.batch.records()[0];
  CHECK(record.type == MessageType::sensor);
  CHECK(record.device_id == "356307042441013");
  CHECK(record.event_time_ms == 1'560'161'086'000);  // 2019-06-10 10:04:46 UTC
  CHECK(record.readings.size() == 7);
  CHECK(reading(record, "priority") == 1);
  CHECK(reading(record, "satellites") == 0);
  CHECK(reading(record, "io_21") == 3);
  CHECK(reading(record, "io_1") == 1);
  CHECK(reading(record, "io_66") == 24079);
  CHECK(reading(record, "io_241") == 24602);
  CHECK(reading(record, "io_78") == 0);
  CHECK(record.msg_id.starts_with("356307042441013-1560161086000-1-"));
  CHECK(record.msg_id.ends_with("-s"));
}

TEST_CASE("teltonika codec: the wiki's Codec 8 Extended example, value by value") {
  const auto decoded = decode(avl_data(kCodec8Extended));
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 1);
  const CanonicalRecord& record = decoded.batch.records()[0];
  CHECK(record.event_time_ms == 1'560'166'592'000);  // 2019-06-10 11:36:32 UTC
  CHECK(record.readings.size() == 7);
  CHECK(reading(record, "priority") == 1);
  CHECK(reading(record, "io_1") == 1);
  CHECK(reading(record, "io_17") == 0x1D);
  CHECK(reading(record, "io_16") == 0x015E2C88);
  CHECK(reading(record, "io_11") == 0x3544C87A);
  CHECK(reading(record, "io_14") == 0x1DD7E06A);
}

TEST_CASE("teltonika codec: two records, distinct msg_ids that a resend reproduces") {
  const auto first = decode(avl_data(kCodec8TwoRecords));
  REQUIRE(first.result.has_value());
  REQUIRE(first.batch.records().size() == 2);
  CHECK(first.batch.records()[0].event_time_ms == 0x16B40D57B48);
  CHECK(first.batch.records()[1].event_time_ms == 0x16B40D5C198);
  CHECK(first.batch.records()[0].msg_id != first.batch.records()[1].msg_id);
  const auto again = decode(avl_data(kCodec8TwoRecords));
  CHECK(again.batch.records()[1].msg_id == first.batch.records()[1].msg_id);
}

TEST_CASE("teltonika codec: a GPS fix is a location record beside the IO sensor record") {
  // lon -73.9857, lat 40.7484 (two's complement ×10⁻⁷), alt 25 m, angle 359, 7 satellites, 36 km/h.
  std::string record = as_text(hex("0000016B40D8EA3002"));
  const auto put = [&record](std::uint64_t value, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) record += static_cast<char>((value >> (8 * i)) & 0xFF);
  };
  put(static_cast<std::uint32_t>(-739'857'000), 4);
  put(407'484'000, 4);
  put(25, 2);
  put(359, 2);
  put(7, 1);
  put(36, 2);
  record += as_text(hex("0001" "01" "1504" "00" "00" "00"));  // event 0, 1 element: io_21 = 4
  const std::string body = std::string("\x08\x01", 2) + record + "\x01";
  const auto decoded = decode(body);
  REQUIRE(decoded.result.has_value());
  REQUIRE(decoded.batch.records().size() == 2);
  const CanonicalRecord& location = decoded.batch.records()[0];
  CHECK(location.type == MessageType::location);
  CHECK(location.location.lon == doctest::Approx(-73.9857));
  CHECK(location.location.lat == doctest::Approx(40.7484));
  CHECK(*location.location.alt == 25);
  CHECK(*location.location.heading == 359);
  CHECK(*location.location.speed == doctest::Approx(10.0));
  CHECK(location.msg_id.ends_with("-l"));
  const CanonicalRecord& sensor = decoded.batch.records()[1];
  CHECK(reading(sensor, "satellites") == 7);
  CHECK(reading(sensor, "priority") == 2);
  CHECK(reading(sensor, "io_21") == 4);
}

TEST_CASE("teltonika codec: 8E variable-length elements are hex attributes, or their length when too long") {
  std::string body = avl_data(kCodec8Extended);
  // Replace the NX count 0 by two elements: id 0x0100 of 3 bytes, id 0x0101 of 200 bytes.
  body.erase(body.size() - 3);
  body += as_text(hex("0002" "0100" "0003" "AABBCC" "0101" "00C8")) + std::string(200, '\x11') + "\x01";
  const auto decoded = decode(body);
  REQUIRE(decoded.result.has_value());
  const CanonicalRecord& record = decoded.batch.records()[0];
  REQUIRE(record.attributes.size() == 1);
  CHECK(record.attributes[0].name == "io_256");
  CHECK(record.attributes[0].value == "aabbcc");
  CHECK(reading(record, "io_257_len") == 200);  // 400 hex digits > decode.max_string_bytes (256)
}

TEST_CASE("teltonika codec: damaged AVL data is refused, never read past its end") {
  const std::string good = avl_data(kCodec8TwoRecords);
  for (std::size_t size = 0; size < good.size(); ++size) {
    CHECK_FALSE(decode(std::string_view(good).substr(0, size)).result.has_value());
  }
  std::string mismatch = good;
  mismatch.back() = '\x03';
  CHECK(decode(mismatch).result.error().message.find("record counts differ") != std::string::npos);
  std::string codec16 = good;
  codec16[0] = '\x10';
  CHECK(decode(codec16).result.error().message.find("codec id 0x10") != std::string::npos);
  CHECK(decode(good, DecodeLimits{.max_records = 1}).result.error().code == CodecErrc::too_many_records);
  // Too many IO elements for the reading limit: that record is rejected, the others stay.
  const auto limited = decode(avl_data(kCodec8), DecodeLimits{.max_records = 10, .max_readings = 4});
  REQUIRE(limited.result.has_value());
  CHECK(limited.batch.errors().size() == 1);
}

TEST_CASE("teltonika framing: the IMEI handshake, byte by byte") {
  teltonika::Teltonika stream(teltonika::Transport::stream, 64 << 10);
  const auto login = hex(kHandshake);
  for (std::size_t size = 0; size < login.size(); ++size) {
    const auto partial = stream.next_frame(std::span(login).first(size));
    REQUIRE(partial.has_value());
    CHECK(partial->kind == Frame::Kind::need_more);
  }
  const auto frame = stream.next_frame(login);
  REQUIRE(frame.has_value());
  CHECK(frame->kind == Frame::Kind::login);
  CHECK(frame->imei == "356307042441013");
  CHECK(frame->consumed == 17);
  CHECK(stream.login_reply(*frame, true) == std::string("\x01", 1));
  CHECK(stream.login_reply(*frame, false) == std::string("\x00", 1));
  CHECK_FALSE(stream.next_frame(hex("000E3335363330373034323434313031")).has_value());
  CHECK_FALSE(stream.next_frame(hex("000F333536333037303432343431303A33")).has_value());
}

TEST_CASE("teltonika framing: the wiki's AVL packet, its CRC and its ack") {
  teltonika::Teltonika stream(teltonika::Transport::stream, 64 << 10);
  const auto bytes = hex(kCodec8);
  CHECK(teltonika::crc16_ibm(std::span(bytes).subspan(8, bytes.size() - 12)) == 0xC7CF);
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    const auto partial = stream.next_frame(std::span(bytes).first(size));
    REQUIRE(partial.has_value());
    CHECK(partial->kind == Frame::Kind::need_more);
  }
  auto stream_bytes = bytes;
  stream_bytes.insert(stream_bytes.end(), {0, 0});  // the start of the next frame
  const auto frame = stream.next_frame(stream_bytes);
  REQUIRE(frame.has_value());
  CHECK(frame->kind == Frame::Kind::records);
  CHECK(frame->consumed == bytes.size());
  CHECK(frame->record_count == 1);
  CHECK(frame->payload == avl_data(kCodec8));
  CHECK(stream.records_reply(*frame, 1) == std::string("\x00\x00\x00\x01", 4));
  const auto extended = hex(kCodec8Extended);
  CHECK(teltonika::crc16_ibm(std::span(extended).subspan(8, extended.size() - 12)) == 0x2994);
}

TEST_CASE("teltonika framing: wrong CRC, unknown codec, count mismatch, oversized length") {
  teltonika::Teltonika stream(teltonika::Transport::stream, 64 << 10);
  auto bad_crc = hex(kCodec8);
  bad_crc.back() ^= 0x01;
  CHECK(stream.next_frame(bad_crc).error().code == TrackerErrc::bad_checksum);

  std::string codec12 = avl_data(kCodec8);
  codec12[0] = '\x0C';
  CHECK(stream.next_frame(frame_around(codec12)).error().code == TrackerErrc::unsupported);

  std::string mismatch = avl_data(kCodec8);
  mismatch.back() = '\x02';
  CHECK(stream.next_frame(frame_around(mismatch)).error().code == TrackerErrc::malformed_frame);

  // Refused from the 8-byte header alone: nothing waits for (or holds) 4 GiB.
  CHECK(stream.next_frame(hex("00000000FFFFFFFF")).error().code == TrackerErrc::frame_too_large);
  teltonika::Teltonika small(teltonika::Transport::stream, 64);
  CHECK(small.next_frame(hex(kCodec8)).error().code == TrackerErrc::frame_too_large);
  CHECK(stream.next_frame(hex("0000000100000036")).error().code == TrackerErrc::malformed_frame);
}

TEST_CASE("teltonika framing: the wiki's UDP datagram and its ack") {
  teltonika::Teltonika datagram(teltonika::Transport::datagram, 64 << 10);
  const auto bytes = hex(kUdpCodec8);
  const auto frame = datagram.next_frame(bytes);
  REQUIRE(frame.has_value());
  CHECK(frame->kind == Frame::Kind::records);
  CHECK(frame->imei == "352093086403655");
  CHECK(frame->record_count == 1);
  CHECK(frame->payload == std::string(bytes.begin() + 23, bytes.end()));
  CHECK(datagram.records_reply(*frame, 1) == as_text(hex("0005CAFE010501")));
  const auto decoded = decode(frame->payload);
  REQUIRE(decoded.result.has_value());
  CHECK(decoded.batch.records()[0].event_time_ms == 1'560'407'006'000);  // 2019-06-13 06:23:26 UTC

  for (std::size_t size = 0; size < bytes.size(); ++size) {
    CHECK_FALSE(datagram.next_frame(std::span(bytes).first(size)).has_value());
  }
  teltonika::Teltonika small(teltonika::Transport::datagram, 32);
  CHECK(small.next_frame(bytes).error().code == TrackerErrc::frame_too_large);
}

TEST_CASE("tracker config: defaults, and errors name the dotted key") {
  using telegate::gateway::parse_config;
  const auto config = parse_config("tracker: {teltonika: {enabled: true, udp_port: 5027}}\n");
  CHECK(config.tracker.teltonika.enabled);
  CHECK(config.tracker.teltonika.tcp_port == 5027);
  CHECK(config.tracker.teltonika.udp_port == 5027);
  CHECK(config.tracker.teltonika.idle_timeout == std::chrono::seconds(600));
  CHECK_FALSE(config.tracker.gt06.enabled);
  const auto error_of = [](const std::string& yaml) -> std::string {
    try {
      (void)parse_config(yaml);
    } catch (const std::exception& error) {
      return error.what();
    }
    return "";
  };
  CHECK(error_of("tracker: {teltonika: {max_frame_bytes: 10}}\n").find("tracker.teltonika.max_frame_bytes") != std::string::npos);
  CHECK(error_of("tracker: {teltonika: {tenant: \"a b\"}}\n").find("tracker.teltonika.tenant") != std::string::npos);
  CHECK(error_of("tracker: {gt06: {idle_timeout_s: 0}}\n").find("tracker.gt06.idle_timeout_s") != std::string::npos);
  CHECK(error_of("tracker: {teltonika: {prot: 1}}\n").find("tracker.teltonika.prot") != std::string::npos);
}
