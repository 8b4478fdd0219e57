#include "telegate/envelope/envelope.hpp"

#include <cstdio>
#include <memory>
#include <random>

#include "json_writer.hpp"
#include "protobuf_writer.hpp"
#include "route_header.hpp"
#include "small_copy.hpp"
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
  std::mt19937_64 random{std::random_device{}()};

  // What seal() derives from the context's strings alone (the topics, the tg-route header up to
  // the message type, their UTF-8 check), kept while consecutive records share them — all the
  // records of a request, and usually many requests in a row.
  struct Routing {
    std::string tenant;
    std::string device_type;
    std::string gateway_id;
    std::string content_type;
    std::string route_prefix;
    std::string topics[2];  // by message type: location, sensor
    bool filled = false;
  } routing;

  // For the json and cloudevents formats only, whose writers read the message: reused, since
  // Protobuf keeps string and sub-message storage across Clear().
  v1::Envelope message;
  // The payload oneof's sub-messages between records: Clear() deletes the oneof's sub-message
  // (unlike strings and repeated fields, which keep their storage), so fill_message() takes it
  // out before and hands it back when the next record has the same kind — no heap Location per record.
  std::unique_ptr<v1::Location> spare_location;
  std::unique_ptr<v1::Sensor> spare_sensor;

  const Routing& routing_for(const EnvelopeContext& context) {
    if (routing.filled && routing.tenant == context.tenant && routing.device_type == context.device_type &&
        routing.gateway_id == context.gateway_id && routing.content_type == context.content_type) {
      return routing;
    }
    check_utf8(context.tenant, "telegate.v1.Envelope.tenant");
    check_utf8(context.device_type, "telegate.v1.Envelope.device_type");
    check_utf8(context.gateway_id, "telegate.v1.Envelope.gateway_id");
    check_utf8(context.content_type, "telegate.v1.Envelope.content_type");
    routing.tenant.assign(context.tenant);
    routing.device_type.assign(context.device_type);
    routing.gateway_id.assign(context.gateway_id);
    routing.content_type.assign(context.content_type);
    routing.route_prefix.clear();
    append_route_prefix(routing.route_prefix, kSchemaVersion, context.tenant, context.device_type);
    topic.expand(context.tenant, context.device_type, codecs::MessageType::location, routing.topics[0]);
    topic.expand(context.tenant, context.device_type, codecs::MessageType::sensor, routing.topics[1]);
    routing.filled = true;
    return routing;
  }

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

  // The record as a v1::Envelope, for the writers that read one.
  void fill_message(const codecs::CanonicalRecord& record, const EnvelopeContext& context, const SealedRecord& sealed) {
    if (message.has_location()) spare_location.reset(message.release_location());
    if (message.has_sensor()) spare_sensor.reset(message.release_sensor());
    message.Clear();
    message.set_schema_version(kSchemaVersion);
    // assign() into the kept field: Protobuf 3.21's set_x(const char*, size_t) builds a
    // temporary std::string, a heap allocation for values past the small-string buffer.
    message.mutable_tenant()->assign(context.tenant);
    message.set_device_id(record.device_id);
    message.mutable_device_type()->assign(context.device_type);
    message.set_message_type(record.type == codecs::MessageType::location ? v1::MESSAGE_TYPE_LOCATION
                                                                          : v1::MESSAGE_TYPE_SENSOR);
    message.set_event_time_ms(record.event_time_ms);
    message.set_ingest_time_ms(context.ingest_time_ms);
    message.mutable_gateway_id()->assign(context.gateway_id);
    message.set_msg_id(sealed.msg_id);
    message.set_msg_id_generated(sealed.msg_id_generated);
    message.set_source_protocol(static_cast<v1::SourceProtocol>(context.protocol));
    message.mutable_content_type()->assign(context.content_type);
    if (record.type == codecs::MessageType::location) {
      message.set_allocated_location(reuse(spare_location));
      v1::Location& location = *message.mutable_location();
      const codecs::Location& from = record.location;
      location.set_lat(from.lat);
      location.set_lon(from.lon);
      if (from.alt) location.set_alt(*from.alt);
      if (from.speed) location.set_speed(*from.speed);
      if (from.heading) location.set_heading(*from.heading);
      if (from.accuracy) location.set_accuracy(*from.accuracy);
      if (from.battery) location.set_battery(*from.battery);
      return;
    }
    message.set_allocated_sensor(reuse(spare_sensor));
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
};

EnvelopeBuilder::EnvelopeBuilder(Format format, TopicTemplate topic)
    : state_(std::make_unique<State>(format, std::move(topic))) {}
EnvelopeBuilder::~EnvelopeBuilder() = default;
EnvelopeBuilder::EnvelopeBuilder(EnvelopeBuilder&&) noexcept = default;
EnvelopeBuilder& EnvelopeBuilder::operator=(EnvelopeBuilder&&) noexcept = default;

void EnvelopeBuilder::seal(const codecs::CanonicalRecord& record, const EnvelopeContext& context, SealedRecord& out) {
  State& state = *state_;
  const State::Routing& routing = state.routing_for(context);
  out.msg_id_generated = record.msg_id.empty();
  if (out.msg_id_generated) {
    state.generate_msg_id(context.ingest_time_ms, out.msg_id);
  } else {
    assign_text(out.msg_id, record.msg_id);
  }
  assign_text(out.topic, routing.topics[record.type == codecs::MessageType::location ? 0 : 1]);
  assign_text(out.key, record.device_id);
  assign_text(out.route_header, routing.route_prefix);
  append_route_rest(out.route_header, record.type, record.event_time_ms, out.msg_id, state.format);
  out.headers.clear();
  if (state.format == Format::protobuf) {
    write_protobuf(record, context, EnvelopeIdentity{out.msg_id, out.msg_id_generated}, out.value);
    return;
  }
  state.fill_message(record, context, out);
  out.value.clear();
  write_json(state.message, out.value);
  if (state.format == Format::cloudevents) add_cloudevents_headers(state.message, out);
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
