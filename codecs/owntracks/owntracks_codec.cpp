#include "owntracks/owntracks_codec.hpp"

#include <fmt/format.h>

#include <new>

#include "src/device_app_support.hpp"

namespace telegate::codecs {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;
using device_apps::RecordProblem;

namespace {

enum class MessageKind : std::uint8_t { missing, not_text, location, encrypted, other };

}  // namespace

OwnTracksCodec::OwnTracksCodec(DecodeLimits limits, OwnTracksOptions options)
    : limits_(limits), metres_per_second_(metres_per_second_per(options.speed_unit)) {
  if (parser_.allocate(std::size_t{1} << 16) != simdjson::SUCCESS) throw std::bad_alloc();
}

std::expected<void, CodecError> OwnTracksCodec::decode(std::string_view body, const DecodeContext& context,
                                                       DecodedBatch& out) {
  if (auto refused = device_apps::refuse_body(name(), body, context.content_type, kContentTypes)) {
    return std::unexpected(std::move(*refused));
  }
  padded_.assign(body);
  return device_apps::for_each_message(parser_, padded_, limits_.max_records, "an OwnTracks message",
                                       [&](ondemand::value value, std::size_t index) {
                                         return read_message(value, index, context, out);
                                       });
}

error_code OwnTracksCodec::read_message(ondemand::value value, std::size_t index, const DecodeContext& context,
                                        DecodedBatch& out) {
  std::optional<ondemand::object> object_or_none;
  if (const auto error = device_apps::object_or_reject(value, index, "an OwnTracks message", out, object_or_none); error) return error;
  if (!object_or_none) return simdjson::SUCCESS;
  ondemand::object& object = *object_or_none;

  // `_type` may come after the fields, so they are read first and judged once the kind is
  // known: a waypoint's odd `lat` is no reason to refuse anything.
  MessageKind kind = MessageKind::missing;
  RecordProblem problem;
  std::optional<double> lat, lon, tst, vel, alt, acc, cog, batt;
  const error_code structural = for_each_field(object, [&](std::string_view key, ondemand::value field_value) {
    using device_apps::read_number;
    if (key == "_type") {
      std::string_view text;
      const error_code error = field_value.get_string().get(text);
      if (error && is_structural(error)) return error;
      kind = error                  ? MessageKind::not_text
             : text == "location"   ? MessageKind::location
             : text == "encrypted"  ? MessageKind::encrypted
                                    : MessageKind::other;
      return simdjson::SUCCESS;
    }
    if (key == "lat") return read_number(field_value, key, lat, problem);
    if (key == "lon") return read_number(field_value, key, lon, problem);
    if (key == "tst") return read_number(field_value, key, tst, problem);
    if (key == "vel") return read_number(field_value, key, vel, problem);
    if (key == "alt") return read_number(field_value, key, alt, problem);
    if (key == "acc") return read_number(field_value, key, acc, problem);
    if (key == "cog") return read_number(field_value, key, cog, problem);
    if (key == "batt") return read_number(field_value, key, batt, problem);
    // tid, t, conn, vac, bs, inregions, topic, created_at (when the message was built, which
    // differs from the fix time `tst` only for messages the app resends), …
    return simdjson::SUCCESS;
  });
  if (structural) return structural;

  switch (kind) {
    case MessageKind::missing:
      out.reject(index, "_type", "is required (every OwnTracks message names its type, e.g. \"location\")");
      return simdjson::SUCCESS;
    case MessageKind::not_text:
      out.reject(index, "_type", "must be a string such as \"location\"");
      return simdjson::SUCCESS;
    case MessageKind::encrypted:
      out.reject(index, "_type", "encrypted OwnTracks payloads are not supported; turn off encryption in the app");
      return simdjson::SUCCESS;
    case MessageKind::other:
      return simdjson::SUCCESS;  // transition, waypoint(s), lwt, card, status, steps, cmd, beacon, …
    case MessageKind::location:
      break;
  }

  std::optional<std::int64_t> time;
  if (tst) {
    time = epoch_to_ms(*tst, EpochUnit::seconds);
    if (!time) problem.note("tst", "is out of range (epoch seconds)");
  }
  if (!lat) problem.note("lat", "is required for a location message");
  if (!lon) problem.note("lon", "is required for a location message");
  if (!tst) problem.note("tst", "is required for a location message (epoch seconds)");
  // The identity is the authenticated one: OwnTracks' `tid` is a two-letter display label and
  // the user/device pair lives in the MQTT topic or HTTP headers, not in the message.
  CanonicalRecord* const located = device_apps::location_or_reject(out, index, problem, context.device_id, time, lat, lon);
  if (located == nullptr) return simdjson::SUCCESS;
  CanonicalRecord& record = *located;
  record.location.alt = alt;
  if (const auto speed = device_apps::known(vel)) record.location.speed = *speed * metres_per_second_;
  record.location.heading = device_apps::known(cog);
  record.location.accuracy = device_apps::known(acc);
  record.location.battery = device_apps::known(batt);
  return simdjson::SUCCESS;
}

std::shared_ptr<const CodecPlan> compile_owntracks(OptionReader& options, const DecodeLimits& limits) {
  struct Plan final : CodecPlan {
    Plan(const DecodeLimits& decode_limits, OwnTracksOptions codec_options)
        : limits(decode_limits), options(codec_options) {}
    std::unique_ptr<Codec> instantiate() const override { return std::make_unique<OwnTracksCodec>(limits, options); }
    DecodeLimits limits;
    OwnTracksOptions options;
  };
  OwnTracksOptions read;
  read.speed_unit = read_speed_unit(options, "speed_unit", read.speed_unit);
  options.finish();
  return std::make_shared<Plan>(limits, read);
}

}  // namespace telegate::codecs
