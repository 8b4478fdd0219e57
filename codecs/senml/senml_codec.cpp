#include "senml/senml_codec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <new>
#include <optional>

namespace telegate::codecs {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;

namespace {

// RFC 8428 §4.5.3: times below 2**28 seconds are relative to the receiver's clock.
constexpr double kRelativeTimeLimit = 268435456.0;

// RFC 8428 §4.5.1: a resolved name starts with a letter or digit and continues with letters,
// digits and - : . / _
bool is_valid_name(std::string_view name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  return !name.empty() && alnum(name.front()) && std::all_of(name.begin(), name.end(), [&](char c) {
    return alnum(c) || c == '-' || c == ':' || c == '.' || c == '/' || c == '_';
  });
}

// Base fields, carried from record to record through the pack.
struct Base {
  std::string name;
  double time = 0;
  std::string unit;
  double value = 0;
  double sum = 0;
};

// One record's own fields, as read.
struct Fields {
  std::optional<std::string> name;
  std::optional<std::string> unit;
  std::optional<double> value;
  std::optional<bool> boolean;
  std::optional<double> sum;
  double time = 0;
  bool has_text_value = false;  // vs or vd: no numeric reading to map to
  bool regular = false;         // any field other than the base fields
};

struct Problem {
  std::string field;
  std::string reason;
};

// Reads a record object into `base` (updated in place, as the RFC carries bases forward) and
// `fields`. Returns a structural error, or a record-level problem, or nothing.
std::expected<std::optional<Problem>, error_code> read_fields(ondemand::object object, const DecodeLimits& limits,
                                                              Base& base, Fields& fields) {
  std::optional<Problem> problem;
  auto note = [&](std::string_view field, std::string reason) {
    if (!problem) problem = Problem{std::string(field), std::move(reason)};
  };
  const error_code structural = for_each_field(object, [&](std::string_view key, ondemand::value value) {
    auto read_number = [&](std::optional<double>& out) -> error_code {
      double number = 0;
      const error_code error = value.get_double().get(number);
      if (error && is_structural(error)) return error;
      if (error || !std::isfinite(number)) {
        note(key, "must be a finite number");
      } else {
        out = number;
      }
      return simdjson::SUCCESS;
    };
    auto read_text = [&](std::optional<std::string>& out) -> error_code {
      std::string_view text;
      const error_code error = value.get_string().get(text);
      if (error && is_structural(error)) return error;
      if (error) {
        note(key, "must be a string");
      } else if (text.size() > limits.max_string_bytes) {
        note(key, fmt::format("must be at most {} bytes", limits.max_string_bytes));
      } else {
        out = std::string(text);
      }
      return simdjson::SUCCESS;
    };

    error_code error = simdjson::SUCCESS;
    std::optional<double> number;
    std::optional<std::string> text;
    if (key == "bn") {
      if (!(error = read_text(text)) && text) base.name = std::move(*text);
    } else if (key == "bt") {
      if (!(error = read_number(number)) && number) base.time = *number;
    } else if (key == "bu") {
      if (!(error = read_text(text)) && text) base.unit = std::move(*text);
    } else if (key == "bv") {
      if (!(error = read_number(number)) && number) base.value = *number;
    } else if (key == "bs") {
      if (!(error = read_number(number)) && number) base.sum = *number;
    } else if (key == "bver") {
      error = read_number(number);
    } else {
      fields.regular = true;
      if (key == "n") {
        error = read_text(fields.name);
      } else if (key == "u") {
        error = read_text(fields.unit);
      } else if (key == "v") {
        error = read_number(fields.value);
      } else if (key == "s") {
        error = read_number(fields.sum);
      } else if (key == "t") {
        if (!(error = read_number(number)) && number) fields.time = *number;
      } else if (key == "ut") {
        error = read_number(number);
      } else if (key == "vb") {
        bool flag = false;
        error = value.get_bool().get(flag);
        if (error && !is_structural(error)) {
          note(key, "must be true or false");
          error = simdjson::SUCCESS;
        } else if (!error) {
          fields.boolean = flag;
        }
      } else if (key == "vs" || key == "vd") {
        fields.has_text_value = true;
      } else if (key.ends_with('_')) {
        note(key, "is a must-understand field (RFC 8428 §4.4) that telegate does not understand");
      }
      // Other unknown fields are extensions that may be ignored (RFC 8428 §4.4).
    }
    return error;
  });
  if (structural) return std::unexpected(structural);
  return problem;
}

}  // namespace

SenmlJsonCodec::SenmlJsonCodec(DecodeLimits limits) : limits_(limits) {
  if (parser_.allocate(std::size_t{1} << 16) != simdjson::SUCCESS) throw std::bad_alloc();
}

std::expected<void, CodecError> SenmlJsonCodec::decode(std::string_view body, const DecodeContext& context,
                                                       DecodedBatch& out) {
  if (context.content_type != kContentTypes[0]) {
    return std::unexpected(CodecError{CodecErrc::unsupported_content_type,
                                      fmt::format("the senml codec reads {}, not '{}'", kContentTypes[0],
                                                  context.content_type),
                                      std::nullopt});
  }
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return std::unexpected(CodecError{CodecErrc::empty_body, "the body holds no SenML pack", std::nullopt});
  }
  padded_.assign(body);
  ondemand::document document;
  if (const auto error = parser_.iterate(padded_.data(), padded_.size(), padded_.capacity()).get(document); error) {
    return std::unexpected(malformed_json(error, 0));
  }
  ondemand::array pack;
  if (const auto error = document.get_array().get(pack); error) {
    if (is_structural(error)) return std::unexpected(malformed_json(error, 0));
    return std::unexpected(CodecError{CodecErrc::malformed_body, "a SenML pack must be a JSON array of records", 0});
  }

  const double now_s =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  Base base;
  CanonicalRecord* group = nullptr;  // the sensor record consecutive same-time readings join
  std::size_t index = 0;
  for (auto element : pack) {
    const std::size_t this_index = index++;
    if (this_index == limits_.max_records) {
      return std::unexpected(CodecError{CodecErrc::too_many_records,
                                        fmt::format("more than {} SenML records in one pack", limits_.max_records),
                                        std::nullopt});
    }
    ondemand::object object;
    if (const auto error = element.get_object().get(object); error) {
      if (is_structural(error)) return std::unexpected(malformed_json(error, std::nullopt));
      out.reject(this_index, "", "a SenML record must be a JSON object");
      group = nullptr;
      continue;
    }
    Fields fields;
    auto read = read_fields(object, limits_, base, fields);
    if (!read) return std::unexpected(malformed_json(read.error(), std::nullopt));
    auto reject = [&](std::string field, std::string reason) {
      out.reject(this_index, std::move(field), std::move(reason));
      group = nullptr;
    };
    if (*read) {
      reject(std::move((*read)->field), std::move((*read)->reason));
      continue;
    }
    if (!fields.regular) continue;  // a record of base fields only sets the bases
    if (fields.has_text_value) {
      reject("vs", "string and data values (vs, vd) have no numeric sensor reading and are not accepted");
      continue;
    }
    if (!fields.value && !fields.boolean && !fields.sum) {
      reject("v", "a SenML record needs a value (v or vb) or a sum (s)");
      continue;
    }
    std::string name = base.name + fields.name.value_or("");
    if (!is_valid_name(name)) {
      reject("n", fmt::format("the resolved name '{}' is not a valid SenML name (RFC 8428 §4.5.1)", name.substr(0, 64)));
      continue;
    }
    double time_s = base.time + fields.time;
    if (time_s < kRelativeTimeLimit) time_s += now_s;
    const double time_ms = std::round(time_s * 1000.0);
    if (!std::isfinite(time_ms) || std::abs(time_ms) > 1e15) {
      reject("t", "the resolved time is out of range");
      continue;
    }
    const double value = fields.value   ? base.value + *fields.value
                         : fields.boolean ? (*fields.boolean ? 1.0 : 0.0)
                                          : base.sum + *fields.sum;
    const auto event_time_ms = static_cast<std::int64_t>(time_ms);
    if (!group || group->event_time_ms != event_time_ms || group->readings.size() >= limits_.max_readings) {
      group = &out.append(this_index);
      group->device_id.assign(context.device_id);
      group->type = MessageType::sensor;
      group->event_time_ms = event_time_ms;
    }
    group->readings.push_back(SensorReading{std::move(name), value, fields.unit.value_or(base.unit)});
  }
  return {};
}

}  // namespace telegate::codecs
