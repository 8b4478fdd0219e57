// MQTT framing, decoding and encoding. Section numbers refer to MQTT 5.0 (OASIS 2019) unless
// they say 3.1.1 (OASIS 2014).
#include "mqtt/mqtt_packet.hpp"

#include <algorithm>
#include <bitset>
#include <cstdio>
#include <utility>

namespace telegate::gateway::mqtt {

namespace detail {
std::optional<std::size_t> find_invalid_utf8(std::string_view text, bool allow_nul) noexcept;  // mqtt_topic.cpp
}

// ---------------------------------------------------------------------------------------------
// Names

std::string_view to_string(MqttErrc code) noexcept {
  switch (code) {
    case MqttErrc::malformed: return "malformed";
    case MqttErrc::protocol_error: return "protocol_error";
    case MqttErrc::packet_too_large: return "packet_too_large";
    case MqttErrc::unsupported_protocol: return "unsupported_protocol";
    case MqttErrc::invalid_topic: return "invalid_topic";
    case MqttErrc::invalid_payload: return "invalid_payload";
    case MqttErrc::invalid_argument: return "invalid_argument";
  }
  return "unknown";
}

std::string_view to_string(ReasonCode code) noexcept {
  switch (code) {
    case ReasonCode::success: return "Success";
    case ReasonCode::granted_qos_1: return "Granted QoS 1";
    case ReasonCode::granted_qos_2: return "Granted QoS 2";
    case ReasonCode::disconnect_with_will: return "Disconnect with Will Message";
    case ReasonCode::no_matching_subscribers: return "No matching subscribers";
    case ReasonCode::no_subscription_existed: return "No subscription existed";
    case ReasonCode::continue_authentication: return "Continue authentication";
    case ReasonCode::reauthenticate: return "Re-authenticate";
    case ReasonCode::unspecified_error: return "Unspecified error";
    case ReasonCode::malformed_packet: return "Malformed Packet";
    case ReasonCode::protocol_error: return "Protocol Error";
    case ReasonCode::implementation_specific_error: return "Implementation specific error";
    case ReasonCode::unsupported_protocol_version: return "Unsupported Protocol Version";
    case ReasonCode::client_identifier_not_valid: return "Client Identifier not valid";
    case ReasonCode::bad_username_or_password: return "Bad User Name or Password";
    case ReasonCode::not_authorized: return "Not authorized";
    case ReasonCode::server_unavailable: return "Server unavailable";
    case ReasonCode::server_busy: return "Server busy";
    case ReasonCode::banned: return "Banned";
    case ReasonCode::server_shutting_down: return "Server shutting down";
    case ReasonCode::bad_authentication_method: return "Bad authentication method";
    case ReasonCode::keep_alive_timeout: return "Keep Alive timeout";
    case ReasonCode::session_taken_over: return "Session taken over";
    case ReasonCode::topic_filter_invalid: return "Topic Filter invalid";
    case ReasonCode::topic_name_invalid: return "Topic Name invalid";
    case ReasonCode::packet_identifier_in_use: return "Packet Identifier in use";
    case ReasonCode::packet_identifier_not_found: return "Packet Identifier not found";
    case ReasonCode::receive_maximum_exceeded: return "Receive Maximum exceeded";
    case ReasonCode::topic_alias_invalid: return "Topic Alias invalid";
    case ReasonCode::packet_too_large: return "Packet too large";
    case ReasonCode::message_rate_too_high: return "Message rate too high";
    case ReasonCode::quota_exceeded: return "Quota exceeded";
    case ReasonCode::administrative_action: return "Administrative action";
    case ReasonCode::payload_format_invalid: return "Payload format invalid";
    case ReasonCode::retain_not_supported: return "Retain not supported";
    case ReasonCode::qos_not_supported: return "QoS not supported";
    case ReasonCode::use_another_server: return "Use another server";
    case ReasonCode::server_moved: return "Server moved";
    case ReasonCode::shared_subscriptions_not_supported: return "Shared Subscriptions not supported";
    case ReasonCode::connection_rate_exceeded: return "Connection rate exceeded";
    case ReasonCode::maximum_connect_time: return "Maximum connect time";
    case ReasonCode::subscription_identifiers_not_supported: return "Subscription Identifiers not supported";
    case ReasonCode::wildcard_subscriptions_not_supported: return "Wildcard Subscriptions not supported";
  }
  return "Unknown";
}

std::string_view to_string(PacketType type) noexcept {
  switch (type) {
    case PacketType::connect: return "CONNECT";
    case PacketType::connack: return "CONNACK";
    case PacketType::publish: return "PUBLISH";
    case PacketType::puback: return "PUBACK";
    case PacketType::pubrec: return "PUBREC";
    case PacketType::pubrel: return "PUBREL";
    case PacketType::pubcomp: return "PUBCOMP";
    case PacketType::subscribe: return "SUBSCRIBE";
    case PacketType::suback: return "SUBACK";
    case PacketType::unsubscribe: return "UNSUBSCRIBE";
    case PacketType::unsuback: return "UNSUBACK";
    case PacketType::pingreq: return "PINGREQ";
    case PacketType::pingresp: return "PINGRESP";
    case PacketType::disconnect: return "DISCONNECT";
    case PacketType::auth: return "AUTH";
  }
  return "RESERVED";
}

std::uint8_t to_v3_connack_return_code(ReasonCode reason) noexcept {
  switch (reason) {
    case ReasonCode::success: return 0x00;
    case ReasonCode::unsupported_protocol_version: return 0x01;
    case ReasonCode::client_identifier_not_valid: return 0x02;
    case ReasonCode::bad_username_or_password: return 0x04;
    case ReasonCode::not_authorized:
    case ReasonCode::banned: return 0x05;
    default: return 0x03;  // Server unavailable: the only generic refusal 3.1.1 has
  }
}

namespace {

std::string hex(unsigned value) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "0x%02X", value);
  return buffer;
}

std::string at(std::size_t offset) { return " at offset " + std::to_string(offset); }

// Which reason codes each packet may carry (section 2.4 and the packets' own tables). A
// client that sends another is in protocol error; an encoder refuses to send one.
bool reason_allowed(PacketType type, std::uint8_t code) {
  switch (type) {
    case PacketType::connack:
      return code == 0x00 || (code >= 0x80 && code <= 0x8A) || code == 0x8C || code == 0x90 || code == 0x95 ||
             code == 0x97 || (code >= 0x99 && code <= 0x9D) || code == 0x9F;
    case PacketType::puback:
    case PacketType::pubrec:
      return code == 0x00 || code == 0x10 || code == 0x80 || code == 0x83 || code == 0x87 || code == 0x90 ||
             code == 0x91 || code == 0x97 || code == 0x99;
    case PacketType::pubrel:
    case PacketType::pubcomp: return code == 0x00 || code == 0x92;
    case PacketType::suback:
      return code <= 0x02 || code == 0x80 || code == 0x83 || code == 0x87 || code == 0x8F || code == 0x91 ||
             code == 0x97 || code == 0x9E || code == 0xA1 || code == 0xA2;
    case PacketType::unsuback:
      return code == 0x00 || code == 0x11 || code == 0x80 || code == 0x83 || code == 0x87 || code == 0x8F || code == 0x91;
    case PacketType::disconnect:
      return code == 0x00 || code == 0x04 || (code >= 0x80 && code <= 0x83) || code == 0x87 || code == 0x89 ||
             code == 0x8B || (code >= 0x8D && code <= 0x90) || (code >= 0x93 && code <= 0xA2);
    case PacketType::auth: return code == 0x00 || code == 0x18 || code == 0x19;
    default: return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Properties (section 2.2.2.2): identifier, type, name, and the packets that may carry it.

enum class PropType : std::uint8_t { byte, two, four, vbi, utf8, binary, pair };

enum PropContext : std::uint8_t {  // bits of PropInfo::contexts
  kConnect = 1 << 0, kWill = 1 << 1, kPublish = 1 << 2, kPubAck = 1 << 3,
  kSubscribe = 1 << 4, kUnsubscribe = 1 << 5, kDisconnect = 1 << 6, kAuth = 1 << 7,
};

struct PropInfo {
  std::string_view name;
  PropType type;
  std::uint8_t contexts;  // where a client may send it; 0 = never (server-only or undefined)
};

constexpr std::uint8_t kPropSessionExpiry = 0x11, kPropReceiveMaximum = 0x21, kPropMaximumPacketSize = 0x27,
    kPropTopicAliasMaximum = 0x22, kPropRequestProblemInfo = 0x17, kPropRequestResponseInfo = 0x19,
    kPropAuthMethod = 0x15, kPropAuthData = 0x16, kPropUserProperty = 0x26, kPropPayloadFormat = 0x01,
    kPropMessageExpiry = 0x02, kPropContentType = 0x03, kPropResponseTopic = 0x08, kPropCorrelationData = 0x09,
    kPropSubscriptionId = 0x0B, kPropTopicAlias = 0x23, kPropWillDelay = 0x18, kPropReasonString = 0x1F,
    kPropServerReference = 0x1C, kPropAssignedClientId = 0x12, kPropServerKeepAlive = 0x13,
    kPropResponseInformation = 0x1A, kPropMaximumQos = 0x24, kPropRetainAvailable = 0x25,
    kPropWildcardAvailable = 0x28, kPropSubIdAvailable = 0x29, kPropSharedAvailable = 0x2A;

constexpr std::size_t kPropTableSize = 0x2B;

constexpr std::array<PropInfo, kPropTableSize> make_prop_table() {
  std::array<PropInfo, kPropTableSize> t{};
  t[0x01] = {"Payload Format Indicator", PropType::byte, kPublish | kWill};
  t[0x02] = {"Message Expiry Interval", PropType::four, kPublish | kWill};
  t[0x03] = {"Content Type", PropType::utf8, kPublish | kWill};
  t[0x08] = {"Response Topic", PropType::utf8, kPublish | kWill};
  t[0x09] = {"Correlation Data", PropType::binary, kPublish | kWill};
  t[0x0B] = {"Subscription Identifier", PropType::vbi, kPublish | kSubscribe};
  t[0x11] = {"Session Expiry Interval", PropType::four, kConnect | kDisconnect};
  t[0x12] = {"Assigned Client Identifier", PropType::utf8, 0};
  t[0x13] = {"Server Keep Alive", PropType::two, 0};
  t[0x15] = {"Authentication Method", PropType::utf8, kConnect | kAuth};
  t[0x16] = {"Authentication Data", PropType::binary, kConnect | kAuth};
  t[0x17] = {"Request Problem Information", PropType::byte, kConnect};
  t[0x18] = {"Will Delay Interval", PropType::four, kWill};
  t[0x19] = {"Request Response Information", PropType::byte, kConnect};
  t[0x1A] = {"Response Information", PropType::utf8, 0};
  t[0x1C] = {"Server Reference", PropType::utf8, kDisconnect};
  t[0x1F] = {"Reason String", PropType::utf8, kPubAck | kDisconnect | kAuth};
  t[0x21] = {"Receive Maximum", PropType::two, kConnect};
  t[0x22] = {"Topic Alias Maximum", PropType::two, kConnect};
  t[0x23] = {"Topic Alias", PropType::two, kPublish};
  t[0x24] = {"Maximum QoS", PropType::byte, 0};
  t[0x25] = {"Retain Available", PropType::byte, 0};
  t[0x26] = {"User Property", PropType::pair, 0xFF};
  t[0x27] = {"Maximum Packet Size", PropType::four, kConnect};
  t[0x28] = {"Wildcard Subscription Available", PropType::byte, 0};
  t[0x29] = {"Subscription Identifier Available", PropType::byte, 0};
  t[0x2A] = {"Shared Subscription Available", PropType::byte, 0};
  return t;
}
constexpr auto kProps = make_prop_table();

std::string prop_label(std::uint32_t id) {
  std::string label = "property " + hex(id);
  if (id < kPropTableSize && !kProps[id].name.empty()) label += " " + std::string(kProps[id].name);
  return label;
}

struct PropValue {
  std::uint8_t id = 0;
  std::uint32_t number = 0;  // byte, two, four, vbi
  std::string_view text;     // utf8, binary, pair name
  std::string_view text2;    // pair value
  std::size_t offset = 0;    // of the identifier, from the packet start
};

// ---------------------------------------------------------------------------------------------
// Reading

// A cursor over one frame's body. Errors are sticky: the first one is kept, the cursor jumps to
// the end, and later reads return zeros/empties, so decoders check ok() where a bad value
// would change what they do next rather than after every read. Never reads past `data`.
class Reader {
 public:
  Reader(Bytes data, std::size_t base, std::string_view packet) : data_(data), base_(base), packet_(packet) {}

  bool ok() const noexcept { return !error_.has_value(); }
  std::size_t offset() const noexcept { return base_ + pos_; }
  std::size_t left() const noexcept { return data_.size() - pos_; }
  bool at_end() const noexcept { return pos_ == data_.size(); }
  PacketError take_error() { return std::move(*error_); }
  const std::optional<PacketError>& error() const noexcept { return error_; }

  void fail(MqttErrc code, ReasonCode reason, std::string message, std::size_t offset) {
    if (!error_) error_ = PacketError{code, reason, std::string(packet_) + ": " + message, offset};
    pos_ = data_.size();
  }
  void malformed(std::string message, std::size_t offset) {
    fail(MqttErrc::malformed, ReasonCode::malformed_packet, std::move(message), offset);
  }
  void protocol(std::string message, std::size_t offset, ReasonCode reason = ReasonCode::protocol_error) {
    fail(MqttErrc::protocol_error, reason, std::move(message), offset);
  }
  void adopt(Reader& sub) {  // after a sub-reader over part of this one finished
    if (!sub.ok() && ok()) {
      error_ = sub.take_error();
      pos_ = data_.size();
    }
  }

  bool need(std::size_t n, std::string_view what) {
    if (left() >= n) return true;
    malformed(std::string(what) + at(offset()) + " needs " + std::to_string(n) + " bytes, " +
              std::to_string(left()) + " left in the packet", offset());
    return false;
  }
  std::uint8_t u8(std::string_view what) {
    if (!need(1, what)) return 0;
    return data_[pos_++];
  }
  std::uint16_t u16(std::string_view what) {
    if (!need(2, what)) return 0;
    const auto v = static_cast<std::uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  std::uint32_t u32(std::string_view what) {
    if (!need(4, what)) return 0;
    const std::uint32_t v = (std::uint32_t{data_[pos_]} << 24) | (std::uint32_t{data_[pos_ + 1]} << 16) |
                            (std::uint32_t{data_[pos_ + 2]} << 8) | std::uint32_t{data_[pos_ + 3]};
    pos_ += 4;
    return v;
  }
  // Variable Byte Integer (section 1.5.5): at most 4 bytes, and in the fewest bytes
  // (MQTT-1.5.5-1), since a longer form only serves to smuggle past length checks.
  std::uint32_t vbi(std::string_view what) {
    const std::size_t start = offset();
    std::uint32_t value = 0;
    for (unsigned i = 0; i < 4; ++i) {
      if (!need(1, what)) return 0;
      const std::uint8_t b = data_[pos_++];
      value |= std::uint32_t{b & 0x7Fu} << (7 * i);
      if ((b & 0x80) == 0) {
        if (i > 0 && b == 0) {
          malformed(std::string(what) + at(start) + " is not in its shortest form", start);
          return 0;
        }
        return value;
      }
    }
    malformed(std::string(what) + at(start) + " uses more than 4 bytes", start);
    return 0;
  }
  std::string_view raw(std::size_t n, std::string_view what) {
    if (!need(n, what)) return {};
    const std::string_view v(reinterpret_cast<const char*>(data_.data() + pos_), n);
    pos_ += n;
    return v;
  }
  // Binary Data (section 1.5.6): two-byte length, then the bytes.
  std::string_view binary(std::string_view what) {
    const std::size_t start = offset();
    const std::uint16_t n = u16(what);
    if (!ok()) return {};
    if (left() < n) {
      malformed(std::string(what) + at(start) + " declares " + std::to_string(n) + " bytes, " +
                std::to_string(left()) + " left in the packet", start);
      return {};
    }
    return raw(n, what);
  }
  // UTF-8 Encoded String (section 1.5.4): well-formed, no U+0000 (MQTT-1.5.4-1, -2).
  std::string_view utf8(std::string_view what) {
    const std::size_t start = offset();
    const std::string_view text = binary(what);
    if (!ok()) return {};
    if (const auto bad = detail::find_invalid_utf8(text, false)) {
      const bool nul = text[*bad] == '\0';
      malformed(std::string(what) + ": UTF-8 string" + at(start) +
                    (nul ? " contains U+0000 at offset " + std::to_string(start + 2 + *bad)
                         : " is not well-formed (RFC 3629), bad byte at offset " + std::to_string(start + 2 + *bad)),
                start + 2 + *bad);
      return {};
    }
    return text;
  }
  std::string_view rest() { return raw(left(), "payload"); }

  // Reads a Property Length and the properties after it, calling visit(PropValue) for each.
  // Refuses identifiers the packet may not carry (Malformed, section 2.2.2.2) and repeats
  // of anything but User Property (Protocol Error, each property's "more than once" rule).
  template <typename Visit>
  void properties(std::uint8_t context, Visit&& visit) {
    const std::uint32_t length = vbi("property length");
    if (!ok()) return;
    const std::size_t start = offset();
    if (left() < length) {
      malformed("property length " + std::to_string(length) + at(start - 1) + " runs past the end of the packet (" +
                    std::to_string(left()) + " bytes left)", start);
      return;
    }
    Reader sub(data_.subspan(pos_, length), offset(), packet_);
    pos_ += length;
    std::bitset<kPropTableSize> seen;
    while (sub.ok() && !sub.at_end()) {
      PropValue value;
      value.offset = sub.offset();
      const std::uint32_t id = sub.vbi("property identifier");
      if (!sub.ok()) break;
      if (id >= kPropTableSize || kProps[id].name.empty()) {
        sub.malformed("unknown " + prop_label(id) + at(value.offset), value.offset);
        break;
      }
      const PropInfo& info = kProps[id];
      if ((info.contexts & context) == 0) {
        sub.malformed(prop_label(id) + at(value.offset) + " is not allowed here", value.offset);
        break;
      }
      if (id != kPropUserProperty && seen.test(id)) {
        sub.protocol(prop_label(id) + " appears twice" + at(value.offset), value.offset);
        break;
      }
      seen.set(id);
      value.id = static_cast<std::uint8_t>(id);
      const std::string what = prop_label(id);
      switch (info.type) {
        case PropType::byte: value.number = sub.u8(what); break;
        case PropType::two: value.number = sub.u16(what); break;
        case PropType::four: value.number = sub.u32(what); break;
        case PropType::vbi: value.number = sub.vbi(what); break;
        case PropType::utf8: value.text = sub.utf8(what); break;
        case PropType::binary: value.text = sub.binary(what); break;
        case PropType::pair:
          value.text = sub.utf8("User Property name");
          value.text2 = sub.utf8("User Property value");
          break;
      }
      if (!sub.ok()) break;
      visit(sub, value);
    }
    adopt(sub);
  }

 private:
  Bytes data_;
  std::size_t pos_ = 0;
  std::size_t base_;
  std::string_view packet_;
  std::optional<PacketError> error_;
};

// Checks shared by several properties; return false after failing `r`.
bool check_zero_one(Reader& r, const PropValue& v) {
  if (v.number > 1) {
    r.protocol(prop_label(v.id) + at(v.offset) + " is " + std::to_string(v.number) + ", must be 0 or 1", v.offset);
    return false;
  }
  return true;
}

// Properties of an application message (PUBLISH and Will). Returns true if handled.
bool message_property(Reader& r, const PropValue& v, MessageProperties& p) {
  switch (v.id) {
    case kPropPayloadFormat:
      if (check_zero_one(r, v)) p.payload_format_indicator = static_cast<std::uint8_t>(v.number);
      return true;
    case kPropMessageExpiry: p.message_expiry_interval = v.number; return true;
    case kPropContentType: p.content_type = v.text; return true;
    case kPropResponseTopic:
      // MQTT-3.3.2-13: a Response Topic is a topic name, so no wildcards.
      if (const auto valid = validate_topic_name(v.text); !valid) {
        r.protocol("Response Topic" + at(v.offset) + ": " + valid.error().message, v.offset,
                   ReasonCode::topic_name_invalid);
        return true;
      }
      p.response_topic = v.text;
      return true;
    case kPropCorrelationData: p.correlation_data = v.text; return true;
    case kPropUserProperty: p.user_properties.push_back({v.text, v.text2}); return true;
    default: return false;
  }
}

PacketError framing_error(MqttErrc code, ReasonCode reason, std::string message, std::size_t offset) {
  return PacketError{code, reason, std::move(message), offset};
}

// Fixed header flags (section 2.1.3): fixed values for all but PUBLISH; others are Malformed.
bool check_flags(Reader& r, const Frame& frame, std::uint8_t expected) {
  if (frame.flags() != expected) {
    r.malformed("fixed header flags are " + hex(frame.flags()) + ", must be " + hex(expected), 0);
    return false;
  }
  return true;
}

std::uint16_t packet_id(Reader& r) {
  const std::size_t start = r.offset();
  const std::uint16_t id = r.u16("packet identifier");
  if (r.ok() && id == 0) r.protocol("packet identifier 0" + at(start) + " is not allowed (MQTT-2.2.1-3)", start);
  return id;
}

void check_end(Reader& r) {
  if (r.ok() && !r.at_end()) {
    r.malformed(std::to_string(r.left()) + " unexpected bytes after the last field" + at(r.offset()), r.offset());
  }
}

template <typename T>
std::expected<T, PacketError> finish(Reader& r, T&& packet) {
  check_end(r);
  if (!r.ok()) return std::unexpected(r.take_error());
  return std::forward<T>(packet);
}

// ---------------------------------------------------------------------------------------------
// Decoders

std::expected<Publish, PacketError> decode_publish(const Frame& frame, ProtocolVersion version) {
  Reader r(frame.body, frame.header_size, "PUBLISH");
  Publish p;
  const std::uint8_t flags = frame.flags();
  p.dup = (flags & 0x08) != 0;
  p.retain = (flags & 0x01) != 0;
  const auto qos = static_cast<std::uint8_t>((flags >> 1) & 0x03);
  if (qos == 3) {
    r.malformed("QoS bits are 3 (MQTT-3.3.1-4)", 0);
    return std::unexpected(r.take_error());
  }
  p.qos = static_cast<QoS>(qos);
  if (p.dup && p.qos == QoS::at_most_once) {
    r.protocol("DUP is set on a QoS 0 message (MQTT-3.3.1-2)", 0);
    return std::unexpected(r.take_error());
  }
  const std::size_t topic_offset = r.offset();
  p.topic = r.utf8("topic name");
  if (!r.ok()) return std::unexpected(r.take_error());
  if (const auto wildcard = p.topic.find_first_of("+#"); wildcard != std::string_view::npos) {
    r.fail(MqttErrc::invalid_topic, ReasonCode::topic_name_invalid,
           std::string("topic name contains a wildcard '") + p.topic[wildcard] + "'" + at(topic_offset + 2 + wildcard),
           topic_offset + 2 + wildcard);
    return std::unexpected(r.take_error());
  }
  if (p.qos != QoS::at_most_once) p.packet_id = packet_id(r);
  if (version == ProtocolVersion::v5) {
    r.properties(kPublish, [&](Reader& sub, const PropValue& v) {
      if (message_property(sub, v, p.properties)) return;
      if (v.id == kPropTopicAlias) {
        if (v.number == 0) {
          sub.protocol("Topic Alias 0" + at(v.offset) + " is not allowed (MQTT-3.3.2-8)", v.offset,
                       ReasonCode::topic_alias_invalid);
        }
        p.properties.topic_alias = static_cast<std::uint16_t>(v.number);
      } else if (v.id == kPropSubscriptionId) {
        sub.protocol("a client must not send a Subscription Identifier" + at(v.offset) + " (MQTT-3.3.4-6)", v.offset);
      }
    });
  }
  if (!r.ok()) return std::unexpected(r.take_error());
  if (p.topic.empty() && !p.properties.topic_alias) {
    // v5: an empty topic needs a Topic Alias (Protocol Error); 3.1.1 has no aliases at all.
    if (version == ProtocolVersion::v5) {
      r.protocol("topic name is empty and there is no Topic Alias" + at(topic_offset), topic_offset);
    } else {
      r.fail(MqttErrc::invalid_topic, ReasonCode::topic_name_invalid, "topic name is empty" + at(topic_offset),
             topic_offset);
    }
    return std::unexpected(r.take_error());
  }
  p.payload = r.rest();
  return finish(r, std::move(p));
}

std::expected<PublishAck, PacketError> decode_publish_ack(const Frame& frame, PacketType type, ProtocolVersion version) {
  Reader r(frame.body, frame.header_size, to_string(type));
  PublishAck a;
  a.type = type;
  if (!check_flags(r, frame, type == PacketType::pubrel ? 0x02 : 0x00)) return std::unexpected(r.take_error());
  a.packet_id = packet_id(r);
  // v5 short forms (section 3.4.2.1): no reason code means Success, no property length means none.
  if (version == ProtocolVersion::v5 && r.ok() && !r.at_end()) {
    const std::size_t at_reason = r.offset();
    const std::uint8_t code = r.u8("reason code");
    if (!reason_allowed(type, code)) {
      r.protocol("reason code " + hex(code) + at(at_reason) + " is not defined for " + std::string(to_string(type)),
                 at_reason);
    }
    a.reason = static_cast<ReasonCode>(code);
    if (r.ok() && !r.at_end()) {
      r.properties(kPubAck, [&](Reader&, const PropValue& v) {
        if (v.id == kPropReasonString) a.reason_string = v.text;
        if (v.id == kPropUserProperty) a.user_properties.push_back({v.text, v.text2});
      });
    }
  }
  return finish(r, std::move(a));
}

std::expected<Subscribe, PacketError> decode_subscribe(const Frame& frame, ProtocolVersion version) {
  Reader r(frame.body, frame.header_size, "SUBSCRIBE");
  Subscribe s;
  if (!check_flags(r, frame, 0x02)) return std::unexpected(r.take_error());
  s.packet_id = packet_id(r);
  if (version == ProtocolVersion::v5) {
    r.properties(kSubscribe, [&](Reader& sub, const PropValue& v) {
      if (v.id == kPropSubscriptionId) {
        if (v.number == 0) sub.protocol("Subscription Identifier 0" + at(v.offset) + " is not allowed", v.offset);
        s.subscription_identifier = v.number;
      }
      if (v.id == kPropUserProperty) s.user_properties.push_back({v.text, v.text2});
    });
  }
  while (r.ok() && !r.at_end()) {
    Subscription entry;
    entry.filter = r.utf8("topic filter");
    const std::size_t at_options = r.offset();
    const std::uint8_t options = r.u8("subscription options");
    if (!r.ok()) break;
    // 3.1.1 uses bits 0-1 only; v5 adds No Local, Retain As Published and Retain Handling.
    const std::uint8_t reserved = version == ProtocolVersion::v5 ? 0xC0 : 0xFC;
    if ((options & reserved) != 0) {
      r.malformed("reserved bits of subscription options " + hex(options) + at(at_options) + " are set", at_options);
      break;
    }
    if ((options & 0x03) == 3) {
      r.malformed("subscription QoS is 3" + at(at_options), at_options);
      break;
    }
    entry.max_qos = static_cast<QoS>(options & 0x03);
    entry.no_local = (options & 0x04) != 0;
    entry.retain_as_published = (options & 0x08) != 0;
    const auto retain_handling = static_cast<std::uint8_t>((options >> 4) & 0x03);
    if (retain_handling == 3) {
      r.protocol("Retain Handling is 3" + at(at_options), at_options);
      break;
    }
    entry.retain_handling = static_cast<RetainHandling>(retain_handling);
    s.subscriptions.push_back(entry);
  }
  if (r.ok() && s.subscriptions.empty()) {
    r.protocol("no topic filter (MQTT-3.8.3-2)" + at(r.offset()), r.offset());
  }
  return finish(r, std::move(s));
}

std::expected<Unsubscribe, PacketError> decode_unsubscribe(const Frame& frame, ProtocolVersion version) {
  Reader r(frame.body, frame.header_size, "UNSUBSCRIBE");
  Unsubscribe u;
  if (!check_flags(r, frame, 0x02)) return std::unexpected(r.take_error());
  u.packet_id = packet_id(r);
  if (version == ProtocolVersion::v5) {
    r.properties(kUnsubscribe, [&](Reader&, const PropValue& v) {
      if (v.id == kPropUserProperty) u.user_properties.push_back({v.text, v.text2});
    });
  }
  while (r.ok() && !r.at_end()) {
    const std::string_view filter = r.utf8("topic filter");
    if (r.ok()) u.filters.push_back(filter);
  }
  if (r.ok() && u.filters.empty()) r.protocol("no topic filter (MQTT-3.10.3-2)" + at(r.offset()), r.offset());
  return finish(r, std::move(u));
}

std::expected<Disconnect, PacketError> decode_disconnect(const Frame& frame, ProtocolVersion version) {
  Reader r(frame.body, frame.header_size, "DISCONNECT");
  Disconnect d;
  if (!check_flags(r, frame, 0x00)) return std::unexpected(r.take_error());
  if (version == ProtocolVersion::v5 && !r.at_end()) {
    const std::size_t at_reason = r.offset();
    const std::uint8_t code = r.u8("reason code");
    if (!reason_allowed(PacketType::disconnect, code)) {
      r.protocol("reason code " + hex(code) + at(at_reason) + " is not defined for DISCONNECT", at_reason);
    }
    d.reason = static_cast<ReasonCode>(code);
    if (r.ok() && !r.at_end()) {
      r.properties(kDisconnect, [&](Reader&, const PropValue& v) {
        if (v.id == kPropSessionExpiry) d.session_expiry_interval = v.number;
        if (v.id == kPropReasonString) d.reason_string = v.text;
        if (v.id == kPropServerReference) d.server_reference = v.text;
        if (v.id == kPropUserProperty) d.user_properties.push_back({v.text, v.text2});
      });
    }
  }
  return finish(r, std::move(d));
}

std::expected<Auth, PacketError> decode_auth(const Frame& frame) {
  Reader r(frame.body, frame.header_size, "AUTH");
  Auth a;
  if (!check_flags(r, frame, 0x00)) return std::unexpected(r.take_error());
  if (r.at_end()) return a;  // Remaining Length 0: Success without properties
  const std::size_t at_reason = r.offset();
  const std::uint8_t code = r.u8("reason code");
  if (!reason_allowed(PacketType::auth, code)) {
    r.protocol("reason code " + hex(code) + at(at_reason) + " is not defined for AUTH", at_reason);
  }
  a.reason = static_cast<ReasonCode>(code);
  if (r.ok() && !r.at_end()) {
    r.properties(kAuth, [&](Reader&, const PropValue& v) {
      if (v.id == kPropAuthMethod) a.authentication_method = v.text;
      if (v.id == kPropAuthData) a.authentication_data = v.text;
      if (v.id == kPropReasonString) a.reason_string = v.text;
      if (v.id == kPropUserProperty) a.user_properties.push_back({v.text, v.text2});
    });
  }
  if (r.ok() && !a.authentication_method) {
    r.protocol("Authentication Method is missing (section 3.15.2.2.2)" + at(at_reason), at_reason);
  }
  return finish(r, std::move(a));
}

std::expected<PingReq, PacketError> decode_pingreq(const Frame& frame) {
  Reader r(frame.body, frame.header_size, "PINGREQ");
  if (!check_flags(r, frame, 0x00)) return std::unexpected(r.take_error());
  return finish(r, PingReq{});
}

}  // namespace

std::expected<Connect, PacketError> decode_connect(const Frame& frame) {
  Reader r(frame.body, frame.header_size, "CONNECT");
  Connect c;
  if (frame.type_bits() != static_cast<std::uint8_t>(PacketType::connect)) {
    r.protocol("the first packet is " + std::string(to_string(static_cast<PacketType>(frame.type_bits()))) +
                   ", not CONNECT (MQTT-3.1.0-1)", 0);
    return std::unexpected(r.take_error());
  }
  if (!check_flags(r, frame, 0x00)) return std::unexpected(r.take_error());
  // Protocol name and level (sections 3.1.2.1-2). Refused with 0x84 so a v3.1 ("MQIsdp")
  // client learns the server does not speak its version (3.1.1: return code 0x01).
  const std::size_t at_name = r.offset();
  const std::string_view name = r.binary("protocol name");
  if (!r.ok()) return std::unexpected(r.take_error());
  if (name != "MQTT") {
    r.fail(MqttErrc::unsupported_protocol, ReasonCode::unsupported_protocol_version,
           name == "MQIsdp" ? "protocol MQIsdp (MQTT 3.1) is not supported, only MQTT 3.1.1 and 5.0"
                            : "protocol name" + at(at_name) + " is not \"MQTT\"",
           at_name);
    return std::unexpected(r.take_error());
  }
  const std::size_t at_level = r.offset();
  const std::uint8_t level = r.u8("protocol level");
  if (!r.ok()) return std::unexpected(r.take_error());
  if (level != 4 && level != 5) {
    r.fail(MqttErrc::unsupported_protocol, ReasonCode::unsupported_protocol_version,
           "protocol level " + std::to_string(level) + at(at_level) + " is not supported (4 = 3.1.1, 5 = 5.0)",
           at_level);
    return std::unexpected(r.take_error());
  }
  c.version = static_cast<ProtocolVersion>(level);
  const bool v5 = c.version == ProtocolVersion::v5;

  // Connect flags (section 3.1.2.3).
  const std::size_t at_flags = r.offset();
  const std::uint8_t flags = r.u8("connect flags");
  if (!r.ok()) return std::unexpected(r.take_error());
  if ((flags & 0x01) != 0) {
    r.malformed("reserved flag bit 0 is set" + at(at_flags) + " (MQTT-3.1.2-3)", at_flags);
    return std::unexpected(r.take_error());
  }
  c.clean_start = (flags & 0x02) != 0;
  const bool will_flag = (flags & 0x04) != 0;
  const auto will_qos = static_cast<std::uint8_t>((flags >> 3) & 0x03);
  const bool will_retain = (flags & 0x20) != 0;
  const bool password_flag = (flags & 0x40) != 0;
  const bool username_flag = (flags & 0x80) != 0;
  if (will_qos == 3) {
    r.malformed("Will QoS is 3" + at(at_flags) + " (MQTT-3.1.2-12)", at_flags);
    return std::unexpected(r.take_error());
  }
  if (!will_flag && (will_qos != 0 || will_retain)) {
    r.malformed("Will QoS or Will Retain is set without the Will Flag" + at(at_flags) + " (MQTT-3.1.2-11, -13)",
                at_flags);
    return std::unexpected(r.take_error());
  }
  if (!v5 && password_flag && !username_flag) {
    r.malformed("Password Flag is set without the User Name Flag" + at(at_flags) + " (3.1.1: MQTT-3.1.2-22)",
                at_flags);
    return std::unexpected(r.take_error());
  }
  c.keep_alive = r.u16("keep alive");

  if (v5) {
    r.properties(kConnect, [&](Reader& sub, const PropValue& v) {
      auto& p = c.properties;
      switch (v.id) {
        case kPropSessionExpiry: p.session_expiry_interval = v.number; break;
        case kPropReceiveMaximum:
          if (v.number == 0) sub.protocol("Receive Maximum 0" + at(v.offset) + " is not allowed", v.offset);
          p.receive_maximum = static_cast<std::uint16_t>(v.number);
          break;
        case kPropMaximumPacketSize:
          if (v.number == 0) sub.protocol("Maximum Packet Size 0" + at(v.offset) + " is not allowed", v.offset);
          p.maximum_packet_size = v.number;
          break;
        case kPropTopicAliasMaximum: p.topic_alias_maximum = static_cast<std::uint16_t>(v.number); break;
        case kPropRequestResponseInfo:
          if (check_zero_one(sub, v)) p.request_response_information = static_cast<std::uint8_t>(v.number);
          break;
        case kPropRequestProblemInfo:
          if (check_zero_one(sub, v)) p.request_problem_information = static_cast<std::uint8_t>(v.number);
          break;
        case kPropAuthMethod: p.authentication_method = v.text; break;
        case kPropAuthData: p.authentication_data = v.text; break;
        case kPropUserProperty: p.user_properties.push_back({v.text, v.text2}); break;
        default: break;
      }
    });
    if (r.ok() && c.properties.authentication_data && !c.properties.authentication_method) {
      r.protocol("Authentication Data without Authentication Method (section 3.1.2.11.10)", at_flags);
    }
  }

  // Payload (section 3.1.3): client id, will properties/topic/payload, user name, password.
  const std::size_t at_client_id = r.offset();
  c.client_id = r.utf8("client identifier");
  if (r.ok() && !v5 && c.client_id.empty() && !c.clean_start) {
    r.fail(MqttErrc::protocol_error, ReasonCode::client_identifier_not_valid,
           "empty client identifier needs Clean Session" + at(at_client_id) + " (3.1.1: MQTT-3.1.3-8)", at_client_id);
  }
  if (will_flag && r.ok()) {
    Will will;
    will.qos = static_cast<QoS>(will_qos);
    will.retain = will_retain;
    if (v5) {
      r.properties(kWill, [&](Reader& sub, const PropValue& v) {
        if (message_property(sub, v, will.properties)) return;
        if (v.id == kPropWillDelay) will.delay_interval = v.number;
      });
    }
    const std::size_t at_topic = r.offset();
    will.topic = r.utf8("will topic");
    if (r.ok()) {
      if (const auto valid = validate_topic_name(will.topic); !valid) {
        r.fail(MqttErrc::invalid_topic, ReasonCode::topic_name_invalid,
               "will topic" + at(at_topic) + ": " + valid.error().message, at_topic + 2 + valid.error().offset);
      }
    }
    will.payload = r.binary("will payload");
    c.will = std::move(will);
  }
  if (username_flag) c.username = r.utf8("user name");
  if (password_flag) c.password = r.binary("password");
  return finish(r, std::move(c));
}

std::expected<Packet, PacketError> decode_packet(const Frame& frame, ProtocolVersion version) {
  const auto wrap = [](auto&& decoded) -> std::expected<Packet, PacketError> {
    if (!decoded) return std::unexpected(std::move(decoded.error()));
    return Packet(std::move(*decoded));
  };
  const std::uint8_t type = frame.type_bits();
  switch (type) {
    case 1: return wrap(decode_connect(frame));
    case 3: return wrap(decode_publish(frame, version));
    case 4: case 5: case 6: case 7:
      return wrap(decode_publish_ack(frame, static_cast<PacketType>(type), version));
    case 8: return wrap(decode_subscribe(frame, version));
    case 10: return wrap(decode_unsubscribe(frame, version));
    case 12: return wrap(decode_pingreq(frame));
    case 14: return wrap(decode_disconnect(frame, version));
    case 15:
      if (version == ProtocolVersion::v5) return wrap(decode_auth(frame));
      return std::unexpected(framing_error(MqttErrc::malformed, ReasonCode::malformed_packet,
                                           "packet type 15 is reserved in MQTT 3.1.1 (AUTH is MQTT 5)", 0));
    case 2: case 9: case 11: case 13:
      return std::unexpected(framing_error(MqttErrc::protocol_error, ReasonCode::protocol_error,
          std::string(to_string(static_cast<PacketType>(type))) + " is sent only by servers", 0));
    default:
      return std::unexpected(framing_error(MqttErrc::malformed, ReasonCode::malformed_packet,
                                           "packet type 0 is reserved", 0));
  }
}

std::expected<void, PacketError> validate_payload_format(const Publish& publish) {
  if (publish.properties.payload_format_indicator != 1) return {};
  // The payload is "UTF-8 Encoded Character Data" (section 3.3.2.3.2): RFC 3629, but unlike
  // UTF-8 Encoded Strings U+0000 is a character like any other there.
  if (const auto bad = detail::find_invalid_utf8(publish.payload, true)) {
    return std::unexpected(PacketError{MqttErrc::invalid_payload, ReasonCode::payload_format_invalid,
        "PUBLISH: Payload Format Indicator is 1 but the payload is not well-formed UTF-8 at payload byte " +
            std::to_string(*bad), *bad});
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Framing

FrameReader::FrameReader(std::uint32_t max_packet_size) noexcept
    : max_packet_size_(std::clamp<std::uint32_t>(max_packet_size, 2, kMaxPacketSizeLimit)) {}

void FrameReader::reset() noexcept {
  state_ = State::type_byte;
  first_byte_ = 0;
  length_bytes_ = 0;
  remaining_ = 0;
  stream_offset_ = 0;
  consumed_total_ = 0;
  body_.clear();
  error_.reset();
}

std::expected<FrameReader::Step, PacketError> FrameReader::read(Bytes input) {
  if (state_ == State::failed) return std::unexpected(*error_);
  const auto fail = [&](MqttErrc code, ReasonCode reason, std::string message) -> std::unexpected<PacketError> {
    state_ = State::failed;
    error_ = PacketError{code, reason, std::move(message), static_cast<std::size_t>(stream_offset_)};
    return std::unexpected(*error_);
  };
  Step step;
  std::size_t i = 0;
  const auto complete = [&](Bytes body) {
    step.frame = Frame{first_byte_, std::size_t{1} + length_bytes_, body};
    state_ = State::type_byte;
  };
  while (i < input.size() && !step.frame) {
    switch (state_) {
      case State::type_byte:
        stream_offset_ = consumed_total_ + i;
        first_byte_ = input[i++];
        length_bytes_ = 0;
        remaining_ = 0;
        body_.clear();
        state_ = State::length;
        break;
      case State::length: {
        const std::uint8_t b = input[i++];
        remaining_ |= std::uint32_t{b & 0x7Fu} << (7 * length_bytes_);
        ++length_bytes_;
        if ((b & 0x80) != 0) {
          if (length_bytes_ == 4) {
            return fail(MqttErrc::malformed, ReasonCode::malformed_packet,
                        "remaining length uses more than 4 bytes (packet at stream offset " +
                            std::to_string(stream_offset_) + ")");
          }
          break;
        }
        if (length_bytes_ > 1 && b == 0) {
          return fail(MqttErrc::malformed, ReasonCode::malformed_packet,
                      "remaining length is not in its shortest form (packet at stream offset " +
                          std::to_string(stream_offset_) + ")");
        }
        // The memory bound: refuse before a byte of the body is held.
        const std::uint64_t size = std::uint64_t{1} + length_bytes_ + remaining_;
        if (size > max_packet_size_) {
          return fail(MqttErrc::packet_too_large, ReasonCode::packet_too_large,
                      "packet of " + std::to_string(size) + " bytes exceeds the Maximum Packet Size of " +
                          std::to_string(max_packet_size_) + " (packet at stream offset " +
                          std::to_string(stream_offset_) + ")");
        }
        if (remaining_ == 0) {
          complete({});
        } else {
          state_ = State::body;
        }
        break;
      }
      case State::body: {
        const std::size_t available = input.size() - i;
        const std::size_t missing = remaining_ - body_.size();
        if (body_.empty() && available >= remaining_) {
          // The whole body is in this input: return it in place, no copy.
          complete(input.subspan(i, remaining_));
          i += remaining_;
          break;
        }
        // Split across reads: hold the part we have. No reserve(remaining_): the declared size
        // is only a promise, so memory follows the bytes that actually arrived.
        const std::size_t take = std::min(available, missing);
        body_.insert(body_.end(), input.begin() + static_cast<std::ptrdiff_t>(i),
                     input.begin() + static_cast<std::ptrdiff_t>(i + take));
        i += take;
        if (body_.size() == remaining_) complete(Bytes(body_));
        break;
      }
      case State::failed: return std::unexpected(*error_);
    }
  }
  consumed_total_ += i;
  step.consumed = i;
  return step;
}

// ---------------------------------------------------------------------------------------------
// Encoding

namespace {

std::size_t vbi_size(std::size_t value) {
  return value < 128 ? 1 : value < 16'384 ? 2 : value < 2'097'152 ? 3 : 4;
}

// Builds one packet body. Errors (a string too long for its 2-byte length) are sticky like the
// Reader's, so encoders check once at the end.
class Writer {
 public:
  explicit Writer(std::string_view packet) : packet_(packet) {}

  void u8(std::uint8_t v) { bytes_.push_back(v); }
  void u16(std::uint16_t v) {
    bytes_.push_back(static_cast<std::uint8_t>(v >> 8));
    bytes_.push_back(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes_.push_back(static_cast<std::uint8_t>(v >> shift));
  }
  void vbi(std::size_t v) {
    if (v > kMaxRemainingLength) return invalid("a variable byte integer is above 268,435,455");
    do {
      auto b = static_cast<std::uint8_t>(v & 0x7F);
      v >>= 7;
      if (v != 0) b = static_cast<std::uint8_t>(b | 0x80);
      bytes_.push_back(b);
    } while (v != 0);
  }
  void raw(std::string_view v) { bytes_.insert(bytes_.end(), v.begin(), v.end()); }
  void binary(std::string_view v, std::string_view what) {
    if (v.size() > 65'535) return invalid(std::string(what) + " is longer than 65,535 bytes");
    u16(static_cast<std::uint16_t>(v.size()));
    raw(v);
  }
  void utf8(std::string_view v, std::string_view what) {
    if (detail::find_invalid_utf8(v, false)) return invalid(std::string(what) + " is not well-formed UTF-8 without U+0000");
    binary(v, what);
  }
  void append(const Writer& other) {
    bytes_.insert(bytes_.end(), other.bytes_.begin(), other.bytes_.end());
    if (!error_ && other.error_) error_ = other.error_;
  }
  void take_error(const Writer& other) {
    if (!error_ && other.error_) error_ = other.error_;
  }
  void invalid(std::string message) {
    if (!error_) error_ = PacketError{MqttErrc::invalid_argument, ReasonCode::implementation_specific_error,
                                      std::string(packet_) + ": " + message, 0};
  }
  std::size_t size() const { return bytes_.size(); }
  bool ok() const { return !error_; }
  const std::vector<std::uint8_t>& bytes() const { return bytes_; }
  const std::optional<PacketError>& error() const { return error_; }

  // Property helpers: identifier, then the value.
  void prop_u8(std::uint8_t id, std::optional<std::uint8_t> v) { if (v) { u8(id); u8(*v); } }
  void prop_bool(std::uint8_t id, std::optional<bool> v) { if (v) { u8(id); u8(*v ? 1 : 0); } }
  void prop_u16(std::uint8_t id, std::optional<std::uint16_t> v) { if (v) { u8(id); u16(*v); } }
  void prop_u32(std::uint8_t id, std::optional<std::uint32_t> v) { if (v) { u8(id); u32(*v); } }
  void prop_utf8(std::uint8_t id, std::optional<std::string_view> v) {
    if (v) { u8(id); utf8(*v, kProps[id].name); }
  }
  void prop_binary(std::uint8_t id, std::optional<std::string_view> v) {
    if (v) { u8(id); binary(*v, kProps[id].name); }
  }
  void user_properties(const std::vector<UserProperty>& list) {
    for (const auto& [name, value] : list) {
      u8(kPropUserProperty);
      utf8(name, "User Property name");
      utf8(value, "User Property value");
    }
  }
  // Property Length + properties.
  void properties(const Writer& props) {
    vbi(props.size());
    append(props);
  }

 private:
  std::string_view packet_;
  std::vector<std::uint8_t> bytes_;
  std::optional<PacketError> error_;
};

void message_properties(Writer& w, const MessageProperties& p) {
  w.prop_u8(kPropPayloadFormat, p.payload_format_indicator);
  w.prop_u32(kPropMessageExpiry, p.message_expiry_interval);
  w.prop_utf8(kPropContentType, p.content_type);
  w.prop_utf8(kPropResponseTopic, p.response_topic);
  w.prop_binary(kPropCorrelationData, p.correlation_data);
  w.user_properties(p.user_properties);
}

// Prepends the fixed header and appends the packet to `out`, if it fits max_packet_size.
EncodeResult emit(std::uint8_t first_byte, const Writer& body, std::vector<std::uint8_t>& out,
                  std::uint32_t max_packet_size, std::string_view packet) {
  if (!body.ok()) return std::unexpected(*body.error());
  const std::size_t size = 1 + vbi_size(body.size()) + body.size();
  if (body.size() > kMaxRemainingLength || size > max_packet_size) {
    return std::unexpected(PacketError{MqttErrc::packet_too_large, ReasonCode::packet_too_large,
        std::string(packet) + ": " + std::to_string(size) + " bytes exceed the peer's Maximum Packet Size of " +
            std::to_string(max_packet_size), 0});
  }
  Writer header(packet);
  header.u8(first_byte);
  header.vbi(body.size());
  out.insert(out.end(), header.bytes().begin(), header.bytes().end());
  out.insert(out.end(), body.bytes().begin(), body.bytes().end());
  return size;
}

// Reason String and User Properties "can be omitted" to respect the receiver's Maximum Packet
// Size (e.g. MQTT-3.2.2-19/20, 3.4.2.2.2): build with them, and again without if too large.
template <typename Build>
EncodeResult emit_droppable(std::uint8_t first_byte, Build&& build, std::vector<std::uint8_t>& out,
                            std::uint32_t max_packet_size, std::string_view packet) {
  const Writer full = build(true);
  if (!full.ok()) return std::unexpected(*full.error());
  if (1 + vbi_size(full.size()) + full.size() <= max_packet_size) {
    return emit(first_byte, full, out, max_packet_size, packet);
  }
  return emit(first_byte, build(false), out, max_packet_size, packet);
}

PacketError invalid(std::string message) {
  return PacketError{MqttErrc::invalid_argument, ReasonCode::implementation_specific_error, std::move(message), 0};
}

std::uint8_t type_byte(PacketType type, std::uint8_t flags = 0) {
  return static_cast<std::uint8_t>((static_cast<std::uint8_t>(type) << 4) | flags);
}

}  // namespace

EncodeResult encode(const Connack& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size) {
  if (packet.session_present && packet.reason != ReasonCode::success) {
    return std::unexpected(invalid("CONNACK: Session Present must be 0 when the connection is refused (MQTT-3.2.2-6)"));
  }
  if (version == ProtocolVersion::v311) {
    Writer w("CONNACK");
    w.u8(packet.session_present ? 1 : 0);
    w.u8(to_v3_connack_return_code(packet.reason));
    return emit(type_byte(PacketType::connack), w, out, max_packet_size, "CONNACK");
  }
  const auto code = static_cast<std::uint8_t>(packet.reason);
  if (!reason_allowed(PacketType::connack, code)) {
    return std::unexpected(invalid("CONNACK: reason code " + hex(code) + " is not defined for CONNACK"));
  }
  const auto& p = packet.properties;
  if (p.maximum_qos && *p.maximum_qos == QoS::exactly_once) {
    return std::unexpected(invalid("CONNACK: Maximum QoS may only be sent as 0 or 1 (MQTT-3.2.2-9)"));
  }
  if ((p.receive_maximum && *p.receive_maximum == 0) || (p.maximum_packet_size && *p.maximum_packet_size == 0)) {
    return std::unexpected(invalid("CONNACK: Receive Maximum and Maximum Packet Size cannot be 0"));
  }
  const auto build = [&](bool optional) {
    Writer props("CONNACK");
    props.prop_u32(kPropSessionExpiry, p.session_expiry_interval);
    props.prop_u16(kPropReceiveMaximum, p.receive_maximum);
    if (p.maximum_qos) props.prop_u8(kPropMaximumQos, static_cast<std::uint8_t>(*p.maximum_qos));
    props.prop_bool(kPropRetainAvailable, p.retain_available);
    props.prop_u32(kPropMaximumPacketSize, p.maximum_packet_size);
    props.prop_utf8(kPropAssignedClientId, p.assigned_client_identifier);
    props.prop_u16(kPropTopicAliasMaximum, p.topic_alias_maximum);
    if (optional) props.prop_utf8(kPropReasonString, p.reason_string);
    if (optional) props.user_properties(p.user_properties);
    props.prop_bool(kPropWildcardAvailable, p.wildcard_subscription_available);
    props.prop_bool(kPropSubIdAvailable, p.subscription_identifiers_available);
    props.prop_bool(kPropSharedAvailable, p.shared_subscription_available);
    props.prop_u16(kPropServerKeepAlive, p.server_keep_alive);
    props.prop_utf8(kPropResponseInformation, p.response_information);
    props.prop_utf8(kPropServerReference, p.server_reference);
    props.prop_utf8(kPropAuthMethod, p.authentication_method);
    props.prop_binary(kPropAuthData, p.authentication_data);
    Writer w("CONNACK");
    w.u8(packet.session_present ? 1 : 0);
    w.u8(code);
    w.properties(props);
    return w;
  };
  return emit_droppable(type_byte(PacketType::connack), build, out, max_packet_size, "CONNACK");
}

EncodeResult encode(const PublishAck& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size) {
  const PacketType type = packet.type;
  if (type != PacketType::puback && type != PacketType::pubrec && type != PacketType::pubrel &&
      type != PacketType::pubcomp) {
    return std::unexpected(invalid("PublishAck: type must be PUBACK, PUBREC, PUBREL or PUBCOMP"));
  }
  const std::string_view name = to_string(type);
  const std::uint8_t first = type_byte(type, type == PacketType::pubrel ? 0x02 : 0x00);
  if (packet.packet_id == 0) return std::unexpected(invalid(std::string(name) + ": packet identifier 0"));
  const auto code = static_cast<std::uint8_t>(packet.reason);
  if (version == ProtocolVersion::v311) {
    // 3.1.1 acks cannot say no: sending one would acknowledge a message that was refused.
    if (packet.reason != ReasonCode::success) {
      return std::unexpected(invalid(std::string(name) + ": MQTT 3.1.1 cannot carry reason code " + hex(code) +
                                     "; close the connection instead"));
    }
    Writer w(name);
    w.u16(packet.packet_id);
    return emit(first, w, out, max_packet_size, name);
  }
  if (!reason_allowed(type, code)) {
    return std::unexpected(invalid(std::string(name) + ": reason code " + hex(code) + " is not defined for " +
                                   std::string(name)));
  }
  const auto build = [&](bool optional) {
    Writer w(name);
    w.u16(packet.packet_id);
    Writer props(name);
    if (optional) props.prop_utf8(kPropReasonString, packet.reason_string);
    if (optional) props.user_properties(packet.user_properties);
    // Short forms (section 3.4.2.1): omit what carries nothing.
    if (props.size() > 0 || code != 0) w.u8(code);
    if (props.size() > 0) w.properties(props);
    w.take_error(props);  // a property error, if the short form left the properties out
    return w;
  };
  return emit_droppable(first, build, out, max_packet_size, name);
}

EncodeResult encode(const Suback& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size) {
  if (packet.packet_id == 0) return std::unexpected(invalid("SUBACK: packet identifier 0"));
  if (packet.reasons.empty()) return std::unexpected(invalid("SUBACK: no reason code (one per subscription)"));
  for (const ReasonCode reason : packet.reasons) {
    if (!reason_allowed(PacketType::suback, static_cast<std::uint8_t>(reason))) {
      return std::unexpected(invalid("SUBACK: reason code " + hex(static_cast<std::uint8_t>(reason)) +
                                     " is not defined for SUBACK"));
    }
  }
  const auto build = [&](bool optional) {
    Writer w("SUBACK");
    w.u16(packet.packet_id);
    if (version == ProtocolVersion::v5) {
      Writer props("SUBACK");
      if (optional) props.prop_utf8(kPropReasonString, packet.reason_string);
      if (optional) props.user_properties(packet.user_properties);
      w.properties(props);
    }
    for (const ReasonCode reason : packet.reasons) {
      const auto code = static_cast<std::uint8_t>(reason);
      // 3.1.1 has one failure code, 0x80, for all of v5's refusals.
      w.u8(version == ProtocolVersion::v311 && code >= 0x80 ? std::uint8_t{0x80} : code);
    }
    return w;
  };
  return emit_droppable(type_byte(PacketType::suback), build, out, max_packet_size, "SUBACK");
}

EncodeResult encode(const Unsuback& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size) {
  if (packet.packet_id == 0) return std::unexpected(invalid("UNSUBACK: packet identifier 0"));
  if (version == ProtocolVersion::v311) {
    Writer w("UNSUBACK");
    w.u16(packet.packet_id);
    return emit(type_byte(PacketType::unsuback), w, out, max_packet_size, "UNSUBACK");
  }
  if (packet.reasons.empty()) return std::unexpected(invalid("UNSUBACK: no reason code (one per topic filter)"));
  for (const ReasonCode reason : packet.reasons) {
    if (!reason_allowed(PacketType::unsuback, static_cast<std::uint8_t>(reason))) {
      return std::unexpected(invalid("UNSUBACK: reason code " + hex(static_cast<std::uint8_t>(reason)) +
                                     " is not defined for UNSUBACK"));
    }
  }
  const auto build = [&](bool optional) {
    Writer w("UNSUBACK");
    w.u16(packet.packet_id);
    Writer props("UNSUBACK");
    if (optional) props.prop_utf8(kPropReasonString, packet.reason_string);
    if (optional) props.user_properties(packet.user_properties);
    w.properties(props);
    for (const ReasonCode reason : packet.reasons) w.u8(static_cast<std::uint8_t>(reason));
    return w;
  };
  return emit_droppable(type_byte(PacketType::unsuback), build, out, max_packet_size, "UNSUBACK");
}

EncodeResult encode(const PingResp&, ProtocolVersion, std::vector<std::uint8_t>& out, std::uint32_t max_packet_size) {
  return emit(type_byte(PacketType::pingresp), Writer("PINGRESP"), out, max_packet_size, "PINGRESP");
}

EncodeResult encode(const Disconnect& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size) {
  if (version == ProtocolVersion::v311) {
    return std::unexpected(invalid("DISCONNECT: a MQTT 3.1.1 server sends none; close the connection instead"));
  }
  const auto code = static_cast<std::uint8_t>(packet.reason);
  if (!reason_allowed(PacketType::disconnect, code)) {
    return std::unexpected(invalid("DISCONNECT: reason code " + hex(code) + " is not defined for DISCONNECT"));
  }
  const auto build = [&](bool optional) {
    Writer props("DISCONNECT");
    props.prop_u32(kPropSessionExpiry, packet.session_expiry_interval);
    if (optional) props.prop_utf8(kPropReasonString, packet.reason_string);
    props.prop_utf8(kPropServerReference, packet.server_reference);
    if (optional) props.user_properties(packet.user_properties);
    Writer w("DISCONNECT");
    // Short forms (section 3.14.2.1): Remaining Length 0 is Normal disconnection, no properties.
    if (props.size() > 0 || code != 0) w.u8(code);
    if (props.size() > 0) w.properties(props);
    w.take_error(props);
    return w;
  };
  return emit_droppable(type_byte(PacketType::disconnect), build, out, max_packet_size, "DISCONNECT");
}

EncodeResult encode(const Auth& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size) {
  if (version == ProtocolVersion::v311) return std::unexpected(invalid("AUTH: MQTT 3.1.1 has no AUTH packet"));
  const auto code = static_cast<std::uint8_t>(packet.reason);
  if (!reason_allowed(PacketType::auth, code)) {
    return std::unexpected(invalid("AUTH: reason code " + hex(code) + " is not defined for AUTH"));
  }
  const bool empty = code == 0 && !packet.authentication_method && !packet.authentication_data &&
                     !packet.reason_string && packet.user_properties.empty();
  if (!empty && !packet.authentication_method) {
    return std::unexpected(invalid("AUTH: Authentication Method is required"));
  }
  const auto build = [&](bool optional) {
    Writer w("AUTH");
    if (empty) return w;
    Writer props("AUTH");
    props.prop_utf8(kPropAuthMethod, packet.authentication_method);
    props.prop_binary(kPropAuthData, packet.authentication_data);
    if (optional) props.prop_utf8(kPropReasonString, packet.reason_string);
    if (optional) props.user_properties(packet.user_properties);
    w.u8(code);
    w.properties(props);
    return w;
  };
  return emit_droppable(type_byte(PacketType::auth), build, out, max_packet_size, "AUTH");
}

EncodeResult encode(const Publish& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size) {
  const auto qos = static_cast<std::uint8_t>(packet.qos);
  if (qos > 2) return std::unexpected(invalid("PUBLISH: QoS above 2"));
  if (packet.dup && qos == 0) return std::unexpected(invalid("PUBLISH: DUP on a QoS 0 message"));
  if (qos > 0 && packet.packet_id == 0) return std::unexpected(invalid("PUBLISH: QoS > 0 needs a packet identifier"));
  if (packet.topic.find_first_of("+#") != std::string_view::npos) {
    return std::unexpected(invalid("PUBLISH: topic name contains a wildcard"));
  }
  if (packet.topic.empty() && (version == ProtocolVersion::v311 || !packet.properties.topic_alias)) {
    return std::unexpected(invalid("PUBLISH: empty topic name without a Topic Alias"));
  }
  const auto& p = packet.properties;
  if (p.topic_alias && *p.topic_alias == 0) return std::unexpected(invalid("PUBLISH: Topic Alias 0"));
  Writer w("PUBLISH");
  w.utf8(packet.topic, "topic name");
  if (qos > 0) w.u16(packet.packet_id);
  if (version == ProtocolVersion::v5) {
    Writer props("PUBLISH");
    message_properties(props, p);
    props.prop_u16(kPropTopicAlias, p.topic_alias);
    for (const std::uint32_t id : p.subscription_identifiers) {
      if (id == 0) props.invalid("Subscription Identifier 0");
      props.u8(kPropSubscriptionId);
      props.vbi(id);
    }
    w.properties(props);
  }
  w.raw(packet.payload);
  const auto flags = static_cast<std::uint8_t>((packet.dup ? 0x08 : 0) | (qos << 1) | (packet.retain ? 1 : 0));
  return emit(type_byte(PacketType::publish, flags), w, out, max_packet_size, "PUBLISH");
}

EncodeResult encode(const Connect& packet, std::vector<std::uint8_t>& out) {
  const bool v5 = packet.version == ProtocolVersion::v5;
  if (!v5 && packet.password && !packet.username) {
    return std::unexpected(invalid("CONNECT: MQTT 3.1.1 needs a user name to send a password"));
  }
  Writer w("CONNECT");
  w.binary("MQTT", "protocol name");
  w.u8(static_cast<std::uint8_t>(packet.version));
  std::uint8_t flags = 0;
  if (packet.clean_start) flags |= 0x02;
  if (packet.will) {
    if (static_cast<std::uint8_t>(packet.will->qos) > 2) return std::unexpected(invalid("CONNECT: Will QoS above 2"));
    flags = static_cast<std::uint8_t>(flags | 0x04 | (static_cast<std::uint8_t>(packet.will->qos) << 3) |
                                      (packet.will->retain ? 0x20 : 0));
  }
  if (packet.password) flags |= 0x40;
  if (packet.username) flags |= 0x80;
  w.u8(flags);
  w.u16(packet.keep_alive);
  if (v5) {
    const auto& p = packet.properties;
    Writer props("CONNECT");
    props.prop_u32(kPropSessionExpiry, p.session_expiry_interval);
    props.prop_u16(kPropReceiveMaximum, p.receive_maximum);
    props.prop_u32(kPropMaximumPacketSize, p.maximum_packet_size);
    props.prop_u16(kPropTopicAliasMaximum, p.topic_alias_maximum);
    props.prop_u8(kPropRequestResponseInfo, p.request_response_information);
    props.prop_u8(kPropRequestProblemInfo, p.request_problem_information);
    props.prop_utf8(kPropAuthMethod, p.authentication_method);
    props.prop_binary(kPropAuthData, p.authentication_data);
    props.user_properties(p.user_properties);
    w.properties(props);
  }
  w.utf8(packet.client_id, "client identifier");
  if (packet.will) {
    if (v5) {
      Writer props("CONNECT");
      props.prop_u32(kPropWillDelay, packet.will->delay_interval);
      message_properties(props, packet.will->properties);
      w.properties(props);
    }
    w.utf8(packet.will->topic, "will topic");
    w.binary(packet.will->payload, "will payload");
  }
  if (packet.username) w.utf8(*packet.username, "user name");
  if (packet.password) w.binary(*packet.password, "password");
  return emit(type_byte(PacketType::connect), w, out, kMaxPacketSizeLimit, "CONNECT");
}

EncodeResult encode(const Subscribe& packet, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  if (packet.subscriptions.empty()) return std::unexpected(invalid("SUBSCRIBE: no topic filter"));
  Writer w("SUBSCRIBE");
  w.u16(packet.packet_id);
  if (version == ProtocolVersion::v5) {
    Writer props("SUBSCRIBE");
    if (packet.subscription_identifier) {
      props.u8(kPropSubscriptionId);
      props.vbi(*packet.subscription_identifier);
    }
    props.user_properties(packet.user_properties);
    w.properties(props);
  }
  for (const Subscription& s : packet.subscriptions) {
    w.utf8(s.filter, "topic filter");
    auto options = static_cast<std::uint8_t>(s.max_qos);
    if (version == ProtocolVersion::v5) {
      options = static_cast<std::uint8_t>(options | (s.no_local ? 0x04 : 0) | (s.retain_as_published ? 0x08 : 0) |
                                          (static_cast<std::uint8_t>(s.retain_handling) << 4));
    }
    w.u8(options);
  }
  return emit(type_byte(PacketType::subscribe, 0x02), w, out, kMaxPacketSizeLimit, "SUBSCRIBE");
}

EncodeResult encode(const Unsubscribe& packet, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  if (packet.filters.empty()) return std::unexpected(invalid("UNSUBSCRIBE: no topic filter"));
  Writer w("UNSUBSCRIBE");
  w.u16(packet.packet_id);
  if (version == ProtocolVersion::v5) {
    Writer props("UNSUBSCRIBE");
    props.user_properties(packet.user_properties);
    w.properties(props);
  }
  for (const std::string_view filter : packet.filters) w.utf8(filter, "topic filter");
  return emit(type_byte(PacketType::unsubscribe, 0x02), w, out, kMaxPacketSizeLimit, "UNSUBSCRIBE");
}

EncodeResult encode(const PingReq&, ProtocolVersion, std::vector<std::uint8_t>& out) {
  return emit(type_byte(PacketType::pingreq), Writer("PINGREQ"), out, kMaxPacketSizeLimit, "PINGREQ");
}

EncodeResult encode_packet(const Packet& packet, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  return std::visit(
      [&](const auto& p) -> EncodeResult {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Connect>) {
          return encode(p, out);
        } else if constexpr (std::is_same_v<T, Subscribe> || std::is_same_v<T, Unsubscribe> ||
                             std::is_same_v<T, PingReq>) {
          return encode(p, version, out);
        } else {
          return encode(p, version, out, kMaxPacketSizeLimit);
        }
      },
      packet);
}

}  // namespace telegate::gateway::mqtt
