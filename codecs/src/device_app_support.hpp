// What the codecs of phone tracking apps (osmand, owntracks, overland) share: the first problem
// of a record, lenient JSON number reading, app timestamp spellings, and the "one message or an
// array of them" body shape. Header-only so that each codec folder stays self-contained.
#pragma once

#include <fmt/format.h>
#include <simdjson.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "src/simdjson_support.hpp"
#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/units.hpp"

namespace telegate::codecs::device_apps {

// A record is rejected once, naming the first thing wrong with it: the conformance contract
// wants at most one error per record index, and the first problem is the one a user fixes first.
struct RecordProblem {
  std::optional<FieldError> first;

  void note(std::string_view field, std::string reason) {
    if (!first) first = FieldError{0, std::string(field), std::move(reason)};
  }
  explicit operator bool() const noexcept { return first.has_value(); }
};

// The end of every app message: rejected with its first problem (nullptr), or appended as the
// location record of `device_id` at the fix it gave. A fix that is incomplete without a noted
// problem is a codec bug, and is still a rejection rather than a read of an empty optional.
inline CanonicalRecord* location_or_reject(DecodedBatch& out, std::size_t index, RecordProblem& problem,
                                           std::string_view device_id, std::optional<std::int64_t> time_ms,
                                           std::optional<double> lat, std::optional<double> lon) {
  if (!problem && !(time_ms && lat && lon)) problem.note("", "the location fix is incomplete");
  if (problem) {
    out.reject(index, std::move(problem.first->field), std::move(problem.first->reason));
    return nullptr;
  }
  CanonicalRecord& record = out.append(index);
  record.device_id = device_id;
  record.type = MessageType::location;
  record.event_time_ms = *time_ms;
  record.location.lat = *lat;
  record.location.lon = *lon;
  return &record;
}

inline std::string_view type_name(simdjson::ondemand::json_type type) {
  using simdjson::ondemand::json_type;
  switch (type) {
    case json_type::array: return "an array";
    case json_type::object: return "an object";
    case json_type::number: return "a number";
    case json_type::string: return "a string";
    case json_type::boolean: return "a boolean";
    case json_type::null: return "null";
  }
  return "unknown";
}

// Reads a JSON number into `out`; null leaves it unset (apps write null for "no fix data").
// A value of another type is the record's problem; the error returned is structural only.
inline simdjson::error_code read_number(simdjson::ondemand::value value, std::string_view field,
                                        std::optional<double>& out, RecordProblem& problem) {
  simdjson::ondemand::json_type type;
  if (const auto error = value.type().get(type); error) return error;
  if (type == simdjson::ondemand::json_type::null) return simdjson::SUCCESS;
  double number = 0;
  const auto error = value.get_double().get(number);
  if (error && is_structural(error)) return error;
  if (error || !std::isfinite(number)) {
    problem.note(field, type == simdjson::ondemand::json_type::number
                            ? std::string("is a number out of range")
                            : fmt::format("must be a number, not {}", type_name(type)));
    return simdjson::SUCCESS;
  }
  out = number;
  return simdjson::SUCCESS;
}

// Reads a JSON string (valid until the parser's next document); null leaves it unset.
inline simdjson::error_code read_text(simdjson::ondemand::value value, std::string_view field, std::size_t max_bytes,
                                      std::optional<std::string_view>& out, RecordProblem& problem) {
  simdjson::ondemand::json_type type;
  if (const auto error = value.type().get(type); error) return error;
  if (type == simdjson::ondemand::json_type::null) return simdjson::SUCCESS;
  std::string_view text;
  const auto error = value.get_string().get(text);
  if (error && is_structural(error)) return error;
  if (error) {
    problem.note(field, fmt::format("must be a string, not {}", type_name(type)));
  } else if (text.size() > max_bytes) {
    problem.note(field, fmt::format("must be at most {} bytes, got {}", max_bytes, text.size()));
  } else {
    out = text;
  }
  return simdjson::SUCCESS;
}

// Calls visit(key, value) for each field of `value` when it is an object; any other value is the
// record's problem, described as `shape` ("an object", "a GeoJSON Point", …).
template <class Visit>
simdjson::error_code for_each_field_of(simdjson::ondemand::value value, std::string_view field,
                                       std::string_view shape, RecordProblem& problem, Visit&& visit) {
  simdjson::ondemand::json_type type;
  if (const auto error = value.type().get(type); error) return error;
  if (type != simdjson::ondemand::json_type::object) {
    problem.note(field, fmt::format("must be {}, not {}", shape, type_name(type)));
    return simdjson::SUCCESS;
  }
  simdjson::ondemand::object object;
  if (const auto error = value.get_object().get(object); error) return error;
  return for_each_field(object, std::forward<Visit>(visit));
}

// The apps write -1 (or any negative) for "the OS did not report it" (iOS CLLocation speed,
// course and accuracy; Android's missing bearing): unknown, not a bad record.
inline std::optional<double> known(std::optional<double> value) {
  if (value && *value < 0) return std::nullopt;
  return value;
}

// A battery level as the OS reports it, a fraction in [0, 1] (-1 when unknown), as a percentage.
inline std::optional<double> battery_percent(std::optional<double> level, std::string_view field,
                                             RecordProblem& problem) {
  if (!level || *level < 0) return std::nullopt;
  if (*level > 1) {
    problem.note(field, fmt::format("must be a fraction within [0, 1] (-1 when unknown), got {}", *level));
    return std::nullopt;
  }
  return *level * 100.0;
}

// A decimal number as apps write it in text, surrounding spaces allowed (Java's
// Double.parseDouble, which Traccar uses, trims them); nullopt for anything else.
inline std::optional<double> parse_decimal(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

struct TimestampSpelling {
  // "2024-05-01 12:00:00" with no offset is UTC (OsmAnd's documented form).
  bool missing_offset_is_utc = false;
  // "…12:00:00 02:00": a '+' that an app left unencoded in a query string became a space.
  bool space_is_plus = false;
};

// An RFC 3339 date-time, also with a colon-less offset ("-0700", as iOS' ISO 8601 formatter
// writes it for Overland) and the spellings `spelling` allows; as Unix milliseconds.
inline std::optional<std::int64_t> parse_app_timestamp(std::string_view text, TimestampSpelling spelling) {
  constexpr std::size_t kSeconds = 19;  // "YYYY-MM-DDTHH:MM:SS"
  std::array<char, 48> buffer{};
  if (text.size() < kSeconds || text.size() + 2 > buffer.size()) return std::nullopt;
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t zone = kSeconds;  // where the offset starts, after any fraction
  if (zone < text.size() && text[zone] == '.') {
    ++zone;
    while (zone < text.size() && is_digit(text[zone])) ++zone;
  }
  const std::string_view head = text.substr(0, zone);
  std::string_view offset = text.substr(zone);
  std::size_t length = head.copy(buffer.data(), head.size());
  auto append = [&](std::string_view part) { length += part.copy(buffer.data() + length, part.size()); };
  if (offset.empty() && spelling.missing_offset_is_utc) {
    append("Z");
  } else if ((offset.size() == 5 || offset.size() == 6) && (offset[0] == '+' || offset[0] == '-' ||
                                                             (spelling.space_is_plus && offset[0] == ' '))) {
    const bool colon = offset.size() == 6;
    if (colon && offset[3] != ':') return std::nullopt;
    buffer[length++] = offset[0] == '-' ? '-' : '+';
    append(offset.substr(1, 2));
    append(":");
    append(offset.substr(colon ? 4 : 3, 2));
  } else {
    append(offset);
  }
  return parse_rfc3339_ms(std::string_view(buffer.data(), length));
}

// Calls read(value, index) for a body that is one JSON message object (index 0) or an array of
// them (index = position), as the apps send either. `read` returns a structural simdjson error
// or SUCCESS; it reports record problems itself.
template <class Read>
std::expected<void, CodecError> for_each_message(simdjson::ondemand::parser& parser, const PaddedBody& padded,
                                                 std::size_t max_records, std::string_view what, Read&& read) {
  namespace ondemand = simdjson::ondemand;
  ondemand::document document;
  if (const auto error = parser.iterate(padded.data(), padded.size(), padded.capacity()).get(document); error) {
    return std::unexpected(malformed_json(error, 0));
  }
  auto offset_of = [&]() -> std::optional<std::size_t> {
    const char* at = nullptr;
    if (document.current_location().get(at) != simdjson::SUCCESS) return padded.size();
    return padded.offset_of(at);
  };
  ondemand::json_type type;
  if (const auto error = document.type().get(type); error) return std::unexpected(malformed_json(error, offset_of()));
  if (type == ondemand::json_type::array) {
    ondemand::array messages;
    if (const auto error = document.get_array().get(messages); error) {
      return std::unexpected(malformed_json(error, offset_of()));
    }
    std::size_t index = 0;
    for (auto element : messages) {
      ondemand::value value;
      if (const auto error = element.get(value); error) return std::unexpected(malformed_json(error, offset_of()));
      if (index == max_records) {
        return std::unexpected(CodecError{CodecErrc::too_many_records,
                                          fmt::format("more than {} messages in one body", max_records), offset_of()});
      }
      if (const auto error = read(value, index++); error) return std::unexpected(malformed_json(error, offset_of()));
    }
  } else if (type == ondemand::json_type::object) {
    ondemand::value value;
    if (const auto error = document.get_value().get(value); error) {
      return std::unexpected(malformed_json(error, offset_of()));
    }
    if (const auto error = read(value, 0); error) return std::unexpected(malformed_json(error, offset_of()));
  } else {
    return std::unexpected(CodecError{
        CodecErrc::malformed_body,
        fmt::format("the body must be {} object or an array of them, not {}", what, type_name(type)), 0});
  }
  // current_location() only succeeds while unread structural content remains.
  if (const char* trailing = nullptr; document.current_location().get(trailing) == simdjson::SUCCESS) {
    return std::unexpected(
        CodecError{CodecErrc::malformed_body, "trailing content after the JSON value", padded.offset_of(trailing)});
  }
  return {};
}

// `value` as an object into `object`; a value of another type is rejected as `what` ("a
// location must be a GeoJSON Feature object, not an array") and `object` stays empty. The value
// is left unread, so the enclosing array skips it and the next message can still be read.
inline simdjson::error_code object_or_reject(simdjson::ondemand::value value, std::size_t index, std::string_view what,
                                             DecodedBatch& out, std::optional<simdjson::ondemand::object>& object) {
  simdjson::ondemand::json_type type;
  if (const auto error = value.type().get(type); error) return error;
  if (type != simdjson::ondemand::json_type::object) {
    out.reject(index, "", fmt::format("{} must be a JSON object, not {}", what, type_name(type)));
    return simdjson::SUCCESS;
  }
  return value.get_object().get(object.emplace());
}

// The checks every codec makes before parsing, with the same wording.
inline std::optional<CodecError> refuse_body(std::string_view codec, std::string_view body,
                                             std::string_view content_type,
                                             std::span<const std::string_view> accepted) {
  bool known_type = false;
  std::string list;
  for (const std::string_view type : accepted) {
    known_type = known_type || type == content_type;
    list += fmt::format("{}{}", list.empty() ? "" : " and ", type);
  }
  if (!known_type) {
    return CodecError{CodecErrc::unsupported_content_type,
                      fmt::format("the {} codec reads {}, not '{}'", codec, list, content_type), std::nullopt};
  }
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return CodecError{CodecErrc::empty_body, "the body is empty", std::nullopt};
  }
  return std::nullopt;
}

}  // namespace telegate::codecs::device_apps
