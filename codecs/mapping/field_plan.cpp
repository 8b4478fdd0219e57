#include "mapping/field_plan.hpp"

#include "telegate/codecs/clock.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <set>

namespace telegate::codecs::mapping {

namespace {

struct TargetName {
  std::string_view name;
  Target target;
};

constexpr TargetName kTargets[] = {
    {"lat", Target::lat},         {"lon", Target::lon},           {"alt", Target::alt},
    {"speed", Target::speed},     {"heading", Target::heading},   {"accuracy", Target::accuracy},
    {"battery", Target::battery}, {"time", Target::time},         {"msg_id", Target::msg_id},
    {"device_id", Target::device_id},
};

// ---- control plane: reading the options -------------------------------------------------------

// A number option; any finite YAML number ("1e-7", "-5", "0.1").
std::optional<double> read_number(OptionReader& reader, std::string_view key) {
  const YAML::Node value = reader.take(key);
  if (!value) return std::nullopt;
  if (!value.IsScalar()) throw OptionError(reader.key_path(key), "must be a number");
  const std::string& text = value.Scalar();
  double parsed = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(parsed)) {
    throw OptionError(reader.key_path(key), "must be a number, got '" + text + "'");
  }
  return parsed;
}

std::optional<std::string> read_text(OptionReader& reader, std::string_view key) {
  if (!reader.has(key)) {
    reader.take(key);
    return std::nullopt;
  }
  std::string text;
  reader.string(key, text);
  return text;
}

// An option that only makes sense for some targets: refused by name for the others, so that
// a typo'd intent ("scale" on msg_id) is never silently ignored.
void refuse(OptionReader& reader, std::string_view key, std::string_view why) {
  if (reader.has(key)) throw OptionError(reader.key_path(key), std::string(why));
  reader.take(key);
}

void read_unit(OptionReader& reader, FieldPlan& field) {
  if (!reader.has("unit")) return;
  if (field.target == Target::speed) {
    field.unit_factor = metres_per_second_per(read_speed_unit(reader, "unit", SpeedUnit::mps));
  } else if (field.target == Target::time) {
    std::string text;
    reader.string("unit", text);
    if (text == "rfc3339") {
      field.time_format = TimeFormat::rfc3339;
    } else if (const auto unit = parse_epoch_unit(text)) {
      field.epoch_unit = *unit;
    } else {
      throw OptionError(reader.key_path("unit"),
                        fmt::format("must be one of {}, got '{}'", kTimeUnitNames, text));
    }
  } else if (field.target == Target::reading) {
    refuse(reader, "unit", "a reading's unit is its label: use unit_label (e.g. unit_label: Cel)");
  } else {
    refuse(reader, "unit", "applies to speed (mps, kmh, knots, mph) and time (s, ms, us, auto, rfc3339) only");
  }
}

// One entry of `fields` or `readings`. `index` is the field's position in RecordPlan::fields.
FieldPlan read_field(OptionReader& reader, Target target, const std::string& name, std::string_view source_key,
                     std::size_t index, const SourceCompiler& compile_source) {
  FieldPlan field;
  field.target = target;
  field.field = target == Target::reading ? "readings." + name : name;
  field.reading_name = target == Target::reading ? name : std::string();
  field.has_source = reader.has(source_key);
  reader.string(source_key, field.source);
  field.required = target == Target::lat || target == Target::lon || target == Target::time;
  reader.boolean("required", field.required);

  read_unit(reader, field);
  if (target == Target::reading) {
    reader.string("unit_label", field.unit_label);
  } else {
    refuse(reader, "unit_label", "applies to readings only (speed and time take unit)");
  }

  if (is_text(target)) {
    constexpr std::string_view kText = "applies to numbers and times only: msg_id and device_id are text";
    for (const std::string_view key : {"scale", "offset", "min", "max"}) refuse(reader, key, kText);
    field.text_default = read_text(reader, "default");
    field.text_constant = read_text(reader, "constant");
  } else {
    field.scale = read_number(reader, "scale").value_or(1.0);
    field.offset = read_number(reader, "offset").value_or(0.0);
    field.min = read_number(reader, "min");
    field.max = read_number(reader, "max");
    if (field.min && field.max && *field.min > *field.max) {
      throw OptionError(reader.key_path("max"), fmt::format("must not be below min ({})", *field.min));
    }
    if (field.time_format == TimeFormat::rfc3339 && (field.scale != 1.0 || field.offset != 0.0)) {
      throw OptionError(reader.key_path(reader.has("scale") ? "scale" : "offset"),
                        "does not apply to unit rfc3339 (the time is text)");
    }
    if (target == Target::time) {
      constexpr std::string_view kTime =
          "the event time must come from the payload (required: false falls back to the gateway clock)";
      refuse(reader, "default", kTime);
      refuse(reader, "constant", kTime);
    } else {
      field.number_default = read_number(reader, "default");
      field.number_constant = read_number(reader, "constant");
    }
  }

  const bool has_constant = field.number_constant || field.text_constant;
  if (field.has_source && has_constant) {
    throw OptionError(reader.key_path("constant"), fmt::format("give either {} or constant, not both", source_key));
  }
  if (!field.has_source && !has_constant) {
    throw OptionError(reader.key_path(source_key), target == Target::time ? "is required"
                                                                         : "is required (or give a constant)");
  }
  if ((target == Target::lat || target == Target::lon) && !field.required && !field.number_default) {
    throw OptionError(reader.key_path("required"),
                      "a location record needs lat and lon: give a default instead of required: false");
  }
  if (field.has_source) compile_source(index, field, reader.key_path(source_key));
  reader.finish();
  return field;
}

// `constants: {battery: 100, msg_id: fixed}`: shorthand for fields with `constant`.
void read_constants(OptionReader& options, RecordPlan& plan, std::set<Target>& seen) {
  const YAML::Node node = options.take("constants");
  if (!node || node.IsNull()) return;
  OptionReader constants(node, options.key_path("constants"));
  for (const auto& item : node) {
    const std::string name = item.first.Scalar();
    const auto target = parse_target(name);
    if (!target) {
      throw OptionError(constants.key_path(name), fmt::format("unknown field; known fields: {}", kFieldNames));
    }
    if (*target == Target::time) {
      throw OptionError(constants.key_path(name), "the event time must come from the payload, not a constant");
    }
    if (plan.message_type == MessageType::sensor && is_location(*target)) {
      throw OptionError(constants.key_path(name), "a sensor record has no " + name + " (message_type is sensor)");
    }
    if (!seen.insert(*target).second) {
      throw OptionError(constants.key_path(name), "is already mapped under fields");
    }
    FieldPlan field;
    field.target = *target;
    field.field = name;
    field.source = "constant";
    if (is_text(*target)) {
      field.text_constant = read_text(constants, name);
    } else {
      field.number_constant = read_number(constants, name);
    }
    if (!field.number_constant && !field.text_constant) {
      throw OptionError(constants.key_path(name), "must be a value");
    }
    plan.fields.push_back(std::move(field));
  }
  constants.finish();
}

// ---- data path: converting values -------------------------------------------------------------

std::string_view excerpt(std::string_view text) { return text.substr(0, 40); }

std::optional<double> parse_decimal(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

FieldProblem problem(const FieldPlan& plan, std::string reason) {
  return FieldProblem{plan.field, fmt::format("{} (at {})", reason, plan.source)};
}

// JSON numbers, numeric strings ("12.5" from a form or a stringly-typed app), and for readings
// booleans as 1/0 (a door contact is a reading too).
std::optional<double> to_number(const FieldPlan& plan, const RawValue& raw, std::optional<FieldProblem>& failure) {
  switch (raw.kind) {
    case RawValue::Kind::number: return raw.number;
    case RawValue::Kind::signed_integer: return static_cast<double>(raw.signed_integer);
    case RawValue::Kind::unsigned_integer: return static_cast<double>(raw.unsigned_integer);
    case RawValue::Kind::boolean:
      if (plan.target == Target::reading) return raw.boolean ? 1.0 : 0.0;
      failure = problem(plan, "must be a number, not a boolean");
      return std::nullopt;
    case RawValue::Kind::text:
      if (const auto value = parse_decimal(raw.text)) return value;
      failure = problem(plan, fmt::format("must be a number, got '{}'", excerpt(raw.text)));
      return std::nullopt;
    case RawValue::Kind::other:
      failure = problem(plan, fmt::format("must be a number, not {}", raw.text));
      return std::nullopt;
    case RawValue::Kind::absent: break;
  }
  failure = problem(plan, "is absent");
  return std::nullopt;
}

std::string range_text(const FieldPlan& plan) {
  return fmt::format("[{}, {}]", plan.min ? fmt::format("{}", *plan.min) : std::string("-inf"),
                     plan.max ? fmt::format("{}", *plan.max) : std::string("inf"));
}

bool in_range(const FieldPlan& plan, double value) {
  return (!plan.min || value >= *plan.min) && (!plan.max || value <= *plan.max);
}

void store_number(const FieldPlan& plan, double value, CanonicalRecord& record) {
  Location& at = record.location;
  switch (plan.target) {
    case Target::lat: at.lat = value; break;
    case Target::lon: at.lon = value; break;
    case Target::alt: at.alt = value; break;
    case Target::speed: at.speed = value; break;
    case Target::heading: at.heading = value; break;
    case Target::accuracy: at.accuracy = value; break;
    case Target::battery: at.battery = value; break;
    case Target::reading: {
      SensorReading& reading = record.readings.emplace_back();
      reading.name.assign(plan.reading_name);
      reading.value = value;
      reading.unit.assign(plan.unit_label);
      break;
    }
    case Target::time:
    case Target::msg_id:
    case Target::device_id: break;  // not numbers: apply() routes them elsewhere
  }
}

std::optional<FieldProblem> apply_number(const FieldPlan& plan, const RawValue& raw, CanonicalRecord& record) {
  if (plan.number_constant) {
    store_number(plan, *plan.number_constant, record);
    return std::nullopt;
  }
  if (raw.kind == RawValue::Kind::absent) {
    if (plan.number_default) {
      store_number(plan, *plan.number_default, record);
    } else if (plan.required) {
      return problem(plan, "is required but absent");
    }
    return std::nullopt;
  }
  std::optional<FieldProblem> failure;
  const std::optional<double> number = to_number(plan, raw, failure);
  if (!number) return failure;
  const double value = (*number * plan.scale + plan.offset) * plan.unit_factor;
  if (!std::isfinite(value)) return problem(plan, "must be a finite number");
  if (!in_range(plan, value)) return problem(plan, fmt::format("must be within {}, got {}", range_text(plan), value));
  store_number(plan, value, record);
  return std::nullopt;
}

// A form's '+' decodes to a space, so an unencoded "+02:00" offset arrives as " 02:00".
std::optional<std::int64_t> parse_time_text(std::string_view text) {
  if (const auto parsed = parse_rfc3339_ms(text)) return parsed;
  if (text.size() > 19 && text.find(' ', 19) != std::string_view::npos) {
    std::string repaired(text.substr(0, 64));
    for (std::size_t i = 19; i < repaired.size(); ++i) {
      if (repaired[i] == ' ') repaired[i] = '+';
    }
    return parse_rfc3339_ms(repaired);
  }
  return std::nullopt;
}

std::optional<FieldProblem> apply_time(const FieldPlan& plan, const RawValue& raw, CanonicalRecord& record) {
  if (raw.kind == RawValue::Kind::absent) {
    if (plan.required) return problem(plan, "is required but absent");
    record.event_time_ms = unix_ms_now();
    return std::nullopt;
  }
  std::optional<std::int64_t> millis;
  if (plan.time_format == TimeFormat::rfc3339) {
    if (raw.kind != RawValue::Kind::text) return problem(plan, "must be an RFC 3339 date-time string");
    millis = parse_time_text(raw.text);
    if (!millis) {
      return problem(plan, fmt::format("'{}' is not an RFC 3339 date-time such as 2026-11-24T10:00:00Z",
                                       excerpt(raw.text)));
    }
  } else {
    std::optional<FieldProblem> failure;
    const std::optional<double> number = to_number(plan, raw, failure);
    if (number) {
      millis = epoch_to_ms(*number * plan.scale + plan.offset, plan.epoch_unit);
      if (!millis) return problem(plan, fmt::format("{} is not an epoch time in {}", *number, to_string(plan.epoch_unit)));
    } else if (plan.epoch_unit == EpochUnit::automatic && raw.kind == RawValue::Kind::text) {
      // `auto` also reads RFC 3339, for apps that send either.
      millis = parse_time_text(raw.text);
      if (!millis) {
        return problem(plan, fmt::format("'{}' is neither an epoch number nor an RFC 3339 date-time",
                                         excerpt(raw.text)));
      }
    } else {
      return failure;
    }
  }
  if (!in_range(plan, static_cast<double>(*millis))) {
    return problem(plan, fmt::format("must be within {} (epoch ms), got {}", range_text(plan), *millis));
  }
  record.event_time_ms = *millis;
  return std::nullopt;
}

std::optional<FieldProblem> apply_text(const FieldPlan& plan, const RawValue& raw, CanonicalRecord& record,
                                       const DecodeLimits& limits) {
  std::string& out = plan.target == Target::msg_id ? record.msg_id : record.device_id;
  if (plan.text_constant) {
    out.assign(*plan.text_constant);
    return std::nullopt;
  }
  char digits[32];
  std::string_view text;
  switch (raw.kind) {
    case RawValue::Kind::absent:
      // device_id keeps the authenticated device; msg_id stays empty (the gateway generates one).
      if (plan.text_default) {
        out.assign(*plan.text_default);
      } else if (plan.required) {
        return problem(plan, "is required but absent");
      }
      return std::nullopt;
    case RawValue::Kind::text: text = raw.text; break;
    // Numeric ids (an IMEI sent as a JSON number) read as their decimal text.
    case RawValue::Kind::signed_integer:
      text = std::string_view(digits, static_cast<std::size_t>(
                                          std::to_chars(digits, digits + sizeof digits, raw.signed_integer).ptr - digits));
      break;
    case RawValue::Kind::unsigned_integer:
      text = std::string_view(digits, static_cast<std::size_t>(
                                          std::to_chars(digits, digits + sizeof digits, raw.unsigned_integer).ptr -
                                          digits));
      break;
    case RawValue::Kind::number:
      if (std::isfinite(raw.number) && raw.number == std::trunc(raw.number) && std::fabs(raw.number) < 9.0e15) {
        text = std::string_view(digits, static_cast<std::size_t>(
                                            std::to_chars(digits, digits + sizeof digits,
                                                          static_cast<std::int64_t>(raw.number))
                                                .ptr -
                                            digits));
        break;
      }
      return problem(plan, "must be a string or a whole number");
    case RawValue::Kind::boolean: return problem(plan, "must be a string, not a boolean");
    case RawValue::Kind::other: return problem(plan, fmt::format("must be a string, not {}", raw.text));
  }
  if (text.size() > limits.max_string_bytes) {
    return problem(plan, fmt::format("must be at most {} bytes, got {}", limits.max_string_bytes, text.size()));
  }
  out.assign(text);
  return std::nullopt;
}

}  // namespace

std::optional<Target> parse_target(std::string_view name) noexcept {
  for (const TargetName& known : kTargets) {
    if (known.name == name) return known.target;
  }
  return std::nullopt;
}

bool is_text(Target target) noexcept { return target == Target::msg_id || target == Target::device_id; }

bool is_location(Target target) noexcept {
  switch (target) {
    case Target::lat:
    case Target::lon:
    case Target::alt:
    case Target::speed:
    case Target::heading:
    case Target::accuracy:
    case Target::battery: return true;
    case Target::time:
    case Target::msg_id:
    case Target::device_id:
    case Target::reading: return false;
  }
  return false;
}

RecordPlan read_record_plan(OptionReader& options, std::string_view source_key, const SourceCompiler& compile_source,
                            const DecodeLimits& limits) {
  RecordPlan plan;
  options.enumeration("message_type", plan.message_type, parse_message_type, "location, sensor");
  const bool sensor = plan.message_type == MessageType::sensor;

  std::set<Target> seen;
  for (auto& [name, reader] : options.entries("fields")) {
    const auto target = parse_target(name);
    if (!target) {
      throw OptionError(reader.path(), fmt::format("unknown field; known fields: {}{}", kFieldNames,
                                                   sensor ? " (sensor values go under readings)" : ""));
    }
    if (sensor && is_location(*target)) {
      throw OptionError(reader.path(), fmt::format("a sensor record has no {} (message_type is sensor): map the "
                                                   "value under readings",
                                                   name));
    }
    seen.insert(*target);
    plan.fields.push_back(read_field(reader, *target, name, source_key, plan.fields.size(), compile_source));
  }

  const std::string readings_key = options.key_path("readings");
  std::size_t readings = 0;
  for (auto& [name, reader] : options.entries("readings")) {
    if (!sensor) throw OptionError(readings_key, "only for message_type sensor (this device type sends location)");
    if (name.empty()) throw OptionError(reader.path(), "a reading needs a name");
    plan.fields.push_back(read_field(reader, Target::reading, name, source_key, plan.fields.size(), compile_source));
    ++readings;
  }
  if (sensor && readings == 0) throw OptionError(readings_key, "message_type sensor needs at least one reading");
  if (readings > limits.max_readings) {
    throw OptionError(readings_key, fmt::format("at most {} readings per record (decode.max_readings), got {}",
                                                limits.max_readings, readings));
  }

  read_constants(options, plan, seen);

  const std::string fields_key = options.key_path("fields");
  if (!seen.contains(Target::time)) {
    throw OptionError(fields_key + ".time", "is required: map the event time (with required: false the gateway "
                                            "clock stands in when a record has none)");
  }
  if (!sensor) {
    for (const Target needed : {Target::lat, Target::lon}) {
      if (!seen.contains(needed)) {
        throw OptionError(fields_key + (needed == Target::lat ? ".lat" : ".lon"),
                          "is required for message_type location (map it, or give a constant)");
      }
    }
  }
  return plan;
}

std::optional<FieldProblem> apply(const FieldPlan& plan, const RawValue& raw, CanonicalRecord& record,
                                  const DecodeLimits& limits) {
  if (is_text(plan.target)) return apply_text(plan, raw, record, limits);
  if (plan.target == Target::time) return apply_time(plan, raw, record);
  return apply_number(plan, raw, record);
}

std::optional<FieldProblem> finish_record(const RecordPlan& plan, const CanonicalRecord& record) {
  if (plan.message_type == MessageType::sensor && record.readings.empty()) {
    return FieldProblem{"readings", "none of the mapped readings is present"};
  }
  return std::nullopt;
}

}  // namespace telegate::codecs::mapping
