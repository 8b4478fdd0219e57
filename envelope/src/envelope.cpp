#include "telegate/envelope/envelope.hpp"

#include <cstdio>
#include <memory>
#include <random>

#include "json_writer.hpp"
#include "telegate/v1/envelope.pb.h"

namespace telegate::envelope {

std::string_view to_string(Format format) noexcept {
  switch (format) {
    case Format::protobuf: return "protobuf";
    case Format::json: return "json";
    case Format::cloudevents: return "cloudevents";
  }
  return "protobuf";
}

std::optional<Format> parse_format(std::string_view text) noexcept {
  if (text == "protobuf") return Format::protobuf;
  if (text == "json") return Format::json;
  if (text == "cloudevents") return Format::cloudevents;
  return std::nullopt;
}

void append_rfc3339(std::string& out, std::int64_t unix_ms) {
  // H. Hinnant's civil_from_days.
  std::int64_t days = unix_ms >= 0 ? unix_ms / 86'400'000 : (unix_ms - 86'399'999) / 86'400'000;
  const std::int64_t ms_of_day = unix_ms - days * 86'400'000;
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const std::int64_t day_of_era = days - era * 146097;
  const std::int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const std::int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const std::int64_t shifted_month = (5 * day_of_year + 2) / 153;
  const std::int64_t day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
  const std::int64_t month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
  const std::int64_t year = year_of_era + era * 400 + (month <= 2);
  char text[32];
  const int length = std::snprintf(text, sizeof text, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ",
                                   static_cast<long long>(year), static_cast<long long>(month), static_cast<long long>(day),
                                   static_cast<long long>(ms_of_day / 3'600'000), static_cast<long long>(ms_of_day / 60'000 % 60),
                                   static_cast<long long>(ms_of_day / 1000 % 60), static_cast<long long>(ms_of_day % 1000));
  out.append(text, static_cast<std::size_t>(length));
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

namespace {

// A cleared sub-message for the envelope to own: the spare one if there is, else a new one.
template <class Message>
Message* reuse(std::unique_ptr<Message>& spare) {
  if (!spare) return new Message;
  spare->Clear();
  return spare.release();
}

}  // namespace

struct EnvelopeBuilder::State {
  State(Format format_in, TopicTemplate topic_in) : format(format_in), topic(std::move(topic_in)) {}

  Format format;
  TopicTemplate topic;
  v1::Envelope message;  // reused: Protobuf keeps string and sub-message storage across Clear()
  RouteFields route;
  std::mt19937_64 random{std::random_device{}()};
  // The payload oneof's sub-messages between records: Clear() deletes the oneof's sub-message
  // (unlike strings and repeated fields, which keep their storage), so seal() takes it out
  // before and hands it back when the next record has the same kind — no heap Location per record.
  std::unique_ptr<v1::Location> spare_location;
  std::unique_ptr<v1::Sensor> spare_sensor;

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
  if (message.has_location()) state.spare_location.reset(message.release_location());
  if (message.has_sensor()) state.spare_sensor.reset(message.release_sensor());
  message.Clear();
  message.set_schema_version(kSchemaVersion);
  // assign() into the kept field: Protobuf 3.21's set_x(const char*, size_t) builds a temporary
  // std::string, a heap allocation per record for values past the small-string buffer (a
  // gateway id, "application/json").
  message.mutable_tenant()->assign(context.tenant);
  message.set_device_id(record.device_id);
  message.mutable_device_type()->assign(context.device_type);
  message.set_message_type(record.type == codecs::MessageType::location ? v1::MESSAGE_TYPE_LOCATION
                                                                        : v1::MESSAGE_TYPE_SENSOR);
  message.set_event_time_ms(record.event_time_ms);
  message.set_ingest_time_ms(context.ingest_time_ms);
  message.mutable_gateway_id()->assign(context.gateway_id);
  if (record.msg_id.empty()) {
    state.generate_msg_id(context.ingest_time_ms, *message.mutable_msg_id());
    message.set_msg_id_generated(true);
  } else {
    message.set_msg_id(record.msg_id);
  }
  message.set_source_protocol(static_cast<v1::SourceProtocol>(context.protocol));
  message.mutable_content_type()->assign(context.content_type);
  if (record.type == codecs::MessageType::location) {
    message.set_allocated_location(reuse(state.spare_location));
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
    message.set_allocated_sensor(reuse(state.spare_sensor));
    v1::Sensor& sensor = *message.mutable_sensor();
    for (const codecs::SensorReading& from : record.readings) {
      v1::SensorReading& reading = *sensor.add_readings();
      reading.set_name(from.name);
      reading.set_value(from.value);
      reading.set_unit(from.unit);
    }
    for (const codecs::Attribute& from : record.attributes) {
      v1::Attribute& attribute = *sensor.add_attributes();
      attribute.set_name(from.name);
      attribute.set_value(from.value);
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
  out.msg_id_generated = message.msg_id_generated();
  state.route.format = state.format;
  encode_route_header(state.route, out.route_header);
  out.value.clear();
  out.headers.clear();
  if (state.format == Format::protobuf) {
    message.AppendToString(&out.value);
    return;
  }
  write_json(message, out.value);
  if (state.format == Format::cloudevents) add_cloudevents_headers(message, out);
}

// CloudEvents 1.0 Kafka protocol binding, binary mode: attributes as ce_* headers.
void EnvelopeBuilder::add_cloudevents_headers(const v1::Envelope& message, SealedRecord& out) {
  out.headers.reserve(8);
  out.headers.emplace_back("ce_specversion", "1.0");
  out.headers.emplace_back("ce_id", message.msg_id());
  std::string& source = out.headers.emplace_back("ce_source", "telegate:").second;
  source += message.tenant();
  source += '/';
  source += message.device_type();
  out.headers.emplace_back("ce_type", message.has_location() ? "io.telegate.location.v1" : "io.telegate.sensor.v1");
  append_rfc3339(out.headers.emplace_back("ce_time", std::string()).second, message.event_time_ms());
  out.headers.emplace_back("ce_subject", message.device_id());
  out.headers.emplace_back("ce_tenant", message.tenant());
  out.headers.emplace_back("content-type", "application/json");
}

}  // namespace telegate::envelope
