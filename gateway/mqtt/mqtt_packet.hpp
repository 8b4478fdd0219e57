// MQTT 3.1.1 (OASIS 2014) and MQTT 5.0 (OASIS 2019) wire format, server side: incremental
// framing (FrameReader), decoders for what a client sends, encoders for what a server sends.
//
// Transport-free on purpose: the MQTT listener (Boost.Asio) feeds socket bytes in and writes
// the encoded bytes out; everything here is plain functions over bytes, testable and fuzzable
// without sockets.
//
// Contract (docs/component-spec.md, "All components"):
//  - decoding never throws, never asserts on input, never reads past the frame, and allocates
//    nothing proportional to a declared length before checking it against the bytes present
//    (the only allocations are vectors of entries that each consumed input bytes);
//  - every failure is a PacketError carrying the MQTT 5 reason code the server answers with
//    (CONNACK or DISCONNECT in v5; for v3.1.1 clients the listener closes the connection or
//    maps it with to_v3_connack_return_code()), a message naming the problem, and the byte
//    offset from the first byte of the packet (the fixed header) where it was found;
//  - decoded packets are views: strings and payloads point into the frame's bytes and live as
//    long as those bytes (see FrameReader::read for how long that is). Copy what you keep.
//
// Threads: FrameReader is per connection (see its comment); every function here is stateless
// and may be called from any thread.
//
// Checks that need session state are the session layer's, not the decoder's: a second
// CONNECT, Topic Alias above the Topic Alias Maximum the server announced, Receive Maximum
// exceeded, packet identifiers in use, Session Expiry on DISCONNECT after 0 in CONNECT,
// topic-filter grammar per SUBSCRIBE entry (validate_topic_filter, so one bad filter is answered
// with its own SUBACK code instead of closing the connection), and the UTF-8 payload check
// for Payload Format Indicator 1 (validate_payload_format, answered with PUBACK 0x99).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace telegate::gateway::mqtt {

// ---------------------------------------------------------------------------------------------
// Errors

// Error codes of the mqtt folder (each component folder has its own).
enum class MqttErrc : std::uint8_t {
  malformed = 1,         // the bytes do not follow the packet grammar (reason 0x81)
  protocol_error,        // well-formed, but the spec forbids it (reason 0x82 or a specific one)
  packet_too_large,      // above the Maximum Packet Size (reason 0x95)
  unsupported_protocol,  // CONNECT names another protocol or level (reason 0x84)
  invalid_topic,         // topic name or filter breaks the topic rules (reason 0x90 / 0x8F)
  invalid_payload,       // Payload Format Indicator 1 with a payload that is not UTF-8 (0x99)
  invalid_argument,      // an encoder was asked for something the packet/version cannot carry
};

std::string_view to_string(MqttErrc code) noexcept;

// MQTT 5.0 reason codes (section 2.4). One code has several names in the spec depending on the
// packet (0x00 is Success, Normal disconnection and Granted QoS 0).
enum class ReasonCode : std::uint8_t {
  success = 0x00,
  normal_disconnection = 0x00,
  granted_qos_0 = 0x00,
  granted_qos_1 = 0x01,
  granted_qos_2 = 0x02,
  disconnect_with_will = 0x04,
  no_matching_subscribers = 0x10,
  no_subscription_existed = 0x11,
  continue_authentication = 0x18,
  reauthenticate = 0x19,
  unspecified_error = 0x80,
  malformed_packet = 0x81,
  protocol_error = 0x82,
  implementation_specific_error = 0x83,
  unsupported_protocol_version = 0x84,
  client_identifier_not_valid = 0x85,
  bad_username_or_password = 0x86,
  not_authorized = 0x87,
  server_unavailable = 0x88,
  server_busy = 0x89,
  banned = 0x8A,
  server_shutting_down = 0x8B,
  bad_authentication_method = 0x8C,
  keep_alive_timeout = 0x8D,
  session_taken_over = 0x8E,
  topic_filter_invalid = 0x8F,
  topic_name_invalid = 0x90,
  packet_identifier_in_use = 0x91,
  packet_identifier_not_found = 0x92,
  receive_maximum_exceeded = 0x93,
  topic_alias_invalid = 0x94,
  packet_too_large = 0x95,
  message_rate_too_high = 0x96,
  quota_exceeded = 0x97,
  administrative_action = 0x98,
  payload_format_invalid = 0x99,
  retain_not_supported = 0x9A,
  qos_not_supported = 0x9B,
  use_another_server = 0x9C,
  server_moved = 0x9D,
  shared_subscriptions_not_supported = 0x9E,
  connection_rate_exceeded = 0x9F,
  maximum_connect_time = 0xA0,
  subscription_identifiers_not_supported = 0xA1,
  wildcard_subscriptions_not_supported = 0xA2,
};

// The spec's name for the code ("Malformed Packet"), "Unknown" for undefined values.
std::string_view to_string(ReasonCode code) noexcept;

struct PacketError {
  MqttErrc code;
  ReasonCode reason;     // what a v5 server answers with (CONNACK before CONNECT succeeded, else DISCONNECT)
  std::string message;   // names the packet, the problem and the offset, e.g. "CONNECT: reserved flag bit 0 is set"
  std::size_t offset;    // byte offset from the packet's first byte (stream offset for framing errors)
};

// v3.1.1 has no reason codes: CONNACK return codes 0x01..0x05 (section 3.2.2.3). Maps a v5
// CONNACK reason code to the closest one (0x84→1, 0x85→2, 0x86→4, 0x87/0x8A→5, others→3).
std::uint8_t to_v3_connack_return_code(ReasonCode reason) noexcept;

// ---------------------------------------------------------------------------------------------
// Basic types

enum class ProtocolVersion : std::uint8_t { v311 = 4, v5 = 5 };  // the CONNECT protocol level byte

enum class PacketType : std::uint8_t {
  connect = 1, connack, publish, puback, pubrec, pubrel, pubcomp,
  subscribe, suback, unsubscribe, unsuback, pingreq, pingresp, disconnect, auth,
};
std::string_view to_string(PacketType type) noexcept;  // "CONNECT", …

enum class QoS : std::uint8_t { at_most_once = 0, at_least_once = 1, exactly_once = 2 };

// The largest Remaining Length a 4-byte Variable Byte Integer carries (268,435,455), and so
// the largest packet: 1 + 4 + that.
inline constexpr std::uint32_t kMaxRemainingLength = 268'435'455;
inline constexpr std::uint32_t kMaxPacketSizeLimit = 1 + 4 + kMaxRemainingLength;

using Bytes = std::span<const std::uint8_t>;
// MQTT Binary Data and payloads: arbitrary bytes, held as string_view because that is what the
// codecs take (Codec::decode) and it compares with ==. Not text: may hold any byte.
using Binary = std::string_view;

struct UserProperty {
  std::string_view name{};
  std::string_view value{};
  bool operator==(const UserProperty&) const = default;
};

// ---------------------------------------------------------------------------------------------
// Framing

// One complete MQTT control packet as it came off the wire.
struct Frame {
  std::uint8_t first_byte = 0;  // packet type (high nibble) and flags (low nibble)
  std::size_t header_size = 0;  // fixed header: 1 + Remaining Length bytes (2..5)
  Bytes body;                   // the Remaining Length bytes: variable header and payload

  std::uint8_t type_bits() const noexcept { return static_cast<std::uint8_t>(first_byte >> 4); }
  std::uint8_t flags() const noexcept { return static_cast<std::uint8_t>(first_byte & 0x0F); }
  std::size_t size() const noexcept { return header_size + body.size(); }  // MQTT 5's "packet size"
};

// Splits a byte stream into frames, whatever the split of the reads (1 byte at a time works).
//
// Memory bound: a packet whose size (fixed header included, as MQTT 5's Maximum Packet Size
// counts it) is above max_packet_size is refused with 0x95 as soon as its Remaining Length is
// known, before any of its body is buffered. At most one frame's body is ever held, and only
// when it arrives split: a frame that lies whole inside the input is returned as a view into
// the input without copying.
//
// Lifecycle: one per connection, owned by the connection's I/O thread (not thread-safe). After
// an error it stays failed (every read() repeats the error): the connection must be closed.
class FrameReader {
 public:
  // max_packet_size: the server's Maximum Packet Size (sent to v5 clients in CONNACK), at
  // most kMaxPacketSizeLimit, at least 2.
  explicit FrameReader(std::uint32_t max_packet_size) noexcept;

  struct Step {
    std::size_t consumed = 0;    // bytes of `input` used; the rest belongs to later frames
    std::optional<Frame> frame;  // set when a frame was completed
  };

  // Consumes input bytes up to the end of the next frame. Call again with the unconsumed rest
  // until it is empty. A returned frame's body is valid until the next read() or reset() and,
  // when it points into `input`, as long as the caller keeps those bytes.
  std::expected<Step, PacketError> read(Bytes input);

  // True between the first byte of a frame and its last: a connection closed now ended in the
  // middle of a packet.
  bool mid_frame() const noexcept { return state_ != State::type_byte; }
  std::uint32_t max_packet_size() const noexcept { return max_packet_size_; }
  void reset() noexcept;

 private:
  enum class State : std::uint8_t { type_byte, length, body, failed };

  std::uint32_t max_packet_size_;
  State state_ = State::type_byte;
  std::uint8_t first_byte_ = 0;
  std::uint8_t length_bytes_ = 0;
  std::uint32_t remaining_ = 0;
  std::uint64_t stream_offset_ = 0;  // where the current frame started, for error offsets
  std::uint64_t consumed_total_ = 0;
  std::vector<std::uint8_t> body_;   // a split frame's body, never above max_packet_size
  std::optional<PacketError> error_;
};

// ---------------------------------------------------------------------------------------------
// Packets a server receives

// Application message properties shared by PUBLISH and the Will (v5 only; empty in v3.1.1).
struct MessageProperties {
  std::optional<std::uint8_t> payload_format_indicator{};  // 0 unspecified bytes, 1 UTF-8
  std::optional<std::uint32_t> message_expiry_interval{};  // seconds
  std::optional<std::string_view> content_type{};
  std::optional<std::string_view> response_topic{};
  std::optional<Binary> correlation_data{};
  std::vector<UserProperty> user_properties{};
  bool operator==(const MessageProperties&) const = default;
};

struct Will {
  QoS qos = QoS::at_most_once;
  bool retain = false;
  std::string_view topic{};
  Binary payload{};
  MessageProperties properties{};
  std::optional<std::uint32_t> delay_interval{};  // v5 Will Delay Interval, seconds
  bool operator==(const Will&) const = default;
};

struct ConnectProperties {
  std::optional<std::uint32_t> session_expiry_interval{};  // absent = 0
  std::optional<std::uint16_t> receive_maximum{};          // absent = 65,535; 0 is refused
  std::optional<std::uint32_t> maximum_packet_size{};      // absent = no limit; 0 is refused
  std::optional<std::uint16_t> topic_alias_maximum{};      // absent = 0
  std::optional<std::uint8_t> request_response_information{};  // 0/1, absent = 0
  std::optional<std::uint8_t> request_problem_information{};   // 0/1, absent = 1
  std::optional<std::string_view> authentication_method{};
  std::optional<Binary> authentication_data{};
  std::vector<UserProperty> user_properties{};
  bool operator==(const ConnectProperties&) const = default;
};

struct Connect {
  ProtocolVersion version = ProtocolVersion::v311;
  bool clean_start = false;  // v3.1.1 "Clean Session"
  std::uint16_t keep_alive = 0;  // seconds, 0 = off
  std::string_view client_id{};    // may be empty (v5 always; v3.1.1 only with clean session)
  std::optional<Will> will{};
  std::optional<std::string_view> username{};
  std::optional<Binary> password{};
  ConnectProperties properties{};
  bool operator==(const Connect&) const = default;
};

struct PublishProperties : MessageProperties {
  std::optional<std::uint16_t> topic_alias{};            // never 0
  std::vector<std::uint32_t> subscription_identifiers{}; // only server → client; refused from a client
  bool operator==(const PublishProperties&) const = default;
};

struct Publish {
  bool dup = false;
  QoS qos = QoS::at_most_once;
  bool retain = false;
  std::string_view topic{};        // empty only in v5 with a Topic Alias (resolve it in the session)
  std::uint16_t packet_id = 0;   // non-zero for QoS 1 and 2, 0 for QoS 0
  PublishProperties properties{};
  Binary payload{};                 // a view into the frame
  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP: the same shape, told apart by `type`.
struct PublishAck {
  PacketType type = PacketType::puback;
  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::success;  // v5; always success in v3.1.1
  std::optional<std::string_view> reason_string{};
  std::vector<UserProperty> user_properties{};
  bool operator==(const PublishAck&) const = default;
};

enum class RetainHandling : std::uint8_t { send_on_subscribe = 0, send_if_new = 1, do_not_send = 2 };

struct Subscription {
  std::string_view filter{};  // non-empty, well-formed UTF-8; grammar: validate_topic_filter()
  QoS max_qos = QoS::at_most_once;
  bool no_local = false;             // v5
  bool retain_as_published = false;  // v5
  RetainHandling retain_handling = RetainHandling::send_on_subscribe;  // v5
  bool operator==(const Subscription&) const = default;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  std::optional<std::uint32_t> subscription_identifier{};  // v5, 1..268,435,455
  std::vector<UserProperty> user_properties{};
  std::vector<Subscription> subscriptions{};  // at least one
  bool operator==(const Subscribe&) const = default;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  std::vector<UserProperty> user_properties{};
  std::vector<std::string_view> filters{};  // at least one
  bool operator==(const Unsubscribe&) const = default;
};

struct PingReq {
  bool operator==(const PingReq&) const = default;
};
struct PingResp {
  bool operator==(const PingResp&) const = default;
};

struct Disconnect {
  ReasonCode reason = ReasonCode::normal_disconnection;
  std::optional<std::uint32_t> session_expiry_interval{};
  std::optional<std::string_view> reason_string{};
  std::optional<std::string_view> server_reference{};
  std::vector<UserProperty> user_properties{};
  bool operator==(const Disconnect&) const = default;
};

// v5 enhanced authentication (section 4.12).
struct Auth {
  ReasonCode reason = ReasonCode::success;  // 0x00, 0x18 Continue, 0x19 Re-authenticate
  std::optional<std::string_view> authentication_method{};
  std::optional<Binary> authentication_data{};
  std::optional<std::string_view> reason_string{};
  std::vector<UserProperty> user_properties{};
  bool operator==(const Auth&) const = default;
};

using Packet = std::variant<Connect, Publish, PublishAck, Subscribe, Unsubscribe, PingReq, Disconnect, Auth>;

// Decodes a CONNECT (the first packet of every connection, which fixes the protocol version).
std::expected<Connect, PacketError> decode_connect(const Frame& frame);

// Decodes any packet a client may send, for a connection of `version` (a CONNECT is decoded
// with its own version). Packets only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) are
// a protocol error; AUTH is one in v3.1.1, where packet type 15 is reserved.
std::expected<Packet, PacketError> decode_packet(const Frame& frame, ProtocolVersion version);

// MQTT 5 Payload Format Indicator 1 promises UTF-8: a server MAY check it and answers a bad
// payload with PUBACK/PUBREC 0x99 rather than closing the connection, hence a separate check.
std::expected<void, PacketError> validate_payload_format(const Publish& publish);

// ---------------------------------------------------------------------------------------------
// Packets a server sends

struct ConnackProperties {
  std::optional<std::uint32_t> session_expiry_interval{};
  std::optional<std::uint16_t> receive_maximum{};
  std::optional<QoS> maximum_qos{};  // only 0 or 1 may be sent (absent = 2)
  std::optional<bool> retain_available{};
  std::optional<std::uint32_t> maximum_packet_size{};
  std::optional<std::string_view> assigned_client_identifier{};
  std::optional<std::uint16_t> topic_alias_maximum{};
  std::optional<std::string_view> reason_string{};
  std::vector<UserProperty> user_properties{};
  std::optional<bool> wildcard_subscription_available{};
  std::optional<bool> subscription_identifiers_available{};
  std::optional<bool> shared_subscription_available{};
  std::optional<std::uint16_t> server_keep_alive{};
  std::optional<std::string_view> response_information{};
  std::optional<std::string_view> server_reference{};
  std::optional<std::string_view> authentication_method{};
  std::optional<Binary> authentication_data{};
  bool operator==(const ConnackProperties&) const = default;
};

struct Connack {
  bool session_present = false;  // must be false when the reason is not success
  ReasonCode reason = ReasonCode::success;  // v3.1.1: mapped by to_v3_connack_return_code()
  ConnackProperties properties{};             // v5 only
  bool operator==(const Connack&) const = default;
};

struct Suback {
  std::uint16_t packet_id = 0;
  std::vector<ReasonCode> reasons{};  // one per subscription; v3.1.1 sends every code ≥ 0x80 as 0x80
  std::optional<std::string_view> reason_string{};
  std::vector<UserProperty> user_properties{};
  bool operator==(const Suback&) const = default;
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  std::vector<ReasonCode> reasons{};  // v5 only: v3.1.1's UNSUBACK has no payload
  std::optional<std::string_view> reason_string{};
  std::vector<UserProperty> user_properties{};
  bool operator==(const Unsuback&) const = default;
};

// The encoders append one packet to `out` and return its size. max_packet_size is the client's
// Maximum Packet Size (v5 CONNECT property): as the spec requires, the optional Reason String
// and User Properties are left out when they would make the packet too large; a packet still
// too large is refused with packet_too_large and nothing is appended (a PUBLISH is then to be
// dropped as if delivered, MQTT-3.1.2-25). Values the packet or version cannot carry (a
// reason code not defined for the packet, a v5-only packet or a negative PUBACK in v3.1.1, a
// string over 65,535 bytes) are refused with invalid_argument, so nothing wrong goes out.
using EncodeResult = std::expected<std::size_t, PacketError>;

EncodeResult encode(const Connack& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size = kMaxPacketSizeLimit);
// PUBACK / PUBREC / PUBREL / PUBCOMP by packet.type. v3.1.1 carries only success.
EncodeResult encode(const PublishAck& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size = kMaxPacketSizeLimit);
EncodeResult encode(const Suback& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size = kMaxPacketSizeLimit);
EncodeResult encode(const Unsuback& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size = kMaxPacketSizeLimit);
EncodeResult encode(const PingResp& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size = kMaxPacketSizeLimit);
// v5 only: in v3.1.1 a server closes the connection without a DISCONNECT.
EncodeResult encode(const Disconnect& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size = kMaxPacketSizeLimit);
EncodeResult encode(const Auth& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size = kMaxPacketSizeLimit);
// Server → client delivery (commands to devices), also what makes PUBLISH round-trip testable.
EncodeResult encode(const Publish& packet, ProtocolVersion version, std::vector<std::uint8_t>& out,
                    std::uint32_t max_packet_size = kMaxPacketSizeLimit);
// The client side of CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ: for tests, the firmware
// simulator and round-trip fuzzing; the gateway itself never sends them.
EncodeResult encode(const Connect& packet, std::vector<std::uint8_t>& out);
EncodeResult encode(const Subscribe& packet, ProtocolVersion version, std::vector<std::uint8_t>& out);
EncodeResult encode(const Unsubscribe& packet, ProtocolVersion version, std::vector<std::uint8_t>& out);
EncodeResult encode(const PingReq& packet, ProtocolVersion version, std::vector<std::uint8_t>& out);

// Encodes any decoded packet (the client-side encoders above plus PUBLISH/acks/DISCONNECT/AUTH).
EncodeResult encode_packet(const Packet& packet, ProtocolVersion version, std::vector<std::uint8_t>& out);

// ---------------------------------------------------------------------------------------------
// Strings and topics (section 1.5.4 and 4.7)

// Offset of the first byte that makes `text` not well-formed UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF) or that starts a U+0000, which MQTT forbids in
// every string; nullopt when it is fine.
std::optional<std::size_t> find_invalid_utf8(std::string_view text) noexcept;

// A topic name as PUBLISH carries it: 1..65,535 bytes of valid UTF-8, no '+' or '#'.
// Failures carry reason 0x90 Topic Name invalid; offsets are within `topic`.
std::expected<void, PacketError> validate_topic_name(std::string_view topic);

// A topic filter as SUBSCRIBE/UNSUBSCRIBE carry it: 1..65,535 bytes of valid UTF-8, '+' only
// as a whole level, '#' only as the whole last level; a shared subscription
// "$share/{ShareName}/{filter}" has a non-empty ShareName without '/', '+', '#' and a valid
// filter. Failures carry reason 0x8F Topic Filter invalid.
std::expected<void, PacketError> validate_topic_filter(std::string_view filter);

// "$share/group/a/b" → share name "group" and filter "a/b"; nullopt when not shared.
struct SharedFilter {
  std::string_view share_name{};
  std::string_view filter{};
};
std::optional<SharedFilter> parse_shared_filter(std::string_view filter) noexcept;

// The levels of a topic name or filter ("a//b" → "a", "", "b"; "" → one empty level).
std::vector<std::string_view> split_topic(std::string_view topic);

// Whether a (valid, non-shared) filter matches a (valid) topic name, per section 4.7:
// '+' matches exactly one level (empty ones too), '#' the parent level and any number below,
// and a filter starting with a wildcard does not match a topic starting with '$'.
// When `captures` is given it receives, in order, the level matched by each '+' and, for '#',
// the rest of the topic (possibly empty): with filter "acme/+/gps" and topic
// "acme/truck-7/gps" it holds {"truck-7"}.
bool topic_matches(std::string_view filter, std::string_view topic,
                   std::vector<std::string_view>* captures = nullptr);

}  // namespace telegate::gateway::mqtt
