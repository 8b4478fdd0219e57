// gateway/mqtt: framing, decoding and encoding against bytes written by hand from the MQTT
// 3.1.1 and 5.0 specifications, against captures of mosquitto clients, and in round trips.
#include <doctest/doctest.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "mqtt/mqtt_packet.hpp"

using namespace telegate::gateway::mqtt;
using namespace std::string_view_literals;

namespace {

using ByteVec = std::vector<std::uint8_t>;
constexpr auto v3 = ProtocolVersion::v311;
constexpr auto v5 = ProtocolVersion::v5;

// Wire bytes from a readable spec: hex bytes, and 'text' for ASCII runs (no spaces inside).
// wire("10 13 00 04 'MQTT' 04") is the start of a CONNECT.
ByteVec wire(std::string_view spec) {
  ByteVec out;
  std::size_t i = 0;
  while (i < spec.size()) {
    const char c = spec[i];
    if (c == ' ') {
      ++i;
    } else if (c == '\'') {
      const auto end = spec.find('\'', i + 1);
      for (std::size_t k = i + 1; k < end; ++k) out.push_back(static_cast<std::uint8_t>(spec[k]));
      i = end + 1;
    } else {
      out.push_back(static_cast<std::uint8_t>(std::stoul(std::string(spec.substr(i, 2)), nullptr, 16)));
      i += 2;
    }
  }
  return out;
}

std::string hex_of(const ByteVec& bytes) {
  std::string out;
  for (const auto b : bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    if (!out.empty()) out += ' ';
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// One frame that must be exactly `bytes`.
Frame frame_of(const ByteVec& bytes) {
  FrameReader reader(kMaxPacketSizeLimit);
  const auto step = reader.read(bytes);
  REQUIRE(step.has_value());
  REQUIRE(step->frame.has_value());
  REQUIRE(step->consumed == bytes.size());
  return *step->frame;
}

// Decoded packets are views into the bytes they came from: tests that decode a temporary
// keep the bytes here, for the life of the test binary.
const ByteVec& keep(ByteVec bytes) {
  static std::deque<ByteVec> arena;
  return arena.emplace_back(std::move(bytes));
}

std::expected<Packet, PacketError> decode_bytes(ByteVec bytes, ProtocolVersion version) {
  return decode_packet(frame_of(keep(std::move(bytes))), version);
}

template <typename T>
T decode_as(ByteVec bytes, ProtocolVersion version) {
  const auto packet = decode_bytes(bytes, version);
  if (!packet) FAIL_CHECK(packet.error().message);
  REQUIRE(packet.has_value());
  REQUIRE(std::holds_alternative<T>(*packet));
  return std::get<T>(*packet);
}

PacketError decode_error(const ByteVec& bytes, ProtocolVersion version) {
  const auto packet = decode_bytes(bytes, version);
  REQUIRE_FALSE(packet.has_value());
  return packet.error();
}

template <typename T>
ByteVec encoded(const T& packet, ProtocolVersion version, std::uint32_t max = kMaxPacketSizeLimit) {
  ByteVec out;
  const auto result = encode(packet, version, out, max);
  if (!result) FAIL_CHECK(result.error().message);
  REQUIRE(result.has_value());
  CHECK(*result == out.size());
  return out;
}

ByteVec encoded_any(const Packet& packet, ProtocolVersion version) {
  ByteVec out;
  const auto result = encode_packet(packet, version, out);
  if (!result) FAIL_CHECK(result.error().message);
  REQUIRE(result.has_value());
  return out;
}

// Splits a stream into frames, copying each frame's bytes out (a frame's view may end with
// the next read()).
struct Framed {
  std::vector<ByteVec> frames;
  std::optional<PacketError> error;
};
Framed frame_stream(const ByteVec& stream, const std::vector<std::size_t>& cuts,
                    std::uint32_t max = kMaxPacketSizeLimit) {
  FrameReader reader(max);
  Framed out;
  std::size_t from = 0;
  auto feed = [&](std::size_t to) {
    Bytes input(stream.data() + from, to - from);
    while (!input.empty()) {
      const auto step = reader.read(input);
      if (!step) {
        out.error = step.error();
        return false;
      }
      if (step->frame) {
        ByteVec bytes;
        bytes.push_back(step->frame->first_byte);
        bytes.insert(bytes.end(), step->frame->body.begin(), step->frame->body.end());
        out.frames.push_back(std::move(bytes));
      }
      input = input.subspan(step->consumed);
    }
    from = to;
    return true;
  };
  for (const std::size_t cut : cuts) {
    if (!feed(cut)) return out;
  }
  feed(stream.size());
  return out;
}

ByteVec read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  REQUIRE(file.good());
  return ByteVec((std::istreambuf_iterator<char>(file)), {});
}

// Frames and decodes a whole capture, the version taken from its CONNECT like a server would.
std::vector<Packet> decode_capture(ByteVec bytes) {
  const ByteVec& stream = keep(std::move(bytes));
  FrameReader reader(65'536);
  std::vector<Packet> packets;
  ProtocolVersion version = v3;
  Bytes input(stream);
  while (!input.empty()) {
    const auto step = reader.read(input);
    REQUIRE(step.has_value());
    if (step->frame) {
      auto packet = decode_packet(*step->frame, version);
      if (!packet) FAIL(packet.error().message);
      if (const auto* connect = std::get_if<Connect>(&*packet)) version = connect->version;
      packets.push_back(std::move(*packet));
    }
    input = input.subspan(step->consumed);
  }
  CHECK_FALSE(reader.mid_frame());
  return packets;
}

const std::filesystem::path kCaptures = std::filesystem::path(TELEGATE_SOURCE_DIR) / "tests/unit/mqtt_captures";
constexpr auto kPayload = R"({"lat":52.52,"lon":13.405,"ts":1700000000000})"sv;

}  // namespace

// =============================================================================================
// Decoding: byte-exact examples built from the specs

TEST_CASE("CONNECT 3.1.1: every field from hand-built bytes") {
  // Flags 0xEE = user name, password, will retain, will QoS 1, will, clean session.
  const ByteVec bytes = wire(
      "10 29 00 04 'MQTT' 04 EE 00 3C"
      " 00 03 'dev'"
      " 00 06 'dev/lw' 00 03 'bye'"
      " 00 04 'user' 00 05 01 02 03 04 05");
  REQUIRE(bytes.size() == 2 + 0x29);
  const auto c = decode_as<Connect>(bytes, v3);
  CHECK(c.version == v3);
  CHECK(c.clean_start);
  CHECK(c.keep_alive == 60);
  CHECK(c.client_id == "dev");
  REQUIRE(c.will.has_value());
  CHECK(c.will->qos == QoS::at_least_once);
  CHECK(c.will->retain);
  CHECK(c.will->topic == "dev/lw");
  CHECK(c.will->payload == "bye");
  CHECK(c.username == "user");
  CHECK(c.password == "\x01\x02\x03\x04\x05"sv);
  // decode_connect gives the same, whatever version decode_packet was told.
  CHECK(decode_connect(frame_of(bytes)).value() == c);
  CHECK(std::get<Connect>(decode_bytes(bytes, v5).value()) == c);
}

TEST_CASE("CONNECT 5.0: properties and will properties") {
  const ByteVec bytes = wire(
      "10 55 00 04 'MQTT' 05 C6 00 0A"
      // properties: 0x29 bytes
      " 29 11 00 00 0E 10  21 00 14  27 00 01 00 00  22 00 05  17 00  26 00 02 'fw' 00 03 '1.4'"
      "    15 00 05 'SCRAM' 16 00 02 AB CD"
      " 00 02 'c1'"
      // will properties: delay 30, payload format 1, content type
      " 0F 18 00 00 00 1E 01 01 03 00 05 'text/'"
      " 00 03 'w/t' 00 00"
      " 00 01 'u' 00 01 'p'");
  REQUIRE(bytes.size() == 2 + 0x55);
  const auto c = decode_as<Connect>(bytes, v5);
  CHECK(c.version == v5);
  CHECK(c.clean_start);
  CHECK(c.keep_alive == 10);
  const auto& p = c.properties;
  CHECK(p.session_expiry_interval == 3600u);
  CHECK(p.receive_maximum == 20);
  CHECK(p.maximum_packet_size == 65536u);
  CHECK(p.topic_alias_maximum == 5);
  CHECK(p.request_problem_information == 0);
  REQUIRE(p.user_properties.size() == 1);
  CHECK(p.user_properties[0] == UserProperty{"fw", "1.4"});
  CHECK(p.authentication_method == "SCRAM");
  CHECK(p.authentication_data == "\xAB\xCD"sv);
  CHECK(c.client_id == "c1");
  REQUIRE(c.will.has_value());
  CHECK(c.will->qos == QoS::at_most_once);
  CHECK_FALSE(c.will->retain);
  CHECK(c.will->delay_interval == 30u);
  CHECK(c.will->properties.payload_format_indicator == 1);
  CHECK(c.will->properties.content_type == "text/");
  CHECK(c.will->topic == "w/t");
  CHECK(c.will->payload.empty());
  CHECK(c.username == "u");
  CHECK(c.password == "p");
}

TEST_CASE("CONNECT 5.0: a password without a user name is allowed, empty client id too") {
  const auto c = decode_as<Connect>(wire("10 13 00 04 'MQTT' 05 40 00 00 00 00 00 00 04 'pass'"), v5);
  CHECK_FALSE(c.username.has_value());
  CHECK(c.password == "pass");
  CHECK(c.client_id.empty());
  CHECK_FALSE(c.clean_start);
}

TEST_CASE("PUBLISH 3.1.1: QoS 0 and QoS 1 with retain and dup") {
  const auto p0 = decode_as<Publish>(wire("30 0A 00 03 'a/b' 'hello'"), v3);
  CHECK(p0.qos == QoS::at_most_once);
  CHECK_FALSE(p0.dup);
  CHECK_FALSE(p0.retain);
  CHECK(p0.topic == "a/b");
  CHECK(p0.packet_id == 0);
  CHECK(p0.payload == "hello");

  const auto p1 = decode_as<Publish>(wire("3B 07 00 01 't' 12 34 'x' 'y'"), v3);
  CHECK(p1.qos == QoS::at_least_once);
  CHECK(p1.dup);
  CHECK(p1.retain);
  CHECK(p1.packet_id == 0x1234);
  CHECK(p1.payload == "xy");

  const auto p2 = decode_as<Publish>(wire("34 05 00 01 't' 00 01"), v3);  // QoS 2, empty payload
  CHECK(p2.qos == QoS::exactly_once);
  CHECK(p2.payload.empty());
}

TEST_CASE("PUBLISH 5.0: every property a client may send") {
  const ByteVec bytes = wire(
      "32 45 00 05 'a/b/c' 00 07"
      " 39 01 01  02 00 00 00 3C  23 00 02  08 00 05 'r/e/s'  09 00 03 01 02 03"
      "    26 00 01 'k' 00 01 'v'  26 00 01 'k' 00 01 'w'  03 00 10 'application/json'"
      " '{}'");
  REQUIRE(bytes.size() == 2 + 0x45);
  const auto p = decode_as<Publish>(bytes, v5);
  CHECK(p.qos == QoS::at_least_once);
  CHECK(p.topic == "a/b/c");
  CHECK(p.packet_id == 7);
  CHECK(p.properties.payload_format_indicator == 1);
  CHECK(p.properties.message_expiry_interval == 60u);
  CHECK(p.properties.topic_alias == 2);
  CHECK(p.properties.response_topic == "r/e/s");
  CHECK(p.properties.correlation_data == "\x01\x02\x03"sv);
  REQUIRE(p.properties.user_properties.size() == 2);  // User Property may repeat, in order
  CHECK(p.properties.user_properties[1] == UserProperty{"k", "w"});
  CHECK(p.properties.content_type == "application/json");
  CHECK(p.payload == "{}");
  CHECK(validate_payload_format(p).has_value());
}

TEST_CASE("PUBLISH 5.0: empty topic name with a Topic Alias") {
  const auto p = decode_as<Publish>(wire("30 08 00 00 03 23 00 05 'hi'"), v5);
  CHECK(p.topic.empty());
  CHECK(p.properties.topic_alias == 5);
  CHECK(p.payload == "hi");
}

TEST_CASE("PUBACK, PUBREC, PUBREL, PUBCOMP: 3.1.1 and the 5.0 short and long forms") {
  struct Case { std::string_view bytes; ProtocolVersion version; PacketType type; std::uint16_t id; ReasonCode reason; };
  const Case cases[] = {
      {"40 02 00 07", v3, PacketType::puback, 7, ReasonCode::success},
      {"50 02 01 00", v3, PacketType::pubrec, 256, ReasonCode::success},
      {"62 02 00 09", v3, PacketType::pubrel, 9, ReasonCode::success},
      {"70 02 FF FF", v3, PacketType::pubcomp, 65535, ReasonCode::success},
      {"40 02 00 07", v5, PacketType::puback, 7, ReasonCode::success},
      {"40 03 00 07 10", v5, PacketType::puback, 7, ReasonCode::no_matching_subscribers},
      {"50 04 00 07 80 00", v5, PacketType::pubrec, 7, ReasonCode::unspecified_error},
      {"62 03 00 07 92", v5, PacketType::pubrel, 7, ReasonCode::packet_identifier_not_found},
      {"70 02 00 07", v5, PacketType::pubcomp, 7, ReasonCode::success},
  };
  for (const auto& c : cases) {
    CAPTURE(c.bytes);
    const auto a = decode_as<PublishAck>(wire(c.bytes), c.version);
    CHECK(a.type == c.type);
    CHECK(a.packet_id == c.id);
    CHECK(a.reason == c.reason);
  }
  const auto a = decode_as<PublishAck>(wire("40 0F 00 07 87 0B 1F 00 03 'bad' 26 00 00 00 00"), v5);
  CHECK(a.reason == ReasonCode::not_authorized);
  CHECK(a.reason_string == "bad");
  REQUIRE(a.user_properties.size() == 1);
  CHECK(a.user_properties[0] == UserProperty{"", ""});
}

TEST_CASE("SUBSCRIBE and UNSUBSCRIBE in both versions") {
  const auto s3 = decode_as<Subscribe>(wire("82 0E 00 0A 00 03 'a/+' 01 00 03 's/#' 02"), v3);
  CHECK(s3.packet_id == 10);
  REQUIRE(s3.subscriptions.size() == 2);
  CHECK(s3.subscriptions[0].filter == "a/+");
  CHECK(s3.subscriptions[0].max_qos == QoS::at_least_once);
  CHECK(s3.subscriptions[1].filter == "s/#");
  CHECK(s3.subscriptions[1].max_qos == QoS::exactly_once);

  // Options 0x2E: Retain Handling 2, Retain As Published, No Local, QoS 2.
  const auto s5 = decode_as<Subscribe>(wire("82 0D 00 01 03 0B 80 01 00 04 'x/y/' 2E"), v5);
  CHECK(s5.subscription_identifier == 128u);
  REQUIRE(s5.subscriptions.size() == 1);
  const auto& e = s5.subscriptions[0];
  CHECK(e.filter == "x/y/");
  CHECK(e.max_qos == QoS::exactly_once);
  CHECK(e.no_local);
  CHECK(e.retain_as_published);
  CHECK(e.retain_handling == RetainHandling::do_not_send);

  const auto u3 = decode_as<Unsubscribe>(wire("A2 0A 00 02 00 01 'a' 00 03 'b/#'"), v3);
  CHECK(u3.packet_id == 2);
  CHECK(u3.filters == std::vector<std::string_view>{"a", "b/#"});
  const auto u5 = decode_as<Unsubscribe>(wire("A2 0D 00 02 05 26 00 00 00 00 00 03 'b/#'"), v5);
  CHECK(u5.filters == std::vector<std::string_view>{"b/#"});
  CHECK(u5.user_properties.size() == 1);
}

TEST_CASE("PINGREQ, DISCONNECT and AUTH") {
  CHECK(std::holds_alternative<PingReq>(decode_bytes(wire("C0 00"), v3).value()));
  CHECK(std::holds_alternative<PingReq>(decode_bytes(wire("C0 00"), v5).value()));
  CHECK(decode_as<Disconnect>(wire("E0 00"), v3).reason == ReasonCode::normal_disconnection);
  CHECK(decode_as<Disconnect>(wire("E0 00"), v5).reason == ReasonCode::normal_disconnection);
  CHECK(decode_as<Disconnect>(wire("E0 01 04"), v5).reason == ReasonCode::disconnect_with_will);
  const auto d = decode_as<Disconnect>(wire("E0 0C 00 0A 11 00 00 00 00 1F 00 02 'ok'"), v5);
  CHECK(d.session_expiry_interval == 0u);
  CHECK(d.reason_string == "ok");

  CHECK(decode_as<Auth>(wire("F0 00"), v5).reason == ReasonCode::success);
  const auto a = decode_as<Auth>(wire("F0 0F 18 0D 15 00 05 'SCRAM' 16 00 02 'xy'"), v5);
  CHECK(a.reason == ReasonCode::continue_authentication);
  CHECK(a.authentication_method == "SCRAM");
  CHECK(a.authentication_data == "xy");
}

// =============================================================================================
// Encoding: byte-exact

TEST_CASE("CONNACK 3.1.1: return codes, session present") {
  CHECK(encoded(Connack{}, v3) == wire("20 02 00 00"));
  CHECK(encoded(Connack{.session_present = true}, v3) == wire("20 02 01 00"));
  CHECK(encoded(Connack{.reason = ReasonCode::unsupported_protocol_version}, v3) == wire("20 02 00 01"));
  CHECK(encoded(Connack{.reason = ReasonCode::client_identifier_not_valid}, v3) == wire("20 02 00 02"));
  CHECK(encoded(Connack{.reason = ReasonCode::server_busy}, v3) == wire("20 02 00 03"));
  CHECK(encoded(Connack{.reason = ReasonCode::bad_username_or_password}, v3) == wire("20 02 00 04"));
  CHECK(encoded(Connack{.reason = ReasonCode::not_authorized}, v3) == wire("20 02 00 05"));
  ByteVec out;
  const auto refused = encode(Connack{.session_present = true, .reason = ReasonCode::not_authorized}, v3, out);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == MqttErrc::invalid_argument);
  CHECK(out.empty());
}

TEST_CASE("CONNACK 5.0: reason codes and every server capability property") {
  CHECK(encoded(Connack{}, v5) == wire("20 03 00 00 00"));
  CHECK(encoded(Connack{.reason = ReasonCode::bad_username_or_password}, v5) == wire("20 03 00 86 00"));
  Connack c;
  c.session_present = true;
  c.properties.receive_maximum = 100;
  c.properties.maximum_qos = QoS::at_least_once;
  c.properties.retain_available = false;
  c.properties.maximum_packet_size = 1'048'576;
  c.properties.assigned_client_identifier = "auto-1";
  c.properties.topic_alias_maximum = 10;
  c.properties.reason_string = "hi";
  c.properties.wildcard_subscription_available = true;
  c.properties.subscription_identifiers_available = false;
  c.properties.shared_subscription_available = false;
  c.properties.server_keep_alive = 120;
  // Properties in the encoder's order: 21, 24, 25, 27, 12, 22, 1F, 28, 29, 2A, 13.
  CHECK(hex_of(encoded(c, v5)) == hex_of(wire(
      "20 29 01 00 26 21 00 64 24 01 25 00 27 00 10 00 00 12 00 06 'auto-1' 22 00 0A 1F 00 02 'hi'"
      " 28 01 29 00 2A 00 13 00 78")));
}

TEST_CASE("PUBACK/PUBREC/PUBREL/PUBCOMP encoders") {
  CHECK(encoded(PublishAck{.type = PacketType::puback, .packet_id = 7}, v3) == wire("40 02 00 07"));
  CHECK(encoded(PublishAck{.type = PacketType::pubrec, .packet_id = 7}, v3) == wire("50 02 00 07"));
  CHECK(encoded(PublishAck{.type = PacketType::pubrel, .packet_id = 7}, v3) == wire("62 02 00 07"));
  CHECK(encoded(PublishAck{.type = PacketType::pubcomp, .packet_id = 7}, v3) == wire("70 02 00 07"));
  // v5: success without properties uses the 2-byte short form.
  CHECK(encoded(PublishAck{.type = PacketType::puback, .packet_id = 7}, v5) == wire("40 02 00 07"));
  const std::pair<ReasonCode, std::string_view> refusals[] = {
      {ReasonCode::not_authorized, "40 03 00 07 87"},
      {ReasonCode::topic_name_invalid, "40 03 00 07 90"},
      {ReasonCode::quota_exceeded, "40 03 00 07 97"},
      {ReasonCode::payload_format_invalid, "40 03 00 07 99"},
      {ReasonCode::unspecified_error, "40 03 00 07 80"},
  };
  for (const auto& [reason, bytes] : refusals) {
    CAPTURE(bytes);
    CHECK(encoded(PublishAck{.type = PacketType::puback, .packet_id = 7, .reason = reason}, v5) == wire(bytes));
  }
  CHECK(encoded(PublishAck{.type = PacketType::pubrec, .packet_id = 7, .reason = ReasonCode::quota_exceeded}, v5) ==
        wire("50 03 00 07 97"));
  CHECK(encoded(PublishAck{.type = PacketType::pubcomp, .packet_id = 7,
                           .reason = ReasonCode::packet_identifier_not_found}, v5) == wire("70 03 00 07 92"));
  CHECK(encoded(PublishAck{.type = PacketType::puback, .packet_id = 7, .reason = ReasonCode::not_authorized,
                           .reason_string = "no", .user_properties = {{"a", "b"}}}, v5) ==
        wire("40 10 00 07 87 0C 1F 00 02 'no' 26 00 01 'a' 00 01 'b'"));

  ByteVec out;
  // 3.1.1 has no negative ack: refusing is the caller's job (close the connection).
  const auto v3_refusal = encode(PublishAck{.packet_id = 7, .reason = ReasonCode::quota_exceeded}, v3, out);
  REQUIRE_FALSE(v3_refusal.has_value());
  CHECK(v3_refusal.error().code == MqttErrc::invalid_argument);
  CHECK_FALSE(encode(PublishAck{.type = PacketType::pubrel, .packet_id = 7, .reason = ReasonCode::quota_exceeded}, v5, out).has_value());
  CHECK_FALSE(encode(PublishAck{.packet_id = 0}, v5, out).has_value());
  CHECK_FALSE(encode(PublishAck{.type = PacketType::suback, .packet_id = 1}, v5, out).has_value());
  CHECK(out.empty());
}

TEST_CASE("SUBACK, UNSUBACK, PINGRESP encoders") {
  const Suback suback{.packet_id = 1,
                      .reasons = {ReasonCode::granted_qos_1, ReasonCode::shared_subscriptions_not_supported,
                                  ReasonCode::not_authorized, ReasonCode::granted_qos_0}};
  CHECK(encoded(suback, v3) == wire("90 06 00 01 01 80 80 00"));  // 3.1.1 knows only 0x80 for failure
  CHECK(encoded(suback, v5) == wire("90 07 00 01 00 01 9E 87 00"));
  Suback with_string = suback;
  with_string.reason_string = "no $share";
  CHECK(encoded(with_string, v5) == wire("90 13 00 01 0C 1F 00 09 'no $share' 01 9E 87 00"));
  ByteVec out;
  CHECK_FALSE(encode(Suback{.packet_id = 1, .reasons = {ReasonCode::packet_too_large}}, v5, out).has_value());
  CHECK_FALSE(encode(Suback{.packet_id = 1}, v5, out).has_value());

  CHECK(encoded(Unsuback{.packet_id = 3, .reasons = {ReasonCode::success}}, v3) == wire("B0 02 00 03"));
  CHECK(encoded(Unsuback{.packet_id = 3, .reasons = {ReasonCode::success, ReasonCode::no_subscription_existed}}, v5) ==
        wire("B0 05 00 03 00 00 11"));
  CHECK(encoded(PingResp{}, v3) == wire("D0 00"));
  CHECK(encoded(PingResp{}, v5) == wire("D0 00"));
}

TEST_CASE("DISCONNECT and AUTH encoders (5.0 only)") {
  CHECK(encoded(Disconnect{}, v5) == wire("E0 00"));
  const std::pair<ReasonCode, std::string_view> reasons[] = {
      {ReasonCode::malformed_packet, "E0 01 81"},        {ReasonCode::protocol_error, "E0 01 82"},
      {ReasonCode::packet_too_large, "E0 01 95"},        {ReasonCode::keep_alive_timeout, "E0 01 8D"},
      {ReasonCode::receive_maximum_exceeded, "E0 01 93"}, {ReasonCode::topic_alias_invalid, "E0 01 94"},
      {ReasonCode::server_shutting_down, "E0 01 8B"},    {ReasonCode::session_taken_over, "E0 01 8E"},
  };
  for (const auto& [reason, bytes] : reasons) {
    CAPTURE(bytes);
    CHECK(encoded(Disconnect{.reason = reason}, v5) == wire(bytes));
  }
  CHECK(encoded(Disconnect{.reason = ReasonCode::server_moved, .server_reference = "b:1883"}, v5) ==
        wire("E0 0B 9D 09 1C 00 06 'b:1883'"));
  ByteVec out;
  CHECK(encode(Disconnect{}, v3, out).error().code == MqttErrc::invalid_argument);  // 3.1.1 servers just close
  CHECK_FALSE(encode(Disconnect{.reason = ReasonCode::granted_qos_1}, v5, out).has_value());
  CHECK(out.empty());

  CHECK(encoded(Auth{}, v5) == wire("F0 00"));
  CHECK(encoded(Auth{.reason = ReasonCode::continue_authentication, .authentication_method = "SCRAM",
                     .authentication_data = "xy"}, v5) == wire("F0 0F 18 0D 15 00 05 'SCRAM' 16 00 02 'xy'"));
  CHECK_FALSE(encode(Auth{.reason = ReasonCode::continue_authentication}, v5, out).has_value());  // method required
  CHECK_FALSE(encode(Auth{}, v3, out).has_value());
}

TEST_CASE("encoders respect the client's Maximum Packet Size") {
  PublishAck ack{.type = PacketType::puback, .packet_id = 7, .reason = ReasonCode::quota_exceeded,
                 .reason_string = "the budget is full, try later", .user_properties = {{"retry", "5"}}};
  // Optional Reason String and User Properties are dropped to fit; the reason code stays.
  CHECK(encoded(ack, v5, 10) == wire("40 03 00 07 97"));
  CHECK(encoded(ack, v5, 5) == wire("40 03 00 07 97"));
  ByteVec out;
  const auto too_small = encode(ack, v5, out, 4);
  REQUIRE_FALSE(too_small.has_value());
  CHECK(too_small.error().code == MqttErrc::packet_too_large);
  CHECK(out.empty());
  // A PUBLISH is never cut: it is refused, and the caller drops it (MQTT-3.1.2-25).
  const Publish publish{.topic = "t", .payload = "0123456789"};
  CHECK(encode(publish, v5, out, 15).error().code == MqttErrc::packet_too_large);
  CHECK(encoded(publish, v5, 16).size() == 16);
}

// =============================================================================================
// Round trips

TEST_CASE("round trips: encode → frame → decode gives the same fields") {
  Publish publish{.dup = true, .qos = QoS::exactly_once, .retain = true, .topic = "acme/truck-1/gps",
                  .packet_id = 513, .payload = kPayload};
  Publish publish5 = publish;
  publish5.properties.payload_format_indicator = 1;
  publish5.properties.message_expiry_interval = 3600;
  publish5.properties.content_type = "application/json";
  publish5.properties.response_topic = "acme/truck-1/replies";
  publish5.properties.correlation_data = "\x00\x01\xFF"sv;
  publish5.properties.topic_alias = 3;
  publish5.properties.user_properties = {{"a", "1"}, {"a", "2"}, {"b", ""}};

  Connect connect5{.version = v5, .clean_start = true, .keep_alive = 45, .client_id = "truck-1"};
  connect5.will = Will{.qos = QoS::exactly_once, .retain = true, .topic = "acme/truck-1/status", .payload = "offline"};
  connect5.will->delay_interval = 10;
  connect5.will->properties.content_type = "text/plain";
  connect5.username = "acme";
  connect5.password = "\x00secret"sv;
  connect5.properties.session_expiry_interval = 0xFFFFFFFF;
  connect5.properties.receive_maximum = 1;
  connect5.properties.maximum_packet_size = 1024;
  connect5.properties.topic_alias_maximum = 0;
  connect5.properties.request_response_information = 1;
  connect5.properties.request_problem_information = 0;
  connect5.properties.user_properties = {{"fw", "2.0"}};
  Connect connect3{.version = v3, .clean_start = false, .keep_alive = 0, .client_id = "x"};
  connect3.will = Will{.topic = "w", .payload = ""};
  connect3.username = "u";

  Subscribe subscribe5{.packet_id = 9, .subscription_identifier = 268'435'455,
                       .user_properties = {{"k", "v"}},
                       .subscriptions = {{.filter = "a/+/c", .max_qos = QoS::at_least_once, .no_local = true},
                                         {.filter = "$share/g/#", .retain_handling = RetainHandling::send_if_new}}};
  Subscribe subscribe3{.packet_id = 9, .subscriptions = {{.filter = "a/#", .max_qos = QoS::exactly_once}}};

  const std::vector<std::pair<Packet, ProtocolVersion>> cases = {
      {publish, v3},
      {publish5, v5},
      {Publish{.topic = "t", .payload = ""}, v3},
      {Publish{.qos = QoS::at_least_once, .topic = "", .packet_id = 1,
               .properties = {{}, 7, {}}, .payload = "aliased"}, v5},
      {connect3, v3},
      {connect5, v5},
      {subscribe3, v3},
      {subscribe5, v5},
      {Unsubscribe{.packet_id = 4, .filters = {"a/#", "b"}}, v3},
      {Unsubscribe{.packet_id = 4, .user_properties = {{"x", "y"}}, .filters = {"a/#"}}, v5},
      {PingReq{}, v3},
      {PublishAck{.type = PacketType::pubrec, .packet_id = 77}, v3},
      {PublishAck{.type = PacketType::pubrel, .packet_id = 77, .reason = ReasonCode::packet_identifier_not_found,
                  .reason_string = "gone"}, v5},
      {PublishAck{.type = PacketType::puback, .packet_id = 1, .user_properties = {{"n", "v"}}}, v5},
      {Disconnect{}, v3},
      {Disconnect{.reason = ReasonCode::disconnect_with_will, .session_expiry_interval = 5,
                  .reason_string = "bye", .server_reference = "other", .user_properties = {{"p", "q"}}}, v5},
      {Auth{.reason = ReasonCode::reauthenticate, .authentication_method = "M", .authentication_data = "",
            .reason_string = "r", .user_properties = {{"1", "2"}}}, v5},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    const auto& [packet, version] = cases[i];
    if (std::holds_alternative<Disconnect>(packet) && version == v3) {
      // A server never sends a 3.1.1 DISCONNECT; the client's is just E0 00.
      CHECK(decode_as<Disconnect>(wire("E0 00"), v3) == Disconnect{});
      continue;
    }
    const ByteVec bytes = encoded_any(packet, version);
    const auto decoded = decode_bytes(bytes, version);
    if (!decoded) FAIL_CHECK(decoded.error().message);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == packet);
    CHECK(encoded_any(*decoded, version) == bytes);
  }
}

// =============================================================================================
// Framing

TEST_CASE("framing: every split of a stream of several packets yields the same frames") {
  ByteVec stream;
  for (const auto& part : {wire("10 0D 00 04 'MQTT' 04 02 00 3C 00 01 'a'"), wire("30 0A 00 03 'a/b' 'hello'"),
                           wire("C0 00"), wire("3B 07 00 01 't' 12 34 'x' 'y'"), wire("E0 00")}) {
    stream.insert(stream.end(), part.begin(), part.end());
  }
  // A frame with a 2-byte Remaining Length (200 bytes of payload).
  ByteVec big = wire("30 CB 01 00 01 't'");  // Remaining Length 203
  big.resize(big.size() + 200, 'z');
  stream.insert(stream.end(), big.begin(), big.end());

  const Framed whole = frame_stream(stream, {});
  REQUIRE_FALSE(whole.error.has_value());
  REQUIRE(whole.frames.size() == 6);
  CHECK(whole.frames[5].size() == 1 + 203);

  for (std::size_t i = 0; i <= stream.size(); ++i) {
    for (std::size_t j = i; j <= stream.size(); j += 7) {  // all one-cut splits, many two-cut ones
      const Framed split = frame_stream(stream, {i, j});
      REQUIRE_FALSE(split.error.has_value());
      REQUIRE(split.frames == whole.frames);
    }
  }
  std::vector<std::size_t> every_byte;
  for (std::size_t i = 1; i < stream.size(); ++i) every_byte.push_back(i);
  CHECK(frame_stream(stream, every_byte).frames == whole.frames);

  // Each frame also decodes (3.1.1 connection).
  for (const auto& frame : whole.frames) {
    Frame f{frame[0], 2, Bytes(frame).subspan(1)};
    CHECK(decode_packet(f, v3).has_value());
  }
}

TEST_CASE("framing: a frame whole in the input is returned in place, a split one is copied") {
  const ByteVec bytes = wire("30 05 00 01 't' 'x' 'y'");
  FrameReader reader(1024);
  const auto whole = reader.read(bytes);
  REQUIRE(whole->frame.has_value());
  CHECK(whole->frame->body.data() == bytes.data() + 2);
  CHECK(whole->frame->size() == bytes.size());

  const auto first = reader.read(Bytes(bytes).first(4));
  CHECK_FALSE(first->frame.has_value());
  CHECK(reader.mid_frame());
  const auto second = reader.read(Bytes(bytes).subspan(4));
  REQUIRE(second->frame.has_value());
  CHECK_FALSE(reader.mid_frame());
  CHECK(ByteVec(second->frame->body.begin(), second->frame->body.end()) == wire("00 01 't' 'x' 'y'"));
}

TEST_CASE("framing: Maximum Packet Size is enforced from the header, before any body is buffered") {
  // 1 MiB declared (Remaining Length 80 80 40), limit 1 KiB: refused on the header alone.
  FrameReader reader(1024);
  const auto step = reader.read(wire("30 80 80 40"));
  REQUIRE_FALSE(step.has_value());
  CHECK(step.error().code == MqttErrc::packet_too_large);
  CHECK(step.error().reason == ReasonCode::packet_too_large);
  CHECK(step.error().message.find("1048580 bytes exceeds the Maximum Packet Size of 1024") != std::string::npos);
  // The reader stays failed: the connection must be closed.
  CHECK_FALSE(reader.read(wire("C0 00")).has_value());

  // The limit counts the whole packet, fixed header included: 1 + 1 + 126 = 128.
  ByteVec at_limit = wire("30 7E 00 01 't'");
  at_limit.resize(128, 'p');
  FrameReader exact(128);
  CHECK(exact.read(at_limit)->frame.has_value());
  ByteVec over = wire("30 7F 00 01 't'");
  over.resize(129, 'p');
  FrameReader one_less(128);
  const auto refused = one_less.read(Bytes(over).first(2));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().reason == ReasonCode::packet_too_large);
}

TEST_CASE("framing: malformed Remaining Length") {
  FrameReader five(kMaxPacketSizeLimit);
  const auto too_long = five.read(wire("30 FF FF FF FF 7F"));
  REQUIRE_FALSE(too_long.has_value());
  CHECK(too_long.error().reason == ReasonCode::malformed_packet);
  CHECK(too_long.error().message.starts_with("remaining length uses more than 4 bytes"));

  FrameReader overlong(kMaxPacketSizeLimit);
  const auto not_shortest = overlong.read(wire("C0 80 00"));
  REQUIRE_FALSE(not_shortest.has_value());
  CHECK(not_shortest.error().reason == ReasonCode::malformed_packet);

  // The largest legal Remaining Length is accepted by the framing (and then refused by size).
  FrameReader max(kMaxPacketSizeLimit);
  const auto largest = max.read(wire("30 FF FF FF 7F"));
  REQUIRE(largest.has_value());
  CHECK(largest->consumed == 5);
  CHECK(max.mid_frame());
  // The error offset is where the offending packet starts in the stream.
  FrameReader offsets(16);
  const auto second = offsets.read(wire("C0 00 30 20"));
  REQUIRE(second.has_value());  // the PINGREQ
  const auto third = offsets.read(Bytes(wire("C0 00 30 20")).subspan(second->consumed));
  REQUIRE_FALSE(third.has_value());
  CHECK(third.error().offset == 2);
}

// =============================================================================================
// Malformed and forbidden packets, each with its reason code

TEST_CASE("every malformed or forbidden packet is refused with its reason code and a precise message") {
  struct Case {
    std::string_view name;
    std::string_view bytes;
    ProtocolVersion version;
    ReasonCode reason;
    std::string_view message;  // a substring of the error message
  };
  const Case cases[] = {
      // CONNECT
      {"reserved flag", "10 0D 00 04 'MQTT' 04 03 00 3C 00 01 'a'", v3, ReasonCode::malformed_packet,
       "CONNECT: reserved flag bit 0 is set at offset 9"},
      {"level 3", "10 0D 00 04 'MQTT' 03 02 00 3C 00 01 'a'", v3, ReasonCode::unsupported_protocol_version,
       "protocol level 3"},
      {"MQIsdp", "10 0F 00 06 'MQIsdp' 03 02 00 3C 00 01 'a'", v3, ReasonCode::unsupported_protocol_version, "MQIsdp"},
      {"other name", "10 0D 00 04 'MQTX' 04 02 00 3C 00 01 'a'", v3, ReasonCode::unsupported_protocol_version,
       "is not \"MQTT\""},
      {"will QoS 3", "10 0D 00 04 'MQTT' 04 1E 00 3C 00 01 'a'", v3, ReasonCode::malformed_packet, "Will QoS is 3"},
      {"will retain without will", "10 0D 00 04 'MQTT' 04 22 00 3C 00 01 'a'", v3, ReasonCode::malformed_packet,
       "without the Will Flag"},
      {"3.1.1 password without user", "10 10 00 04 'MQTT' 04 42 00 3C 00 01 'a' 00 01 'p'", v3,
       ReasonCode::malformed_packet, "Password Flag is set without the User Name Flag"},
      {"3.1.1 empty id, no clean session", "10 0C 00 04 'MQTT' 04 00 00 3C 00 00", v3,
       ReasonCode::client_identifier_not_valid, "empty client identifier"},
      {"CONNECT trailing bytes", "10 0E 00 04 'MQTT' 04 02 00 3C 00 01 'a' 'z'", v3, ReasonCode::malformed_packet,
       "1 unexpected bytes after the last field"},
      {"CONNECT flags", "11 0D 00 04 'MQTT' 04 02 00 3C 00 01 'a'", v3, ReasonCode::malformed_packet,
       "fixed header flags are 0x01"},
      {"will topic with wildcard", "10 14 00 04 'MQTT' 04 06 00 3C 00 01 'a' 00 03 'a/#' 00 00", v3,
       ReasonCode::topic_name_invalid, "wildcard '#'"},
      {"property twice", "10 18 00 04 'MQTT' 05 02 00 3C 0A 11 00 00 00 01 11 00 00 00 02 00 01 'a'", v5,
       ReasonCode::protocol_error, "property 0x11 Session Expiry Interval appears twice at offset 18"},
      {"property not allowed in CONNECT", "10 10 00 04 'MQTT' 05 02 00 3C 03 23 00 01 00 01 'a'", v5,
       ReasonCode::malformed_packet, "property 0x23 Topic Alias at offset 13 is not allowed"},
      {"unknown property", "10 0F 00 04 'MQTT' 05 02 00 3C 02 05 00 00 01 'a'", v5, ReasonCode::malformed_packet,
       "unknown property 0x05"},
      {"Receive Maximum 0", "10 10 00 04 'MQTT' 05 02 00 3C 03 21 00 00 00 01 'a'", v5, ReasonCode::protocol_error,
       "Receive Maximum 0"},
      {"Maximum Packet Size 0", "10 12 00 04 'MQTT' 05 02 00 3C 05 27 00 00 00 00 00 01 'a'", v5,
       ReasonCode::protocol_error, "Maximum Packet Size 0"},
      {"Request Problem Information 2", "10 0F 00 04 'MQTT' 05 02 00 3C 02 17 02 00 01 'a'", v5,
       ReasonCode::protocol_error, "must be 0 or 1"},
      {"property length past the end", "10 0E 00 04 'MQTT' 05 02 00 3C 09 00 01 'a'", v5,
       ReasonCode::malformed_packet, "runs past the end of the packet"},
      {"property value past property length", "10 0F 00 04 'MQTT' 05 02 00 3C 02 21 00 00 01 'a'", v5,
       ReasonCode::malformed_packet, "needs 2 bytes, 1 left"},
      {"auth data without method", "10 12 00 04 'MQTT' 05 02 00 3C 05 16 00 02 'xy' 00 01 'a'", v5,
       ReasonCode::protocol_error, "Authentication Data without Authentication Method"},
      {"client id not UTF-8", "10 0D 00 04 'MQTT' 04 02 00 3C 00 01 FF", v3, ReasonCode::malformed_packet,
       "UTF-8 string at offset 12 is not well-formed (RFC 3629)"},
      // PUBLISH
      {"wildcard +", "30 0A 00 03 'a/+' 'hello'", v3, ReasonCode::topic_name_invalid,
       "PUBLISH: topic name contains a wildcard '+' at offset 6"},
      {"wildcard #", "30 06 00 01 '#' 'x' 'y' 'z'", v5, ReasonCode::topic_name_invalid, "wildcard '#'"},
      {"QoS 3", "36 05 00 01 't' 00 01", v3, ReasonCode::malformed_packet, "QoS bits are 3"},
      {"DUP on QoS 0", "38 03 00 01 't'", v3, ReasonCode::protocol_error, "DUP is set on a QoS 0 message"},
      {"packet id 0", "32 05 00 01 't' 00 00", v3, ReasonCode::protocol_error, "packet identifier 0 at offset 5"},
      {"overlong UTF-8", "30 06 00 04 'a' C0 80 'b'", v3, ReasonCode::malformed_packet,
       "topic name: UTF-8 string at offset 2 is not well-formed (RFC 3629), bad byte at offset 5"},
      {"surrogate", "30 05 00 03 ED A0 80", v3, ReasonCode::malformed_packet, "not well-formed (RFC 3629)"},
      {"above U+10FFFF", "30 06 00 04 F4 90 80 80", v3, ReasonCode::malformed_packet, "not well-formed"},
      {"truncated UTF-8", "30 04 00 02 'a' E2", v3, ReasonCode::malformed_packet, "not well-formed"},
      {"U+0000", "30 05 00 03 'a' 00 'b'", v3, ReasonCode::malformed_packet, "contains U+0000 at offset 5"},
      {"string past the end", "30 04 00 09 'a' 'b'", v3, ReasonCode::malformed_packet,
       "topic name at offset 2 declares 9 bytes, 2 left in the packet"},
      {"no topic length", "30 01 00", v3, ReasonCode::malformed_packet, "needs 2 bytes, 1 left"},
      {"Topic Alias twice", "30 0C 00 01 't' 06 23 00 01 23 00 02 'x'", v5, ReasonCode::protocol_error,
       "property 0x23 Topic Alias appears twice at offset 9"},
      {"Topic Alias 0", "30 07 00 01 't' 03 23 00 00", v5, ReasonCode::topic_alias_invalid, "Topic Alias 0"},
      {"empty topic, no alias", "30 03 00 00 00", v5, ReasonCode::protocol_error, "no Topic Alias"},
      {"empty topic 3.1.1", "30 02 00 00", v3, ReasonCode::topic_name_invalid, "topic name is empty"},
      {"Subscription Identifier from a client", "30 06 00 01 't' 02 0B 01", v5, ReasonCode::protocol_error,
       "must not send a Subscription Identifier"},
      {"Payload Format Indicator 2", "30 06 00 01 't' 02 01 02", v5, ReasonCode::protocol_error, "must be 0 or 1"},
      {"Response Topic with wildcard", "30 0A 00 01 't' 06 08 00 03 'a/+'", v5, ReasonCode::topic_name_invalid,
       "Response Topic"},
      {"property id in 5 bytes", "30 09 00 01 't' 05 80 80 80 80 01", v5, ReasonCode::malformed_packet,
       "property identifier at offset 6 uses more than 4 bytes"},
      {"property length not shortest", "30 05 00 01 't' 80 00", v5, ReasonCode::malformed_packet,
       "not in its shortest form"},
      // Acks
      {"PUBACK 3.1.1 with a reason", "40 03 00 07 00", v3, ReasonCode::malformed_packet, "unexpected bytes"},
      {"PUBACK short", "40 01 00", v3, ReasonCode::malformed_packet, "packet identifier"},
      {"PUBACK reason of PUBREL", "40 03 00 07 92", v5, ReasonCode::protocol_error,
       "reason code 0x92 at offset 4 is not defined for PUBACK"},
      {"PUBACK property not allowed", "40 07 00 07 00 03 23 00 01", v5, ReasonCode::malformed_packet,
       "is not allowed here"},
      {"PUBREL flags 0", "60 02 00 07", v3, ReasonCode::malformed_packet, "PUBREL: fixed header flags are 0x00"},
      {"PUBCOMP id 0", "70 02 00 00", v5, ReasonCode::protocol_error, "packet identifier 0"},
      // SUBSCRIBE / UNSUBSCRIBE
      {"SUBSCRIBE flags", "80 06 00 01 00 01 'a' 00", v3, ReasonCode::malformed_packet, "fixed header flags"},
      {"SUBSCRIBE without filters", "82 02 00 01", v3, ReasonCode::protocol_error, "no topic filter"},
      {"SUBSCRIBE 3.1.1 reserved bits", "82 06 00 01 00 01 'a' 04", v3, ReasonCode::malformed_packet,
       "reserved bits of subscription options 0x04"},
      {"SUBSCRIBE 5.0 reserved bits", "82 07 00 01 00 00 01 'a' 40", v5, ReasonCode::malformed_packet,
       "reserved bits"},
      {"SUBSCRIBE QoS 3", "82 06 00 01 00 01 'a' 03", v3, ReasonCode::malformed_packet, "subscription QoS is 3"},
      {"Retain Handling 3", "82 07 00 01 00 00 01 'a' 30", v5, ReasonCode::protocol_error, "Retain Handling is 3"},
      {"Subscription Identifier 0", "82 09 00 01 02 0B 00 00 01 'a' 00", v5, ReasonCode::protocol_error,
       "Subscription Identifier 0"},
      {"SUBSCRIBE filter without options", "82 05 00 01 00 01 'a'", v3, ReasonCode::malformed_packet,
       "subscription options"},
      {"UNSUBSCRIBE without filters", "A2 03 00 01 00", v5, ReasonCode::protocol_error, "no topic filter"},
      {"UNSUBSCRIBE flags", "A0 05 00 01 00 01 'a'", v3, ReasonCode::malformed_packet, "fixed header flags"},
      // Others
      {"PINGREQ with a body", "C0 01 00", v3, ReasonCode::malformed_packet, "unexpected bytes"},
      {"PINGREQ flags", "C1 00", v3, ReasonCode::malformed_packet, "fixed header flags"},
      {"DISCONNECT 3.1.1 with a body", "E0 01 00", v3, ReasonCode::malformed_packet, "unexpected bytes"},
      {"DISCONNECT undefined reason", "E0 01 05", v5, ReasonCode::protocol_error, "reason code 0x05"},
      {"DISCONNECT flags", "E2 00", v5, ReasonCode::malformed_packet, "fixed header flags"},
      {"AUTH in 3.1.1", "F0 00", v3, ReasonCode::malformed_packet, "packet type 15 is reserved"},
      {"AUTH without method", "F0 02 18 00", v5, ReasonCode::protocol_error, "Authentication Method is missing"},
      {"AUTH undefined reason", "F0 02 01 00", v5, ReasonCode::protocol_error, "not defined for AUTH"},
      {"CONNACK from a client", "20 02 00 00", v3, ReasonCode::protocol_error, "CONNACK is sent only by servers"},
      {"SUBACK from a client", "90 03 00 01 00", v5, ReasonCode::protocol_error, "SUBACK is sent only by servers"},
      {"PINGRESP from a client", "D0 00", v5, ReasonCode::protocol_error, "PINGRESP"},
      {"type 0", "00 00", v5, ReasonCode::malformed_packet, "packet type 0 is reserved"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    ByteVec bytes = wire(c.bytes);
    // The cases are written with 1-byte Remaining Lengths; set it from the bytes so a
    // miscounted length cannot turn one error into another.
    REQUIRE(bytes.size() >= 2);
    REQUIRE(bytes.size() - 2 < 128);
    bytes[1] = static_cast<std::uint8_t>(bytes.size() - 2);
    const PacketError error = decode_error(bytes, c.version);
    CAPTURE(error.message);
    CHECK(error.reason == c.reason);
    CHECK(error.message.find(c.message) != std::string::npos);
    CHECK(error.offset <= bytes.size());
  }
}

TEST_CASE("decode_connect refuses another packet first") {
  const auto error = decode_connect(frame_of(wire("C0 00")));
  REQUIRE_FALSE(error.has_value());
  CHECK(error.error().reason == ReasonCode::protocol_error);
  CHECK(error.error().message.find("the first packet is PINGREQ") != std::string::npos);
}

TEST_CASE("Payload Format Indicator 1 with a non-UTF-8 payload is answered with 0x99, not a disconnect") {
  auto p = decode_as<Publish>(wire("32 0A 00 01 't' 00 05 02 01 01 FF FE"), v5);
  const auto check = validate_payload_format(p);
  REQUIRE_FALSE(check.has_value());
  CHECK(check.error().reason == ReasonCode::payload_format_invalid);
  p.properties.payload_format_indicator = 0;
  CHECK(validate_payload_format(p).has_value());
  p.properties.payload_format_indicator = 1;
  p.payload = "caf\xC3\xA9 \x00 ok"sv;  // U+0000 is a character in a payload
  CHECK(validate_payload_format(p).has_value());
}

// =============================================================================================
// Topics

TEST_CASE("topic names and filters are validated per section 4.7") {
  CHECK(validate_topic_name("acme/truck-1/gps").has_value());
  CHECK(validate_topic_name("/").has_value());
  CHECK(validate_topic_name("$SYS/x").has_value());
  CHECK(validate_topic_name("caf\xC3\xA9").has_value());
  for (const auto bad : {""sv, "a/+"sv, "a/#"sv, "a+b"sv, "a\0b"sv, "\xC0\x80"sv, "\xED\xA0\x80"sv}) {
    CAPTURE(bad);
    const auto result = validate_topic_name(bad);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason == ReasonCode::topic_name_invalid);
  }
  for (const auto good : {"#"sv, "+"sv, "a/+/c"sv, "a/#"sv, "+/+"sv, "/+"sv, "a//b"sv, "$share/g/a/+"sv,
                          "$share/g/#"sv, "sport/tennis/+/#"sv}) {
    CAPTURE(good);
    CHECK(validate_topic_filter(good).has_value());
  }
  for (const auto bad : {""sv, "a/#/b"sv, "a#"sv, "a/b#"sv, "a+/b"sv, "a/+b"sv, "$share/"sv, "$share/g"sv,
                         "$share/g/"sv, "$share//a"sv, "$share/g+/a"sv, "\xFF"sv}) {
    CAPTURE(bad);
    const auto result = validate_topic_filter(bad);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().reason == ReasonCode::topic_filter_invalid);
  }
  const auto shared = parse_shared_filter("$share/group/a/b");
  REQUIRE(shared.has_value());
  CHECK(shared->share_name == "group");
  CHECK(shared->filter == "a/b");
  CHECK_FALSE(parse_shared_filter("a/b").has_value());
}

TEST_CASE("split_topic keeps empty levels") {
  CHECK(split_topic("a/b/c") == std::vector<std::string_view>{"a", "b", "c"});
  CHECK(split_topic("/a//") == std::vector<std::string_view>{"", "a", "", ""});
  CHECK(split_topic("") == std::vector<std::string_view>{""});
}

TEST_CASE("topic_matches follows the spec's examples (section 4.7.1)") {
  struct Case { std::string_view filter, topic; bool matches; };
  const Case cases[] = {
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/#", "sport", true},
      {"#", "sport/tennis", true},
      {"#", "/", true},
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"+", "a", true},
      {"a/b", "a/b", true},
      {"a/b", "a/b/c", false},
      {"a/b/c", "a/b", false},
      {"#", "$SYS/uptime", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      {"a/+/c", "a//c", true},
      {"A/b", "a/b", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.filter);
    CAPTURE(c.topic);
    CHECK(topic_matches(c.filter, c.topic) == c.matches);
  }
}

TEST_CASE("topic_matches captures the levels of a per-device-type scheme") {
  std::vector<std::string_view> levels;
  REQUIRE(topic_matches("+/+/gps", "acme/truck-7/gps", &levels));
  CHECK(levels == std::vector<std::string_view>{"acme", "truck-7"});
  REQUIRE(topic_matches("acme/+/#", "acme/truck-7/gps/raw", &levels));
  CHECK(levels == std::vector<std::string_view>{"truck-7", "gps/raw"});
  REQUIRE(topic_matches("acme/#", "acme", &levels));
  CHECK(levels == std::vector<std::string_view>{""});
  CHECK_FALSE(topic_matches("acme/+/gps", "acme/truck-7/can", &levels));
}

// =============================================================================================
// Captures from mosquitto_pub / mosquitto_sub (tests/unit/mqtt_captures/README.md)

TEST_CASE("captures: mosquitto_pub MQTT 3.1.1, QoS 0/1/2, credentials, will") {
  {
    const auto packets = decode_capture(read_file(kCaptures / "v311_publish_qos0.bin"));
    REQUIRE(packets.size() == 3);
    const auto& c = std::get<Connect>(packets[0]);
    CHECK(c.version == v3);
    CHECK(c.client_id == "truck-1");
    CHECK(c.keep_alive == 30);
    CHECK(c.clean_start);
    CHECK_FALSE(c.will.has_value());
    CHECK_FALSE(c.username.has_value());
    const auto& p = std::get<Publish>(packets[1]);
    CHECK(p.qos == QoS::at_most_once);
    CHECK(p.topic == "acme/truck-1/gps");
    CHECK(p.payload == kPayload);
    CHECK(std::holds_alternative<Disconnect>(packets[2]));
  }
  {
    const auto packets = decode_capture(read_file(kCaptures / "v311_publish_qos1.bin"));
    REQUIRE(packets.size() == 3);
    const auto& c = std::get<Connect>(packets[0]);
    CHECK(c.username == "acme");
    CHECK(c.password == "s3cret");
    CHECK(c.keep_alive == 60);
    const auto& p = std::get<Publish>(packets[1]);
    CHECK(p.qos == QoS::at_least_once);
    CHECK(p.retain);
    CHECK(p.packet_id != 0);
    CHECK(p.payload == kPayload);
  }
  {
    const auto packets = decode_capture(read_file(kCaptures / "v311_publish_qos2.bin"));
    REQUIRE(packets.size() == 4);
    const auto& c = std::get<Connect>(packets[0]);
    CHECK_FALSE(c.clean_start);  // -c
    REQUIRE(c.will.has_value());
    CHECK(c.will->topic == "acme/truck-1/status");
    CHECK(c.will->payload == "offline");
    CHECK(c.will->qos == QoS::at_least_once);
    CHECK(c.will->retain);
    const auto& p = std::get<Publish>(packets[1]);
    CHECK(p.qos == QoS::exactly_once);
    const auto& rel = std::get<PublishAck>(packets[2]);
    CHECK(rel.type == PacketType::pubrel);
    CHECK(rel.packet_id == p.packet_id);
  }
}

TEST_CASE("captures: mosquitto_pub MQTT 5.0 with CONNECT, PUBLISH and will properties") {
  {
    const auto packets = decode_capture(read_file(kCaptures / "v5_publish_qos0.bin"));
    REQUIRE(packets.size() == 3);
    const auto& c = std::get<Connect>(packets[0]);
    CHECK(c.version == v5);
    CHECK(c.properties.receive_maximum == 20);  // libmosquitto's default
    CHECK(std::get<Publish>(packets[1]).payload == kPayload);
    CHECK(std::get<Disconnect>(packets[2]).reason == ReasonCode::normal_disconnection);
  }
  {
    const auto packets = decode_capture(read_file(kCaptures / "v5_publish_qos1.bin"));
    REQUIRE(packets.size() == 3);
    const auto& c = std::get<Connect>(packets[0]);
    CHECK(c.username == "acme");
    CHECK(c.password == "s3cret");
    const auto& cp = c.properties;
    CHECK(cp.session_expiry_interval == 3600u);
    CHECK(cp.receive_maximum == 20);
    CHECK(cp.maximum_packet_size == 65536u);
    CHECK(cp.topic_alias_maximum == 8);
    CHECK(cp.request_problem_information == 0);
    REQUIRE(cp.user_properties.size() == 1);
    CHECK(cp.user_properties[0] == UserProperty{"fw", "1.4.2"});
    const auto& p = std::get<Publish>(packets[1]);
    CHECK(p.qos == QoS::at_least_once);
    CHECK(p.topic == "acme/truck-1/gps");
    const auto& pp = p.properties;
    CHECK(pp.payload_format_indicator == 1);
    CHECK(pp.message_expiry_interval == 120u);
    CHECK(pp.content_type == "application/json");
    CHECK(pp.response_topic == "acme/truck-1/replies");
    CHECK(pp.correlation_data == "req-42");
    CHECK(pp.topic_alias == 1);
    REQUIRE(pp.user_properties.size() == 1);
    CHECK(pp.user_properties[0] == UserProperty{"unit", "metric"});
    CHECK(p.payload == kPayload);
    CHECK(validate_payload_format(p).has_value());
  }
  {
    const auto packets = decode_capture(read_file(kCaptures / "v5_publish_qos2.bin"));
    REQUIRE(packets.size() == 4);
    const auto& c = std::get<Connect>(packets[0]);
    REQUIRE(c.will.has_value());
    CHECK(c.will->delay_interval == 30u);
    CHECK(c.will->properties.content_type == "text/plain");
    REQUIRE(c.will->properties.user_properties.size() == 1);
    CHECK(c.will->properties.user_properties[0] == UserProperty{"reason", "lost"});
    CHECK(c.will->topic == "acme/truck-1/status");
    CHECK(c.will->payload == "offline");
    CHECK(std::get<Publish>(packets[1]).qos == QoS::exactly_once);
    CHECK(std::get<PublishAck>(packets[2]).type == PacketType::pubrel);
  }
}

TEST_CASE("captures: mosquitto_sub SUBSCRIBE and UNSUBSCRIBE") {
  {
    const auto packets = decode_capture(read_file(kCaptures / "v311_subscribe.bin"));
    REQUIRE(packets.size() == 3);
    const auto& s = std::get<Subscribe>(packets[1]);
    REQUIRE(s.subscriptions.size() == 2);
    CHECK(s.subscriptions[0] == Subscription{.filter = "acme/+/gps", .max_qos = QoS::at_least_once});
    CHECK(s.subscriptions[1] == Subscription{.filter = "acme/#", .max_qos = QoS::at_least_once});
    for (const auto& entry : s.subscriptions) CHECK(validate_topic_filter(entry.filter).has_value());
  }
  {
    const auto packets = decode_capture(read_file(kCaptures / "v5_subscribe.bin"));
    REQUIRE(packets.size() == 3);
    const auto& s = std::get<Subscribe>(packets[1]);
    CHECK(s.subscription_identifier == 7u);
    REQUIRE(s.user_properties.size() == 1);
    CHECK(s.user_properties[0] == UserProperty{"role", "console"});
    REQUIRE(s.subscriptions.size() == 2);
    CHECK(s.subscriptions[0].filter == "acme/+/gps");
    CHECK(s.subscriptions[0].max_qos == QoS::exactly_once);
    CHECK(s.subscriptions[1].filter == "$share/g1/acme/#");
    CHECK(parse_shared_filter(s.subscriptions[1].filter)->filter == "acme/#");
  }
  {
    const auto packets = decode_capture(read_file(kCaptures / "v5_unsubscribe.bin"));
    REQUIRE(packets.size() == 4);
    const auto& u = std::get<Unsubscribe>(packets[2]);
    CHECK(u.filters == std::vector<std::string_view>{"acme/+/gps"});
  }
}

TEST_CASE("captures: every split of every capture frames to the same packets") {
  for (const auto& entry : std::filesystem::directory_iterator(kCaptures)) {
    if (entry.path().extension() != ".bin") continue;
    CAPTURE(entry.path().filename().string());
    const ByteVec stream = read_file(entry.path());
    const Framed whole = frame_stream(stream, {});
    REQUIRE_FALSE(whole.error.has_value());
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
      REQUIRE(frame_stream(stream, {cut}).frames == whole.frames);
    }
  }
}
