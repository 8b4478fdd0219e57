#include "payloads.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "sensors.hpp"
#include "telemetry.pb.h"

namespace telegate::sim {

namespace {

constexpr ProfileInfo kProfiles[] = {
    {"telegate-json", {"application/json", ReplyStyle::telegate, "", HttpAuth::bearer, HttpPayload::body}, 0, true,
     "tracker", "{name: %s, codec: json}"},
    {"telegate-protobuf",
     {"application/x-protobuf", ReplyStyle::telegate, "", HttpAuth::bearer, HttpPayload::body}, 0, true,
     "compact-tracker", "{name: %s, codec: protobuf}"},
    // Speed in knots, Traccar's convention for the OsmAnd protocol (the codec's default).
    {"osmand",
     {"application/x-www-form-urlencoded", ReplyStyle::telegate, "/osmand", HttpAuth::path_token, HttpPayload::query},
     1, false, "traccar-phone", "{name: %s, codec: osmand, codec_options: {speed_unit: knots}, http: {path: /osmand, auth: path_token}}"},
    {"owntracks", {"application/json", ReplyStyle::native, "/owntracks", HttpAuth::basic, HttpPayload::body}, 1, false,
     "owntracks-phone", "{name: %s, codec: owntracks, http: {path: /owntracks, auth: basic}}"},
    {"sensor-json", {"application/json", ReplyStyle::telegate, "", HttpAuth::bearer, HttpPayload::body}, 0, true,
     "sim-sensor", "{name: %s, codec: json}"},
    {"sensor-senml", {"application/senml+json", ReplyStyle::telegate, "", HttpAuth::bearer, HttpPayload::body}, 0,
     false, "field-sensor", "{name: %s, codec: senml, message_types: [sensor]}"},
};

template <typename... Args>
void append(std::string& body, const char* format, Args... args) {
  char text[512];
  const int length = std::snprintf(text, sizeof text, format, args...);
  body.append(text, static_cast<std::size_t>(length));
}

void telegate_json(std::string_view device_id, std::string_view msg_id_prefix, std::uint64_t first_sequence,
                   std::span<const Fix> fixes, std::string& body) {
  body += '[';
  for (std::size_t i = 0; i < fixes.size(); ++i) {
    const Fix& fix = fixes[i];
    append(body,
           R"(%s{"device_id":"%.*s","type":"location","ts":%lld,"msg_id":"%.*s-%llu","lat":%.7f,"lon":%.7f,"speed":%.2f,"heading":%.1f,"accuracy":%.1f,"battery":%.0f})",
           i ? "," : "", static_cast<int>(device_id.size()), device_id.data(), static_cast<long long>(fix.time_ms),
           static_cast<int>(msg_id_prefix.size()), msg_id_prefix.data(),
           static_cast<unsigned long long>(first_sequence + i), fix.lat, fix.lon, fix.speed_mps, fix.heading_deg,
           fix.accuracy_m, fix.battery_pct);
  }
  body += ']';
}

void telegate_protobuf(std::string_view msg_id_prefix, std::uint64_t first_sequence, std::span<const Fix> fixes,
                       std::string& body) {
  telegate::v1::TelemetryBatch batch;
  for (std::size_t i = 0; i < fixes.size(); ++i) {
    const Fix& fix = fixes[i];
    telegate::v1::Telemetry& record = *batch.add_records();
    record.set_msg_id(std::string(msg_id_prefix) + "-" + std::to_string(first_sequence + i));
    record.set_event_time_ms(fix.time_ms);
    auto& location = *record.mutable_location();
    location.set_lat(fix.lat);
    location.set_lon(fix.lon);
    location.set_speed_mps(static_cast<float>(fix.speed_mps));
    location.set_heading_deg(static_cast<float>(fix.heading_deg));
    location.set_accuracy_m(static_cast<float>(fix.accuracy_m));
    location.set_battery_pct(static_cast<float>(fix.battery_pct));
  }
  batch.SerializeToString(&body);
}

// What OsmAnd's online tracking puts in its URL template (id, timestamp in seconds, lat, lon,
// speed, bearing, accuracy, battery); the device id is the authenticated one.
void osmand(std::string_view device_id, const Fix& fix, std::string& body) {
  append(body, "id=%.*s&timestamp=%lld&lat=%.7f&lon=%.7f&speed=%.2f&bearing=%.1f&accuracy=%.1f&batt=%.0f",
         static_cast<int>(device_id.size()), device_id.data(), static_cast<long long>(fix.time_ms / 1000), fix.lat,
         fix.lon, fix.speed_mps * 3600.0 / 1852.0, fix.heading_deg, fix.accuracy_m, fix.battery_pct);
}

// The app's location message: integers where the app writes integers (vel in km/h, cog, acc,
// batt), tst in seconds; `tid` is a two-letter display label; created_at is when the queued
// message was built, i.e. at the fix.
void owntracks(std::string_view device_id, const Fix& fix, std::string& body) {
  const std::string_view tid = device_id.substr(device_id.size() >= 2 ? device_id.size() - 2 : 0);
  const long long seconds = fix.time_ms / 1000;
  append(body,
         R"({"_type":"location","tid":"%.*s","tst":%lld,"created_at":%lld,"lat":%.6f,"lon":%.6f,"vel":%ld,"cog":%ld,"acc":%ld,"batt":%.0f,"bs":1,"conn":"m","m":1})",
         static_cast<int>(tid.size()), tid.data(), seconds, seconds, fix.lat, fix.lon, std::lround(fix.speed_mps * 3.6),
         std::lround(fix.heading_deg) % 360, std::lround(fix.accuracy_m), fix.battery_pct);
}

}  // namespace

const ProfileInfo& profile_info(Profile profile) { return kProfiles[static_cast<std::size_t>(profile)]; }

Profile parse_profile(std::string_view name) {
  std::string names;
  for (std::size_t i = 0; i < std::size(kProfiles); ++i) {
    if (kProfiles[i].name == name) return static_cast<Profile>(i);
    names += (names.empty() ? "" : " | ") + std::string(kProfiles[i].name);
  }
  throw std::invalid_argument("--profile: unknown '" + std::string(name) + "' (" + names + ")");
}

void encode(Profile profile, std::string_view device_id, std::string_view msg_id_prefix, std::uint64_t first_sequence,
            std::span<const Fix> fixes, std::string& body) {
  body.clear();
  switch (profile) {
    case Profile::telegate_json: return telegate_json(device_id, msg_id_prefix, first_sequence, fixes, body);
    case Profile::telegate_protobuf: return telegate_protobuf(msg_id_prefix, first_sequence, fixes, body);
    case Profile::osmand: return osmand(device_id, fixes.front(), body);
    case Profile::owntracks: return owntracks(device_id, fixes.front(), body);
    case Profile::sensor_json: return sensor_json(device_id, msg_id_prefix, first_sequence, fixes, body);
    case Profile::sensor_senml: return sensor_senml(device_id, fixes, body);
  }
}

}  // namespace telegate::sim
