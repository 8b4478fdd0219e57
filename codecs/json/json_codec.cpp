#include "json/json_codec.hpp"

#include "telegate/codecs/units.hpp"

#include <fmt/format.h>

#include <cstring>
#include <new>

namespace telegate::codecs {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;

namespace {

std::string_view type_name(ondemand::json_type type) {
  switch (type) {
    case ondemand::json_type::array: return "an array";
    case ondemand::json_type::object: return "an object";
    case ondemand::json_type::number: return "a number";
    case ondemand::json_type::string: return "a string";
    case ondemand::json_type::boolean: return "a boolean";
    case ondemand::json_type::null: return "null";
  }
  return "unknown";
}

// The fields the json codec maps; any other key is skipped.
enum class Field : std::uint8_t {
  unknown, device_id, type, ts, msg_id, lat, lon, alt, speed, heading, accuracy, battery, name, value, unit, readings
};

// Classified by length first, so a key costs one or two short compares instead of a walk down
// every name.
Field field_of(std::string_view key) noexcept {
  switch (key.size()) {
    case 2: return key == "ts" ? Field::ts : Field::unknown;
    case 3: return key == "lat" ? Field::lat : key == "lon" ? Field::lon : key == "alt" ? Field::alt : Field::unknown;
    case 4: return key == "type" ? Field::type : key == "name" ? Field::name : key == "unit" ? Field::unit : Field::unknown;
    case 5: return key == "speed" ? Field::speed : key == "value" ? Field::value : Field::unknown;
    case 6: return key == "msg_id" ? Field::msg_id : Field::unknown;
    case 7: return key == "heading" ? Field::heading : key == "battery" ? Field::battery : Field::unknown;
    case 8: return key == "accuracy" ? Field::accuracy : key == "readings" ? Field::readings : Field::unknown;
    case 9: return key == "device_id" ? Field::device_id : Field::unknown;
    default: return Field::unknown;
  }
}

// The name a problem report gives a mapped field, in Field's order.
constexpr std::array<std::string_view, 16> kFieldNames{
    "",      "device_id", "type",     "ts",      "msg_id", "lat",   "lon",  "alt",
    "speed", "heading",   "accuracy", "battery", "name",   "value", "unit", "readings"};
static_assert(kFieldNames.size() == static_cast<std::size_t>(Field::readings) + 1);

std::string_view name_of(Field field) noexcept { return kFieldNames[static_cast<std::size_t>(field)]; }

// A JSON string's text, read in place from just after its opening quote, when it holds no
// escape: then the input bytes are the value (stage 1 already validated UTF-8 and refused raw
// control characters), and simdjson's unescaping copy — an indirect call per string, most of
// this codec's cost on short keys — can be skipped. nullopt when there is an escape.
std::optional<std::string_view> text_in_place(const char* text) noexcept {
  const char* end = text;
  while (*end != '"' && *end != '\\') ++end;
  if (*end == '\\') return std::nullopt;
  return std::string_view(text, static_cast<std::size_t>(end - text));
}

// Calls visit(field, value) for every field of `object`, in document order (On-Demand's
// cheapest), with the key classified from its raw bytes; only a key with an escape is
// unescaped. Stops at the first error, from simdjson or from `visit`, and returns it.
template <class Visit>
error_code for_each_mapped_field(ondemand::object object, Visit&& visit) {
  for (auto field_result : object) {
    if (const auto error = field_result.error(); error) return error;
    // Used in place: copying the field out (get()) costs a store-forwarding stall per field.
    ondemand::field& field = field_result.value_unsafe();
    std::string_view key;
    if (const auto raw = text_in_place(field.key().raw())) {
      key = *raw;
    } else if (const auto error = field.unescaped_key().get(key); error) {
      return error;
    }
    if (const auto error = visit(field_of(key), field.value()); error) return error;
  }
  return simdjson::SUCCESS;
}

// value.get_string(), without the copy through the parser's string buffer when the string has
// no escape. Errors are get_string()'s: a non-string goes to get_string() to report them.
simdjson::simdjson_result<std::string_view> get_text(ondemand::value& value) noexcept {
  const std::string_view token = value.raw_json_token();
  if (!token.empty() && token.front() == '"') {
    if (const auto text = text_in_place(token.data() + 1)) {
      ondemand::raw_json_string consumed;  // moves the iterator past the string
      if (const auto error = value.get_raw_json_string().get(consumed); error) return error;
      return std::string_view(*text);
    }
  }
  return value.get_string();
}

}  // namespace

JsonCodec::JsonCodec(DecodeLimits limits) : limits_(limits) {
  // No nesting limit is needed: On-Demand skips values it does not read iteratively, without
  // recursion, so deep nesting costs time proportional to its size and never stack.
  if (parser_.allocate(std::size_t{1} << 16) != simdjson::SUCCESS) throw std::bad_alloc();
}

std::expected<void, CodecError> JsonCodec::decode(std::string_view body, const DecodeContext& context,
                                                  DecodedBatch& out) {
  const bool ndjson = context.content_type == "application/x-ndjson";
  if (!ndjson && context.content_type != "application/json") {
    return std::unexpected(CodecError{CodecErrc::unsupported_content_type,
                                      fmt::format("the json codec reads application/json and application/x-ndjson, "
                                                  "not '{}'",
                                                  context.content_type),
                                      std::nullopt});
  }
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return std::unexpected(CodecError{CodecErrc::empty_body, "the body holds no JSON", std::nullopt});
  }
  padded_.assign(body);
  return ndjson ? decode_lines(body.size(), out) : decode_document(body.size(), out);
}

std::expected<void, CodecError> JsonCodec::decode_document(std::size_t length, DecodedBatch& out) {
  auto offset_of = [&](ondemand::document& document) -> std::optional<std::size_t> {
    const char* at = nullptr;
    if (document.current_location().get(at) != simdjson::SUCCESS) return length;
    return padded_.offset_of(at);
  };
  ondemand::document document;
  if (const auto error = parser_.iterate(padded_.data(), length, padded_.capacity()).get(document); error) {
    return std::unexpected(malformed_json(error, 0));
  }
  ondemand::json_type type;
  if (const auto error = document.type().get(type); error) return std::unexpected(malformed_json(error, offset_of(document)));

  if (type == ondemand::json_type::array) {
    ondemand::array records;
    if (const auto error = document.get_array().get(records); error) {
      return std::unexpected(malformed_json(error, offset_of(document)));
    }
    std::size_t index = 0;
    for (auto element : records) {
      ondemand::value value;
      if (const auto error = element.get(value); error) return std::unexpected(malformed_json(error, offset_of(document)));
      if (index == limits_.max_records) {
        return std::unexpected(CodecError{CodecErrc::too_many_records,
                                          fmt::format("more than {} records in one body", limits_.max_records),
                                          offset_of(document)});
      }
      if (auto added = add_record(value, index++, out); !added) {
        added.error().offset = offset_of(document);
        return added;
      }
    }
  } else if (type == ondemand::json_type::object) {
    ondemand::value value;
    if (const auto error = document.get_value().get(value); error) {
      return std::unexpected(malformed_json(error, offset_of(document)));
    }
    if (auto added = add_record(value, 0, out); !added) {
      added.error().offset = offset_of(document);
      return added;
    }
  } else {
    return std::unexpected(CodecError{CodecErrc::malformed_body,
                                      fmt::format("the body must be a record object or an array of records, not {}",
                                                  type_name(type)),
                                      0});
  }
  // current_location() only succeeds while unread structural content remains.
  if (const char* trailing = nullptr; document.current_location().get(trailing) == simdjson::SUCCESS) {
    return std::unexpected(CodecError{CodecErrc::malformed_body, "trailing content after the JSON value",
                                      padded_.offset_of(trailing)});
  }
  return {};
}

std::expected<void, CodecError> JsonCodec::decode_lines(std::size_t length, DecodedBatch& out) {
  ondemand::document_stream stream;
  const std::size_t batch_size = std::max<std::size_t>(length, simdjson::dom::MINIMAL_BATCH_SIZE);
  if (const auto error = parser_.iterate_many(padded_.data(), length, batch_size).get(stream); error) {
    return std::unexpected(malformed_json(error, 0));
  }
  std::size_t index = 0;
  for (auto it = stream.begin(); it != stream.end(); ++it) {
    const std::size_t offset = it.current_index();
    ondemand::document_reference document;
    if (const auto error = (*it).get(document); error) return std::unexpected(malformed_json(error, offset));
    if (index == limits_.max_records) {
      return std::unexpected(CodecError{CodecErrc::too_many_records,
                                        fmt::format("more than {} records in one body", limits_.max_records), offset});
    }
    ondemand::value value;
    if (const auto error = document.get_value().get(value); error) return std::unexpected(malformed_json(error, offset));
    if (auto added = add_record(value, index++, out); !added) {
      added.error().offset = offset;
      return added;
    }
  }
  if (stream.truncated_bytes() != 0) {
    return std::unexpected(CodecError{CodecErrc::malformed_body, "the last NDJSON line is incomplete",
                                      length - stream.truncated_bytes()});
  }
  return {};
}

std::expected<void, CodecError> JsonCodec::add_record(ondemand::value value, std::size_t index, DecodedBatch& out) {
  CanonicalRecord& record = out.append(index);
  RecordResult read = read_record(value, record);
  if (!read) {
    out.drop_last();
    return std::unexpected(malformed_json(read.error(), std::nullopt));
  }
  if (*read) {
    out.drop_last();
    out.reject(index, std::move((*read)->field), std::move((*read)->reason));
  }
  return {};
}

JsonCodec::RecordResult JsonCodec::read_record(ondemand::value value, CanonicalRecord& record) {
  std::optional<RecordProblem> problem;
  auto note = [&](Field field, std::string reason) {
    if (!problem) problem = RecordProblem{std::string(name_of(field)), std::move(reason)};
  };

  ondemand::json_type type;
  if (const auto error = value.type().get(type); error) return std::unexpected(error);
  if (type != ondemand::json_type::object) {
    // Left unread: the enclosing array skips it, so the next record can still be read.
    return RecordProblem{"", fmt::format("a record must be a JSON object, not {}", type_name(type))};
  }
  ondemand::object object;
  if (const auto error = value.get_object().get(object); error) return std::unexpected(error);

  bool has_device = false, has_type = false, has_ts = false, has_lat = false, has_lon = false;
  bool has_single_reading = false;
  SensorReading single;

  // A string field: structural errors abort, type errors and oversize strings are noted.
  auto read_string = [&](ondemand::value& field_value, Field field, std::string& out) -> error_code {
    std::string_view text;
    const error_code error = get_text(field_value).get(text);
    if (error) {
      if (is_structural(error)) return error;
      note(field, "must be a string");
      return simdjson::SUCCESS;
    }
    if (text.size() > limits_.max_string_bytes) {
      note(field, fmt::format("must be at most {} bytes, got {}", limits_.max_string_bytes, text.size()));
      return simdjson::SUCCESS;
    }
    out.assign(text);
    return simdjson::SUCCESS;
  };
  auto read_number = [&](ondemand::value& field_value, Field field, auto& out) -> error_code {
    double number = 0;
    const error_code error = field_value.get_double().get(number);
    if (error) {
      if (is_structural(error)) return error;
      note(field, "must be a number");
      return simdjson::SUCCESS;
    }
    out = number;
    return simdjson::SUCCESS;
  };
  auto read_type = [&](ondemand::value& field_value) -> error_code {
    std::string_view text;
    const error_code error = get_text(field_value).get(text);
    if (error) {
      if (is_structural(error)) return error;
      note(Field::type, "must be a string: location or sensor");
    } else if (const auto parsed = parse_message_type(text)) {
      record.type = *parsed;
    } else {
      note(Field::type, fmt::format("must be location or sensor, got '{}'", text.substr(0, 32)));
    }
    return simdjson::SUCCESS;
  };
  auto read_ts = [&](ondemand::value& field_value) -> error_code {
    ondemand::json_type ts_type;
    if (const auto error = field_value.type().get(ts_type); error) return error;
    if (ts_type == ondemand::json_type::number) {
      std::int64_t millis = 0;
      const error_code error = field_value.get_int64().get(millis);
      if (error) {
        if (is_structural(error)) return error;
        note(Field::ts, "must be a whole number of epoch milliseconds or an RFC 3339 string");
      } else {
        record.event_time_ms = millis;
      }
    } else if (ts_type == ondemand::json_type::string) {
      std::string_view text;
      if (const auto error = get_text(field_value).get(text); error) return error;
      if (const auto parsed = parse_rfc3339_ms(text)) {
        record.event_time_ms = *parsed;
      } else {
        note(Field::ts, fmt::format("'{}' is not an RFC 3339 date-time such as 2026-11-24T10:00:00Z", text.substr(0, 40)));
      }
    } else {
      note(Field::ts, "must be epoch milliseconds or an RFC 3339 string");
    }
    return simdjson::SUCCESS;
  };

  const error_code structural = for_each_mapped_field(object, [&](Field field, ondemand::value& field_value) -> error_code {
    switch (field) {
      case Field::device_id: has_device = true; return read_string(field_value, field, record.device_id);
      case Field::type: has_type = true; return read_type(field_value);
      case Field::ts: has_ts = true; return read_ts(field_value);
      case Field::msg_id: return read_string(field_value, field, record.msg_id);
      case Field::lat: has_lat = true; return read_number(field_value, field, record.location.lat);
      case Field::lon: has_lon = true; return read_number(field_value, field, record.location.lon);
      case Field::alt: return read_number(field_value, field, record.location.alt);
      case Field::speed: return read_number(field_value, field, record.location.speed);
      case Field::heading: return read_number(field_value, field, record.location.heading);
      case Field::accuracy: return read_number(field_value, field, record.location.accuracy);
      case Field::battery: return read_number(field_value, field, record.location.battery);
      case Field::name: has_single_reading = true; return read_string(field_value, field, single.name);
      case Field::value: has_single_reading = true; return read_number(field_value, field, single.value);
      case Field::unit: return read_string(field_value, field, single.unit);
      case Field::readings: {
        RecordResult readings = read_readings(field_value, record);
        if (!readings) return readings.error();
        if (*readings && !problem) problem = std::move(*readings);
        return simdjson::SUCCESS;
      }
      case Field::unknown: break;
    }
    // Unknown fields are skipped: devices may send more than telegate maps (forward compatible).
    return simdjson::SUCCESS;
  });
  if (structural) return std::unexpected(structural);

  if (problem) return problem;
  if (!has_device) return RecordProblem{"device_id", "is required"};
  if (!has_type) return RecordProblem{"type", "is required (location or sensor)"};
  if (!has_ts) return RecordProblem{"ts", "is required (epoch milliseconds or RFC 3339)"};
  if (record.type == MessageType::location) {
    if (!has_lat) return RecordProblem{"lat", "is required for a location record"};
    if (!has_lon) return RecordProblem{"lon", "is required for a location record"};
  } else if (has_single_reading) {
    if (single.name.empty()) return RecordProblem{"name", "is required with value"};
    record.readings.push_back(std::move(single));
  }
  if (record.type == MessageType::sensor && record.readings.empty()) {
    return RecordProblem{"readings", "a sensor record needs readings, or name and value"};
  }
  return std::nullopt;
}

JsonCodec::RecordResult JsonCodec::read_readings(ondemand::value value, CanonicalRecord& record) {
  ondemand::array readings;
  if (const auto error = value.get_array().get(readings); error) {
    if (is_structural(error)) return std::unexpected(error);
    return RecordProblem{"readings", "must be an array of {name, value, unit} objects"};
  }
  std::optional<RecordProblem> problem;
  std::size_t index = 0;
  for (auto element : readings) {
    ondemand::object reading_object;
    if (const auto error = element.get_object().get(reading_object); error) {
      if (is_structural(error)) return std::unexpected(error);
      if (!problem) problem = RecordProblem{fmt::format("readings[{}]", index), "must be an object"};
      ++index;
      continue;
    }
    if (index >= limits_.max_readings) {
      if (!problem) problem = RecordProblem{"readings", fmt::format("at most {} readings per record", limits_.max_readings)};
      ++index;
      continue;
    }
    SensorReading& reading = record.readings.emplace_back();
    bool has_name = false, has_value = false;
    const error_code structural = for_each_mapped_field(reading_object, [&](Field field, ondemand::value& field_value) {
      error_code error = simdjson::SUCCESS;
      if (field == Field::name || field == Field::unit) {
        std::string_view text;
        error = get_text(field_value).get(text);
        if (error && !is_structural(error)) {
          if (!problem) problem = RecordProblem{fmt::format("readings[{}].{}", index, name_of(field)), "must be a string"};
          error = simdjson::SUCCESS;
        } else if (!error && text.size() > limits_.max_string_bytes) {
          if (!problem) {
            problem = RecordProblem{fmt::format("readings[{}].{}", index, name_of(field)),
                                    fmt::format("must be at most {} bytes", limits_.max_string_bytes)};
          }
        } else if (!error) {
          (field == Field::name ? reading.name : reading.unit).assign(text);
          has_name = has_name || field == Field::name;
        }
      } else if (field == Field::value) {
        error = field_value.get_double().get(reading.value);
        if (error && !is_structural(error)) {
          if (!problem) problem = RecordProblem{fmt::format("readings[{}].value", index), "must be a number"};
          error = simdjson::SUCCESS;
        } else if (!error) {
          has_value = true;
        }
      }
      return error;
    });
    if (structural) return std::unexpected(structural);
    if (!problem && !has_name) problem = RecordProblem{fmt::format("readings[{}].name", index), "is required"};
    if (!problem && !has_value) problem = RecordProblem{fmt::format("readings[{}].value", index), "is required"};
    ++index;
  }
  return problem;
}

}  // namespace telegate::codecs
