#include "osmand/osmand_codec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <new>

#include "src/device_app_support.hpp"
#include "src/form_decode.hpp"

namespace telegate::codecs {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;
using device_apps::RecordProblem;

namespace {

constexpr std::string_view kTimestampForms =
    "epoch seconds or milliseconds, RFC 3339, or yyyy-MM-dd HH:mm:ss in UTC";

// A form `timestamp` in any of the spellings Traccar accepts from OsmAnd clients.
std::optional<std::int64_t> parse_form_time(std::string_view text, EpochUnit unit) {
  if (const auto number = device_apps::parse_decimal(text)) return epoch_to_ms(*number, unit);
  return device_apps::parse_app_timestamp(text, {.missing_offset_is_utc = true, .space_is_plus = true});
}

std::string shown(std::string_view text) {
  return text.size() > 40 ? fmt::format("'{}…'", text.substr(0, 40)) : fmt::format("'{}'", text);
}

}  // namespace

OsmandCodec::OsmandCodec(DecodeLimits limits, OsmandOptions options)
    : limits_(limits), options_(options), metres_per_second_(metres_per_second_per(options.speed_unit)) {
  if (parser_.allocate(std::size_t{1} << 16) != simdjson::SUCCESS) throw std::bad_alloc();
}

std::expected<void, CodecError> OsmandCodec::decode(std::string_view body, const DecodeContext& context,
                                                    DecodedBatch& out) {
  if (auto refused = device_apps::refuse_body(name(), body, context.content_type, kContentTypes)) {
    return std::unexpected(std::move(*refused));
  }
  if (context.content_type == kContentTypes[0]) return decode_form(body, context, out);
  return decode_json(body, context, out);
}

std::expected<void, CodecError> OsmandCodec::decode_form(std::string_view body, const DecodeContext& context,
                                                         DecodedBatch& out) {
  // A listener may pass the query string with its '?', and a form POST body may end in a newline.
  std::size_t begin = body.find_first_not_of(" \t\r\n");
  if (body[begin] == '?') ++begin;
  const std::size_t end = body.find_last_not_of(" \t\r\n") + 1;

  RecordProblem problem;
  std::optional<std::int64_t> time;
  std::optional<double> lat, lon, speed, heading, alt, accuracy, battery;
  CanonicalRecord& record = out.append(0);
  bool has_id = false;

  // A number parameter; empty optional values are absent (apps send `altitude=` without a fix).
  auto number = [&](std::string_view key, std::optional<double>& target, bool required) {
    if (value_.empty() && !required) return;
    if (const auto parsed = device_apps::parse_decimal(value_)) {
      target = *parsed;
    } else {
      problem.note(key, fmt::format("{} is not a number", shown(value_)));
    }
  };

  for (std::size_t at = begin; at < end;) {
    const std::size_t stop = std::min(body.find('&', at), end);
    const std::string_view pair = body.substr(at, stop - at);
    const std::size_t pair_at = at;
    at = stop + 1;
    if (pair.empty()) continue;
    const std::size_t equals = std::min(pair.find('='), pair.size());
    if (const auto bad = form_decode(pair.substr(0, equals), key_)) {
      return std::unexpected(CodecError{CodecErrc::malformed_body,
                                        "malformed percent-encoding in a parameter name", pair_at + *bad});
    }
    const std::string_view raw_value = equals < pair.size() ? pair.substr(equals + 1) : std::string_view();
    if (const auto bad = form_decode(raw_value, value_)) {
      return std::unexpected(CodecError{CodecErrc::malformed_body,
                                        fmt::format("malformed percent-encoding in the value of '{}'", key_),
                                        pair_at + equals + 1 + *bad});
    }
    const std::string_view key = key_;
    if (key == "id" || key == "deviceid") {
      has_id = true;
      if (value_.empty()) {
        problem.note(key, "must not be empty");
      } else if (value_.size() > limits_.max_string_bytes) {
        problem.note(key, fmt::format("must be at most {} bytes, got {}", limits_.max_string_bytes, value_.size()));
      } else {
        record.device_id = value_;
      }
    } else if (key == "timestamp") {
      time = parse_form_time(value_, options_.time_unit);
      if (!time) problem.note(key, fmt::format("{} is not {}", shown(value_), kTimestampForms));
    } else if (key == "lat") {
      number(key, lat, true);
    } else if (key == "lon") {
      number(key, lon, true);
    } else if (key == "location") {
      const std::size_t comma = value_.find(',');
      const auto parsed_lat = device_apps::parse_decimal(std::string_view(value_).substr(0, comma));
      const auto parsed_lon = comma == std::string::npos ? std::nullopt
                                                         : device_apps::parse_decimal(std::string_view(value_).substr(comma + 1));
      if (parsed_lat && parsed_lon) {
        lat = parsed_lat;
        lon = parsed_lon;
      } else {
        problem.note(key, fmt::format("must be lat,lon in degrees, got {}", shown(value_)));
      }
    } else if (key == "speed") {
      number(key, speed, false);
    } else if (key == "bearing" || key == "heading") {
      number(key, heading, false);
    } else if (key == "altitude") {
      number(key, alt, false);
    } else if (key == "accuracy") {
      number(key, accuracy, false);
    } else if (key == "batt") {
      number(key, battery, false);
    }
    // Anything else (hdop, valid, charge, motion, event, driverUniqueId, …) carries nothing the
    // canonical record holds; ignoring it keeps newer app versions working.
  }

  if (!time) problem.note("timestamp", fmt::format("is required ({})", kTimestampForms));
  if (!lat) problem.note("lat", "is required (lat and lon, or location=lat,lon)");
  if (!lon) problem.note("lon", "is required (lat and lon, or location=lat,lon)");
  if (problem) {
    out.drop_last();
    out.reject(0, std::move(problem.first->field), std::move(problem.first->reason));
    return {};
  }
  // Without an id the request still names its device: the one the listener authenticated.
  if (!has_id) record.device_id = context.device_id;
  record.type = MessageType::location;
  record.event_time_ms = *time;
  record.location.lat = *lat;
  record.location.lon = *lon;
  record.location.alt = alt;
  if (const auto known_speed = device_apps::known(speed)) record.location.speed = *known_speed * metres_per_second_;
  record.location.heading = device_apps::known(heading);
  record.location.accuracy = device_apps::known(accuracy);
  record.location.battery = device_apps::known(battery);
  return {};
}

std::expected<void, CodecError> OsmandCodec::decode_json(std::string_view body, const DecodeContext& context,
                                                         DecodedBatch& out) {
  padded_.assign(body);
  return device_apps::for_each_message(parser_, padded_, limits_.max_records, "a Traccar Client location",
                                       [&](ondemand::value value, std::size_t index) {
                                         return read_json_message(value, index, context, out);
                                       });
}

error_code OsmandCodec::read_json_message(ondemand::value value, std::size_t index, const DecodeContext& context,
                                          DecodedBatch& out) {
  std::optional<ondemand::object> root_or_none;
  if (const auto error = device_apps::object_or_reject(value, index, "a message", out, root_or_none); error) return error;
  if (!root_or_none) return simdjson::SUCCESS;
  ondemand::object& root = *root_or_none;

  RecordProblem problem;
  std::optional<std::string_view> device_id, uuid, time_text;
  std::optional<double> time_number, lat, lon, accuracy, speed, heading, alt, level;
  bool has_location = false, has_time = false;

  auto nested = [&](ondemand::value field_value, std::string_view field, std::string_view shape, auto&& visit) {
    return device_apps::for_each_field_of(field_value, field, shape, problem, visit);
  };

  auto read_coords = [&](std::string_view key, ondemand::value field_value) {
    using device_apps::read_number;
    if (key == "latitude") return read_number(field_value, "location.coords.latitude", lat, problem);
    if (key == "longitude") return read_number(field_value, "location.coords.longitude", lon, problem);
    if (key == "accuracy") return read_number(field_value, "location.coords.accuracy", accuracy, problem);
    if (key == "speed") return read_number(field_value, "location.coords.speed", speed, problem);
    if (key == "heading") return read_number(field_value, "location.coords.heading", heading, problem);
    if (key == "altitude") return read_number(field_value, "location.coords.altitude", alt, problem);
    return simdjson::SUCCESS;  // altitude_accuracy, speed_accuracy, heading_accuracy, floor, …
  };
  auto read_battery = [&](std::string_view key, ondemand::value field_value) {
    if (key == "level") return device_apps::read_number(field_value, "location.battery.level", level, problem);
    return simdjson::SUCCESS;  // is_charging
  };
  auto read_location = [&](std::string_view key, ondemand::value field_value) -> error_code {
    if (key == "timestamp") {
      has_time = true;
      ondemand::json_type time_type;
      if (const auto error = field_value.type().get(time_type); error) return error;
      if (time_type == ondemand::json_type::number) {
        return device_apps::read_number(field_value, "location.timestamp", time_number, problem);
      }
      return device_apps::read_text(field_value, "location.timestamp", limits_.max_string_bytes, time_text, problem);
    }
    if (key == "uuid") return device_apps::read_text(field_value, "location.uuid", limits_.max_string_bytes, uuid, problem);
    if (key == "coords") return nested(field_value, "location.coords", "an object", read_coords);
    if (key == "battery") return nested(field_value, "location.battery", "an object", read_battery);
    return simdjson::SUCCESS;  // is_moving, odometer, event, activity, extras, …
  };

  const error_code structural = for_each_field(root, [&](std::string_view key, ondemand::value field_value) {
    if (key == "device_id") {
      return device_apps::read_text(field_value, "device_id", limits_.max_string_bytes, device_id, problem);
    }
    if (key == "location") {
      has_location = true;
      return nested(field_value, "location", "one location object (batched location arrays are not supported)",
                    read_location);
    }
    return simdjson::SUCCESS;
  });
  if (structural) return structural;

  std::optional<std::int64_t> time;
  if (time_text) {
    time = device_apps::parse_app_timestamp(*time_text, {});
    if (!time) problem.note("location.timestamp", fmt::format("{} is not an RFC 3339 date-time", shown(*time_text)));
  } else if (time_number) {
    time = epoch_to_ms(*time_number, options_.time_unit);
    if (!time) problem.note("location.timestamp", "is out of range");
  }
  if (!has_location) problem.note("location", "is required");
  if (!has_time) problem.note("location.timestamp", "is required (RFC 3339)");
  if (!time) problem.note("location.timestamp", "must be an RFC 3339 date-time");
  if (!lat) problem.note("location.coords.latitude", "is required");
  if (!lon) problem.note("location.coords.longitude", "is required");
  const auto battery = device_apps::battery_percent(level, "location.battery.level", problem);
  if (device_id && device_id->empty()) problem.note("device_id", "must not be empty");
  CanonicalRecord* const located = device_apps::location_or_reject(
      out, index, problem, device_id ? *device_id : context.device_id, time, lat, lon);
  if (located == nullptr) return simdjson::SUCCESS;
  CanonicalRecord& record = *located;
  if (uuid) record.msg_id = *uuid;
  record.location.alt = alt;
  record.location.speed = device_apps::known(speed);
  record.location.heading = device_apps::known(heading);
  record.location.accuracy = device_apps::known(accuracy);
  record.location.battery = battery;
  return simdjson::SUCCESS;
}

std::shared_ptr<const CodecPlan> compile_osmand(OptionReader& options, const DecodeLimits& limits) {
  struct Plan final : CodecPlan {
    Plan(const DecodeLimits& decode_limits, OsmandOptions codec_options)
        : limits(decode_limits), options(codec_options) {}
    std::unique_ptr<Codec> instantiate() const override { return std::make_unique<OsmandCodec>(limits, options); }
    DecodeLimits limits;
    OsmandOptions options;
  };
  OsmandOptions read;
  read.speed_unit = read_speed_unit(options, "speed_unit", read.speed_unit);
  read.time_unit = read_epoch_unit(options, "time_unit", read.time_unit);
  options.finish();
  return std::make_shared<Plan>(limits, read);
}

}  // namespace telegate::codecs
