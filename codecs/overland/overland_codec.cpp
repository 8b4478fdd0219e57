#include "overland/overland_codec.hpp"

#include <fmt/format.h>

#include <new>

#include "src/device_app_support.hpp"

namespace telegate::codecs {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;
using device_apps::RecordProblem;

namespace {

// Strings compared against fixed words ("Feature", "Point") or parsed as timestamps: anything
// longer is wrong anyway, and the bound keeps echoed values short.
constexpr std::size_t kMaxWordBytes = 64;

std::string shown(std::string_view text) {
  return text.size() > 40 ? fmt::format("'{}…'", text.substr(0, 40)) : fmt::format("'{}'", text);
}

}  // namespace

OverlandCodec::OverlandCodec(DecodeLimits limits) : limits_(limits) {
  if (parser_.allocate(std::size_t{1} << 16) != simdjson::SUCCESS) throw std::bad_alloc();
}

std::expected<void, CodecError> OverlandCodec::decode(std::string_view body, const DecodeContext& context,
                                                      DecodedBatch& out) {
  if (auto refused = device_apps::refuse_body(name(), body, context.content_type, kContentTypes)) {
    return std::unexpected(std::move(*refused));
  }
  padded_.assign(body);
  ondemand::document document;
  if (const auto error = parser_.iterate(padded_.data(), padded_.size(), padded_.capacity()).get(document); error) {
    return std::unexpected(malformed_json(error, 0));
  }
  auto offset_of = [&]() -> std::optional<std::size_t> {
    const char* at = nullptr;
    if (document.current_location().get(at) != simdjson::SUCCESS) return padded_.size();
    return padded_.offset_of(at);
  };
  ondemand::json_type type;
  if (const auto error = document.type().get(type); error) return std::unexpected(malformed_json(error, offset_of()));
  if (type != ondemand::json_type::object) {
    return std::unexpected(CodecError{CodecErrc::malformed_body,
                                      fmt::format("an Overland batch must be a JSON object with a locations array, "
                                                  "not {}",
                                                  device_apps::type_name(type)),
                                      0});
  }
  ondemand::object root;
  if (const auto error = document.get_object().get(root); error) {
    return std::unexpected(malformed_json(error, offset_of()));
  }

  std::optional<CodecError> refusal;  // a batch-level problem found inside the field loop
  bool has_locations = false;
  const error_code structural = for_each_field(root, [&](std::string_view key, ondemand::value value) -> error_code {
    if (key != "locations") return simdjson::SUCCESS;  // current, trip: state the app also sends
    if (has_locations) {
      // A second array would restart the indices that name records in errors.
      refusal = CodecError{CodecErrc::malformed_body, "the batch holds two locations arrays", offset_of()};
      return simdjson::SUCCESS;
    }
    has_locations = true;
    ondemand::array locations;
    if (const auto error = value.get_array().get(locations); error) {
      if (is_structural(error)) return error;
      refusal = CodecError{CodecErrc::malformed_body, "locations must be an array of GeoJSON features", offset_of()};
      return simdjson::SUCCESS;
    }
    std::size_t index = 0;
    for (auto element : locations) {
      ondemand::value feature;
      if (const auto error = element.get(feature); error) return error;
      if (index == limits_.max_records) {
        refusal = CodecError{CodecErrc::too_many_records,
                             fmt::format("more than {} locations in one batch", limits_.max_records), offset_of()};
        return simdjson::SUCCESS;
      }
      if (const auto error = read_feature(feature, index++, context, out); error) return error;
    }
    return simdjson::SUCCESS;
  });
  if (structural) return std::unexpected(malformed_json(structural, offset_of()));
  if (refusal) return std::unexpected(std::move(*refusal));
  if (!has_locations) {
    return std::unexpected(CodecError{CodecErrc::malformed_body, "an Overland batch needs a locations array", 0});
  }
  if (const char* trailing = nullptr; document.current_location().get(trailing) == simdjson::SUCCESS) {
    return std::unexpected(
        CodecError{CodecErrc::malformed_body, "trailing content after the JSON value", padded_.offset_of(trailing)});
  }
  return {};
}

error_code OverlandCodec::read_feature(ondemand::value value, std::size_t index, const DecodeContext& context,
                                       DecodedBatch& out) {
  std::optional<ondemand::object> feature_or_none;
  if (const auto error = device_apps::object_or_reject(value, index, "a location (GeoJSON Feature)", out, feature_or_none); error) return error;
  if (!feature_or_none) return simdjson::SUCCESS;
  ondemand::object& feature = *feature_or_none;

  // Problems of the geometry are kept apart: "not a Point" must win over what a LineString's
  // nested coordinates look like to a Point reader, whatever order the fields come in.
  RecordProblem problem, geometry_problem;
  std::optional<std::string_view> feature_type, geometry_type, timestamp;
  std::optional<double> lon, lat, coordinate_alt, alt, speed, accuracy, course, level;
  bool has_geometry = false, has_geometry_type = false, has_coordinates = false;
  std::size_t coordinate_count = 0;

  auto read_coordinates = [&](ondemand::value field_value) -> error_code {
    has_coordinates = true;
    ondemand::array coordinates;
    if (const auto error = field_value.get_array().get(coordinates); error) {
      if (is_structural(error)) return error;
      geometry_problem.note("geometry.coordinates", "must be an array [longitude, latitude]");
      return simdjson::SUCCESS;
    }
    for (auto element : coordinates) {
      ondemand::value coordinate;
      if (const auto error = element.get(coordinate); error) return error;
      std::optional<double>* slot = coordinate_count == 0 ? &lon : coordinate_count == 1 ? &lat : &coordinate_alt;
      ++coordinate_count;
      if (coordinate_count > 3) continue;  // GeoJSON allows more; none that telegate maps
      if (const auto error = device_apps::read_number(coordinate, "geometry.coordinates", *slot, geometry_problem);
          error) {
        return error;
      }
    }
    return simdjson::SUCCESS;
  };
  auto read_geometry = [&](std::string_view key, ondemand::value field_value) -> error_code {
    if (key == "type") {
      has_geometry_type = true;
      return device_apps::read_text(field_value, "geometry.type", kMaxWordBytes, geometry_type, geometry_problem);
    }
    if (key == "coordinates") return read_coordinates(field_value);
    return simdjson::SUCCESS;
  };
  auto read_properties = [&](std::string_view key, ondemand::value field_value) -> error_code {
    using device_apps::read_number;
    if (key == "timestamp") {
      return device_apps::read_text(field_value, "properties.timestamp", kMaxWordBytes, timestamp, problem);
    }
    if (key == "altitude") return read_number(field_value, "properties.altitude", alt, problem);
    if (key == "speed") return read_number(field_value, "properties.speed", speed, problem);
    if (key == "horizontal_accuracy") {
      return read_number(field_value, "properties.horizontal_accuracy", accuracy, problem);
    }
    if (key == "course") return read_number(field_value, "properties.course", course, problem);
    if (key == "battery_level") return read_number(field_value, "properties.battery_level", level, problem);
    // device_id is whatever the user typed in the app's settings, not an identity: the record
    // belongs to the authenticated device. motion, wifi, battery_state, vertical_accuracy, … are
    // not in the canonical record.
    return simdjson::SUCCESS;
  };

  const error_code structural = for_each_field(feature, [&](std::string_view key, ondemand::value field_value) {
    if (key == "type") return device_apps::read_text(field_value, "type", kMaxWordBytes, feature_type, problem);
    if (key == "geometry") {
      ondemand::json_type geometry_json;
      if (const auto error = field_value.type().get(geometry_json); error) return error;
      if (geometry_json == ondemand::json_type::null) return simdjson::SUCCESS;  // GeoJSON's "no location"
      has_geometry = true;
      return device_apps::for_each_field_of(field_value, "geometry", "a GeoJSON Point object", geometry_problem,
                                            read_geometry);
    }
    if (key == "properties") {
      return device_apps::for_each_field_of(field_value, "properties", "an object", problem, read_properties);
    }
    return simdjson::SUCCESS;
  });
  if (structural) return structural;

  RecordProblem verdict;  // in the order a user should fix them: what the feature is, then its data
  if (feature_type && *feature_type != "Feature") {
    verdict.note("type", fmt::format("must be Feature, got {}", shown(*feature_type)));
  }
  if (!has_geometry) verdict.note("geometry", "is required (a GeoJSON Point)");
  if (geometry_type && *geometry_type != "Point") {
    verdict.note("geometry.type", fmt::format("must be Point, got {}", shown(*geometry_type)));
  }
  if (geometry_problem) verdict.note(geometry_problem.first->field, std::move(geometry_problem.first->reason));
  if (has_geometry && !has_geometry_type) verdict.note("geometry.type", "is required (Point)");
  if (has_geometry && !has_coordinates) verdict.note("geometry.coordinates", "is required ([longitude, latitude])");
  if (has_coordinates && (!lon || !lat)) {
    verdict.note("geometry.coordinates", "must hold a longitude and a latitude ([longitude, latitude])");
  }
  if (problem) verdict.note(problem.first->field, std::move(problem.first->reason));
  std::optional<std::int64_t> time;
  if (timestamp) {
    time = device_apps::parse_app_timestamp(*timestamp, {});
    if (!time) {
      verdict.note("properties.timestamp",
                   fmt::format("{} is not an ISO 8601 date-time such as 2017-01-01T10:00:00-0700", shown(*timestamp)));
    }
  } else {
    verdict.note("properties.timestamp", "is required");
  }
  const auto battery = device_apps::battery_percent(level, "properties.battery_level", verdict);
  CanonicalRecord* const located = device_apps::location_or_reject(out, index, verdict, context.device_id, time, lat, lon);
  if (located == nullptr) return simdjson::SUCCESS;
  CanonicalRecord& record = *located;
  record.location.alt = alt ? alt : coordinate_alt;
  record.location.speed = device_apps::known(speed);
  record.location.heading = device_apps::known(course);
  record.location.accuracy = device_apps::known(accuracy);
  record.location.battery = battery;
  return simdjson::SUCCESS;
}

}  // namespace telegate::codecs
