#include "telegate/envelope/envelope.hpp"

#include <random>

#include "json_writer.hpp"
#include "telegate/v1/envelope.pb.h"

namespace telegate::envelope {

std::string_view to_string(Format format) noexcept { return format == Format::protobuf ? "protobuf" : "json"; }

std::optional<Format> parse_format(std::string_view text) noexcept {
  if (text == "protobuf") return Format::protobuf;
  if (text == "json") return Format::json;
  return std::nullopt;
}

std::string_view to_string(SourceProtocol protocol) noexcept {
  switch (protocol) {
    case SourceProtocol::http: return "http";
    case SourceProtocol::mqtt: return "mqtt";
    case SourceProtocol::coap: return "coap";
    case SourceProtocol::tcp: return "tcp";
  }
  return "unknown";
}

struct EnvelopeBuilder::State {
  State(Format format_in, TopicTemplate topic_in) : format(format_in), topic(std::move(topic_in)) {}

  Format format;
  TopicTemplate topic;
  v1::Envelope message;  // reused: Protobuf keeps string and sub-message storage across Clear()
  RouteFields route;
  std::mt19937_64 random{std::random_device{}()};

  // UUIDv7 (RFC 9562): 48-bit Unix ms, version 7, 74 random bits — time-ordered, so Kafka
  // consumers that index by msg_id get locality for free.
  void generate_msg_id(std::int64_t unix_ms, std::string& out) {
    const std::uint64_t high = (static_cast<std::uint64_t>(unix_ms) << 16) | 0x7000u | (random() & 0x0fffu);
    const std::uint64_t low = (random() & 0x3fffffffffffffffull) | 0x8000000000000000ull;
    static constexpr char kHex[] = "0123456789abcdef";
    out.resize(36);
    std::size_t at = 0;
    auto put = [&](std::uint64_t value, int nibbles) {
      for (int shift = (nibbles - 1) * 4; shift >= 0; shift -= 4) out[at++] = kHex[(value >> shift) & 0xf];
    };
    put(high >> 32, 8);
    out[at++] = '-';
    put(high >> 16, 4);
    out[at++] = '-';
    put(high, 4);
    out[at++] = '-';
    put(low >> 48, 4);
    out[at++] = '-';
    put(low, 12);
  }
};

EnvelopeBuilder::EnvelopeBuilder(Format format, TopicTemplate topic)
    : state_(std::make_unique<State>(format, std::move(topic))) {}
EnvelopeBuilder::~EnvelopeBuilder() = default;
EnvelopeBuilder::EnvelopeBuilder(EnvelopeBuilder&&) noexcept = default;
EnvelopeBuilder& EnvelopeBuilder::operator=(EnvelopeBuilder&&) noexcept = default;

void EnvelopeBuilder::seal(const codecs::CanonicalRecord& record, const EnvelopeContext& context, SealedRecord& out) {
  State& state = *state_;
  v1::Envelope& message = state.message;
  message.Clear();
  message.set_schema_version(kSchemaVersion);
  message.set_tenant(context.tenant.data(), context.tenant.size());
  message.set_device_id(record.device_id);
  message.set_device_type(context.device_type.data(), context.device_type.size());
  message.set_message_type(record.type == codecs::MessageType::location ? v1::MESSAGE_TYPE_LOCATION
                                                                        : v1::MESSAGE_TYPE_SENSOR);
  message.set_event_time_ms(record.event_time_ms);
  message.set_ingest_time_ms(context.ingest_time_ms);
  message.set_gateway_id(context.gateway_id.data(), context.gateway_id.size());
  if (record.msg_id.empty()) {
    state.generate_msg_id(context.ingest_time_ms, *message.mutable_msg_id());
    message.set_msg_id_generated(true);
  } else {
    message.set_msg_id(record.msg_id);
  }
  message.set_source_protocol(static_cast<v1::SourceProtocol>(context.protocol));
  message.set_content_type(context.content_type.data(), context.content_type.size());
  if (record.type == codecs::MessageType::location) {
    v1::Location& location = *message.mutable_location();
    const codecs::Location& from = record.location;
    location.set_lat(from.lat);
    location.set_lon(from.lon);
    if (from.alt) location.set_alt(*from.alt);
    if (from.speed) location.set_speed(*from.speed);
    if (from.heading) location.set_heading(*from.heading);
    if (from.accuracy) location.set_accuracy(*from.accuracy);
    if (from.battery) location.set_battery(*from.battery);
  } else {
    v1::Sensor& sensor = *message.mutable_sensor();
    for (const codecs::SensorReading& from : record.readings) {
      v1::SensorReading& reading = *sensor.add_readings();
      reading.set_name(from.name);
      reading.set_value(from.value);
      reading.set_unit(from.unit);
    }
  }

  state.topic.expand(context.tenant, context.device_type, record.type, out.topic);
  out.key = record.device_id;
  state.route.tenant.assign(context.tenant);
  state.route.device_type.assign(context.device_type);
  state.route.message_type = record.type;
  state.route.event_time_ms = record.event_time_ms;
  state.route.msg_id = message.msg_id();
  out.msg_id = message.msg_id();
  state.route.format = state.format;
  encode_route_header(state.route, out.route_header);
  out.value.clear();
  if (state.format == Format::protobuf) {
    message.AppendToString(&out.value);
  } else {
    write_json(message, out.value);
  }
}

}  // namespace telegate::envelope
