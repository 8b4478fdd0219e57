#include <fmt/format.h>
#include <simdjson.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "json_writer.hpp"
#include "telegate/envelope/envelope.hpp"

namespace telegate::envelope {

namespace {

void append_number(std::string& out, double value) {
  char buffer[32];
  const auto end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;  // shortest round-trip form
  out.append(buffer, end);
}

void append_field(std::string& out, std::string_view name) {
  if (out.back() != '{') out += ',';
  out += '"';
  out += name;
  out += "\":";
}

constexpr std::string_view kMessageTypes[] = {"unspecified", "location", "sensor"};
constexpr std::string_view kProtocols[] = {"unspecified", "http", "mqtt", "coap", "tcp"};

template <std::size_t N>
std::string_view enum_name(const std::string_view (&names)[N], int value) {
  return value >= 0 && static_cast<std::size_t>(value) < N ? names[value] : "unspecified";
}

template <std::size_t N>
int enum_value(const std::string_view (&names)[N], std::string_view name) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return 0;
}

// For each byte, the letter of its two-character escape ('"', '\\', 'n', 'r', 't'), 'u' for the
// other control characters (\u00XX), 0 when it stands as it is: one lookup per byte instead of
// a chain of comparisons (the reply's msg_ids, log lines and metrics all come through here).
constexpr auto kJsonEscape = [] {
  std::array<char, 256> table{};
  for (int c = 0; c < 0x20; ++c) table[c] = 'u';
  table['"'] = '"';
  table['\\'] = '\\';
  table['\n'] = 'n';
  table['\r'] = 'r';
  table['\t'] = 't';
  return table;
}();

// Where the next byte that needs an escape is, from `at` on (text.size() if none): eight bytes
// at a time with the has-a-byte-below-n word test, since most strings (ids, names) have none.
std::size_t next_escape(std::string_view text, std::size_t at) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ull;
  constexpr std::uint64_t kHighs = 0x8080808080808080ull;
  const auto has_below = [](std::uint64_t word, std::uint64_t n) { return (word - kOnes * n) & ~word & kHighs; };
  for (; at + 8 <= text.size(); at += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + at, sizeof word);
    if (has_below(word, 0x20) | has_below(word ^ (kOnes * '"'), 1) | has_below(word ^ (kOnes * '\\'), 1)) break;
  }
  while (at < text.size() && kJsonEscape[static_cast<unsigned char>(text[at])] == 0) ++at;
  return at;
}

}  // namespace

void append_decimal(std::string& out, std::int64_t value) {
  char buffer[24];
  out.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
}

void append_decimal(std::string& out, std::uint64_t value) {
  char buffer[24];
  out.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t plain = 0;  // start of the run of characters that need no escape: appended at once
  for (std::size_t at = next_escape(text, 0); at < text.size(); at = next_escape(text, plain)) {
    const auto byte = static_cast<unsigned char>(text[at]);
    const char escape = kJsonEscape[byte];
    out.append(text.data() + plain, at - plain);
    plain = at + 1;
    if (escape != 'u') {
      const char pair[2] = {'\\', escape};
      out.append(pair, 2);
    } else {
      const char code[6] = {'\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 0xf]};
      out.append(code, 6);
    }
  }
  out.append(text.data() + plain, text.size() - plain);
  out += '"';
}

void write_json(const v1::Envelope& message, std::string& out) {
  out += '{';
  append_field(out, "schema_version");
  append_decimal(out, static_cast<std::int64_t>(message.schema_version()));
  append_field(out, "tenant");
  append_json_string(out, message.tenant());
  append_field(out, "device_id");
  append_json_string(out, message.device_id());
  append_field(out, "device_type");
  append_json_string(out, message.device_type());
  append_field(out, "message_type");
  append_json_string(out, enum_name(kMessageTypes, message.message_type()));
  append_field(out, "event_time_ms");
  append_decimal(out, message.event_time_ms());
  append_field(out, "ingest_time_ms");
  append_decimal(out, message.ingest_time_ms());
  append_field(out, "gateway_id");
  append_json_string(out, message.gateway_id());
  append_field(out, "msg_id");
  append_json_string(out, message.msg_id());
  append_field(out, "msg_id_generated");
  out += message.msg_id_generated() ? "true" : "false";
  append_field(out, "source_protocol");
  append_json_string(out, enum_name(kProtocols, message.source_protocol()));
  append_field(out, "content_type");
  append_json_string(out, message.content_type());
  if (message.has_location()) {
    const v1::Location& location = message.location();
    append_field(out, "location");
    out += '{';
    append_field(out, "lat");
    append_number(out, location.lat());
    append_field(out, "lon");
    append_number(out, location.lon());
    const std::pair<const char*, std::pair<bool, double>> optional_fields[] = {
        {"alt", {location.has_alt(), location.alt()}},
        {"speed", {location.has_speed(), location.speed()}},
        {"heading", {location.has_heading(), location.heading()}},
        {"accuracy", {location.has_accuracy(), location.accuracy()}},
        {"battery", {location.has_battery(), location.battery()}}};
    for (const auto& [name, value] : optional_fields) {
      if (!value.first) continue;
      append_field(out, name);
      append_number(out, value.second);
    }
    out += '}';
  } else if (message.has_sensor()) {
    append_field(out, "sensor");
    out += "{\"readings\":[";
    for (int i = 0; i < message.sensor().readings_size(); ++i) {
      const v1::SensorReading& reading = message.sensor().readings(i);
      if (i) out += ',';
      out += '{';
      append_field(out, "name");
      append_json_string(out, reading.name());
      append_field(out, "value");
      append_number(out, reading.value());
      append_field(out, "unit");
      append_json_string(out, reading.unit());
      out += '}';
    }
    out += ']';
    if (message.sensor().attributes_size() > 0) {  // absent when empty: older consumers see no change
      out += ",\"attributes\":[";
      for (int i = 0; i < message.sensor().attributes_size(); ++i) {
        const v1::Attribute& attribute = message.sensor().attributes(i);
        if (i) out += ',';
        out += '{';
        append_field(out, "name");
        append_json_string(out, attribute.name());
        append_field(out, "value");
        append_json_string(out, attribute.value());
        out += '}';
      }
      out += ']';
    }
    out += '}';
  }
  out += '}';
}

namespace {

EnvelopeError bad_value(std::string message) { return EnvelopeError{EnvelopeErrc::bad_value, std::move(message)}; }

// Reads the JSON rendering back into the Protobuf message (tests, audits, `log dump`); not on
// the hot path. Any field of the wrong type throws simdjson_error, caught by parse().
void parse_json(std::string_view text, v1::Envelope& message) {
  namespace ondemand = simdjson::ondemand;
  ondemand::parser parser;
  const simdjson::padded_string padded(text);
  ondemand::document document = parser.iterate(padded);
  auto text_of = [](ondemand::value value) { return std::string(std::string_view(value.get_string())); };
  for (ondemand::field field : document.get_object()) {
    const std::string_view key = field.unescaped_key();
    ondemand::value value = field.value();
    if (key == "schema_version") {
      message.set_schema_version(static_cast<std::uint32_t>(std::uint64_t(value.get_uint64())));
    } else if (key == "tenant") {
      message.set_tenant(text_of(value));
    } else if (key == "device_id") {
      message.set_device_id(text_of(value));
    } else if (key == "device_type") {
      message.set_device_type(text_of(value));
    } else if (key == "message_type") {
      message.set_message_type(static_cast<v1::MessageType>(enum_value(kMessageTypes, text_of(value))));
    } else if (key == "event_time_ms") {
      message.set_event_time_ms(value.get_int64());
    } else if (key == "ingest_time_ms") {
      message.set_ingest_time_ms(value.get_int64());
    } else if (key == "gateway_id") {
      message.set_gateway_id(text_of(value));
    } else if (key == "msg_id") {
      message.set_msg_id(text_of(value));
    } else if (key == "msg_id_generated") {
      message.set_msg_id_generated(value.get_bool());
    } else if (key == "source_protocol") {
      message.set_source_protocol(static_cast<v1::SourceProtocol>(enum_value(kProtocols, text_of(value))));
    } else if (key == "content_type") {
      message.set_content_type(text_of(value));
    } else if (key == "location") {
      v1::Location& location = *message.mutable_location();
      for (ondemand::field item : value.get_object()) {
        const std::string_view name = item.unescaped_key();
        const double number = item.value().get_double();
        if (name == "lat") location.set_lat(number);
        if (name == "lon") location.set_lon(number);
        if (name == "alt") location.set_alt(number);
        if (name == "speed") location.set_speed(number);
        if (name == "heading") location.set_heading(number);
        if (name == "accuracy") location.set_accuracy(number);
        if (name == "battery") location.set_battery(number);
      }
    } else if (key == "sensor") {
      v1::Sensor& sensor = *message.mutable_sensor();
      for (ondemand::field list : value.get_object()) {
        const std::string_view list_name = list.unescaped_key();
        if (list_name == "readings") {
          for (ondemand::value item : list.value().get_array()) {
            v1::SensorReading& reading = *sensor.add_readings();
            for (ondemand::field part : item.get_object()) {
              const std::string_view name = part.unescaped_key();
              if (name == "name") reading.set_name(text_of(part.value()));
              if (name == "value") reading.set_value(part.value().get_double());
              if (name == "unit") reading.set_unit(text_of(part.value()));
            }
          }
        } else if (list_name == "attributes") {
          for (ondemand::value item : list.value().get_array()) {
            v1::Attribute& attribute = *sensor.add_attributes();
            for (ondemand::field part : item.get_object()) {
              const std::string_view name = part.unescaped_key();
              if (name == "name") attribute.set_name(text_of(part.value()));
              if (name == "value") attribute.set_value(text_of(part.value()));
            }
          }
        }
      }
    }
  }
}

std::expected<v1::Envelope, EnvelopeError> parse(std::string_view value, Format format) {
  v1::Envelope message;
  if (format == Format::protobuf) {
    if (!message.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return std::unexpected(bad_value("value is not a telegate.v1.Envelope Protobuf message"));
    }
    return message;
  }
  try {
    parse_json(value, message);
  } catch (const simdjson::simdjson_error& error) {
    return std::unexpected(bad_value(fmt::format("value is not a JSON telegate envelope: {}", error.what())));
  }
  return message;
}

}  // namespace

std::expected<std::string, EnvelopeError> render_json(std::string_view value, Format format) {
  auto message = parse(value, format);
  if (!message) return std::unexpected(message.error());
  std::string out;
  write_json(*message, out);
  return out;
}

std::expected<DecodedEnvelope, EnvelopeError> decode_envelope(std::string_view value, Format format) {
  auto parsed = parse(value, format);
  if (!parsed) return std::unexpected(parsed.error());
  const v1::Envelope& message = *parsed;
  DecodedEnvelope decoded;
  decoded.tenant = message.tenant();
  decoded.device_type = message.device_type();
  decoded.gateway_id = message.gateway_id();
  decoded.content_type = message.content_type();
  decoded.ingest_time_ms = message.ingest_time_ms();
  decoded.msg_id_generated = message.msg_id_generated();
  decoded.protocol = static_cast<SourceProtocol>(message.source_protocol());
  codecs::CanonicalRecord& record = decoded.record;
  record.device_id = message.device_id();
  record.type = message.message_type() == v1::MESSAGE_TYPE_SENSOR ? codecs::MessageType::sensor
                                                                  : codecs::MessageType::location;
  record.event_time_ms = message.event_time_ms();
  record.msg_id = message.msg_id();
  if (message.has_location()) {
    const v1::Location& location = message.location();
    record.location.lat = location.lat();
    record.location.lon = location.lon();
    if (location.has_alt()) record.location.alt = location.alt();
    if (location.has_speed()) record.location.speed = location.speed();
    if (location.has_heading()) record.location.heading = location.heading();
    if (location.has_accuracy()) record.location.accuracy = location.accuracy();
    if (location.has_battery()) record.location.battery = location.battery();
  }
  for (const v1::SensorReading& reading : message.sensor().readings()) {
    record.readings.push_back(codecs::SensorReading{reading.name(), reading.value(), reading.unit()});
  }
  for (const v1::Attribute& attribute : message.sensor().attributes()) {
    record.attributes.push_back(codecs::Attribute{attribute.name(), attribute.value()});
  }
  return decoded;
}

}  // namespace telegate::envelope
