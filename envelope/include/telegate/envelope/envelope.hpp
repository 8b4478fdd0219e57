// The routing envelope: wraps each validated canonical record for the sinks.
//
// A SealedRecord is the unit every sink receives: topic, key (device id, for per-device
// ordering), the compact `tg-route` header and the serialized envelope (Protobuf
// `telegate.v1.Envelope`, or its JSON rendering for humans). Header design and its measured
// cost: docs/envelope.md.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <utility>

#include "telegate/codecs/record.hpp"

namespace telegate::v1 {
class Envelope;
}

namespace telegate::envelope {

inline constexpr std::uint32_t kSchemaVersion = 1;
inline constexpr std::string_view kRouteHeader = "tg-route";

// protobuf / json: telegate.v1.Envelope in the value. cloudevents: the CloudEvents 1.0 Kafka
// protocol binding in binary mode — ce_* headers carry the event attributes and the value is
// the envelope as JSON, so CloudEvents-aware consumers read it without telegate's schema.
enum class Format : std::uint8_t { protobuf = 1, json = 2, cloudevents = 3 };
enum class SourceProtocol : std::uint8_t { http = 1, mqtt = 2, coap = 3, tcp = 4 };

std::string_view to_string(Format format) noexcept;
std::optional<Format> parse_format(std::string_view text) noexcept;
std::string_view to_string(SourceProtocol protocol) noexcept;

// Error codes of the envelope component.
enum class EnvelopeErrc : std::uint8_t { bad_template = 1, bad_value, bad_header };
struct EnvelopeError {
  EnvelopeErrc code;
  std::string message;
};

struct SealedRecord {
  std::string msg_id;  // the record's idempotency key (device-supplied or generated), for the ack
  bool msg_id_generated = false;  // generated ids are unique by construction: nothing to de-duplicate
  std::string topic;
  std::string key;
  std::string route_header;  // value of the `tg-route` header
  std::string value;
  // Headers besides tg-route (the CloudEvents attributes); empty for the other formats. Names
  // are static strings.
  std::vector<std::pair<std::string_view, std::string>> headers;
};

// Identity and provenance shared by every record of one request.
struct EnvelopeContext {
  std::string_view tenant;
  std::string_view device_type;
  std::string_view gateway_id;
  std::string_view content_type;
  SourceProtocol protocol = SourceProtocol::http;
  std::int64_t ingest_time_ms = 0;
};

// Topic names from a template such as "telemetry.{tenant}.{type}". Placeholders: {tenant},
// {device_type}, {type} (message type). Compiled once; expand() does no parsing.
class TopicTemplate {
 public:
  static std::expected<TopicTemplate, EnvelopeError> compile(std::string_view text);
  void expand(std::string_view tenant, std::string_view device_type, codecs::MessageType type,
              std::string& out) const;
  const std::string& text() const noexcept { return text_; }

 private:
  enum class Part : std::uint8_t { literal, tenant, device_type, type };
  struct Piece {
    Part part;
    std::string literal;
  };
  std::string text_;
  std::vector<Piece> pieces_;
};

// The routing fields as carried by the `tg-route` header (form-encoded, e.g.
// "v=1&t=acme&dt=tracker&mt=location&et=1700000000000&id=…&f=pb").
struct RouteFields {
  std::uint32_t version = kSchemaVersion;
  std::string tenant;
  std::string device_type;
  codecs::MessageType message_type = codecs::MessageType::location;
  std::int64_t event_time_ms = 0;
  std::string msg_id;
  Format format = Format::protobuf;
};
void encode_route_header(const RouteFields& fields, std::string& out);
std::expected<RouteFields, EnvelopeError> decode_route_header(std::string_view header);

// Builds sealed records. Lives as long as its device type's pipeline stages; owns the msg_id
// generator and what it keeps between records (the routing derived from the last context, a
// reusable Protobuf message for the JSON formats), so one instance belongs to one worker thread.
class EnvelopeBuilder {
 public:
  EnvelopeBuilder(Format format, TopicTemplate topic);
  ~EnvelopeBuilder();
  EnvelopeBuilder(EnvelopeBuilder&&) noexcept;
  EnvelopeBuilder& operator=(EnvelopeBuilder&&) noexcept;

  // Fills `out` (reusing its buffers). A record without msg_id gets a generated UUIDv7. The
  // record must have passed codecs::validate: its ids and reading names are then printable
  // ASCII, which the Protobuf writer does not check again for UTF-8.
  void seal(const codecs::CanonicalRecord& record, const EnvelopeContext& context, SealedRecord& out);

 private:
  static void add_cloudevents_headers(const v1::Envelope& message, SealedRecord& out);
  struct State;
  std::unique_ptr<State> state_;
};

// Renders an envelope value of either format as one line of JSON (for `telegate log dump`
// and for tests). Fails with a message if the bytes are not a valid envelope.
std::expected<std::string, EnvelopeError> render_json(std::string_view value, Format format);

// Unix milliseconds as RFC 3339 UTC with milliseconds ("2026-11-24T10:00:00.250Z").
void append_rfc3339(std::string& out, std::int64_t unix_ms);

// Appends `text` as a quoted JSON string (RFC 8259 escaping); shared by every JSON writer.
void append_json_string(std::string& out, std::string_view text);

// Appends an integer in decimal without a temporary string; shared by the JSON writers and the
// HTTP listener's answers (status line, Content-Length, per-record counts).
void append_decimal(std::string& out, std::int64_t value);
void append_decimal(std::string& out, std::uint64_t value);

// Parses a Protobuf envelope value into a canonical record plus its routing context; used by
// tests and audit tools to check what reached Kafka.
struct DecodedEnvelope {
  std::string tenant;
  std::string device_type;
  std::string gateway_id;
  std::string content_type;
  std::int64_t ingest_time_ms = 0;
  bool msg_id_generated = false;
  SourceProtocol protocol = SourceProtocol::http;
  codecs::CanonicalRecord record;
};
std::expected<DecodedEnvelope, EnvelopeError> decode_envelope(std::string_view value, Format format);

}  // namespace telegate::envelope
