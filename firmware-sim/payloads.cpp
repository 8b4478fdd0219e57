#include "payloads.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
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

// Writes into space the caller sized: std::to_chars for integers and fixed-point decimals from
// the value scaled to an integer. snprintf's "%.7f" took ~60 % of the simulator's CPU (glibc
// formats doubles with multi-precision arithmetic), and every CPU-µs the load generator spends
// is taken from the gateway and broker sharing the cores.
class TextCursor {
 public:
  explicit TextCursor(char* at) : at_(at) {}
  char* end() const { return at_; }

  void text(std::string_view literal) {
    std::memcpy(at_, literal.data(), literal.size());
    at_ += literal.size();
  }
  template <typename Integer>
  void integer(Integer value) {
    at_ = std::to_chars(at_, at_ + 20, value).ptr;
  }
  // `value` with `decimals` digits after the point. Rounded half away from zero on the scaled
  // value, which differs from printf's exact rounding only within an ulp of a tie; the sign is
  // kept for a value rounding to zero ("-0.0000000"), as printf does.
  void fixed(double value, int decimals) {
    static constexpr double kScale[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7};
    static constexpr std::uint64_t kPower[] = {1, 10, 100, 1'000, 10'000, 100'000, 1'000'000, 10'000'000};
    if (std::signbit(value)) *at_++ = '-';
    const auto scaled = static_cast<std::uint64_t>(std::llround(std::abs(value) * kScale[decimals]));
    integer(scaled / kPower[decimals]);
    if (decimals == 0) return;
    *at_++ = '.';
    std::uint64_t fraction = scaled % kPower[decimals];
    for (int digit = decimals - 1; digit >= 0; --digit, fraction /= 10) at_[digit] = static_cast<char>('0' + fraction % 10);
    at_ += decimals;
  }

 private:
  char* at_;
};

void telegate_json(std::string_view device_id, std::string_view msg_id_prefix, std::uint64_t first_sequence,
                   std::span<const Fix> fixes, std::string& body) {
  // The longest a record can be: its literal text, the two ids and seven numbers of at most 30
  // characters each (a sign, 19 digits, the point and 7 decimals; real fixes are far shorter).
  constexpr std::size_t kLiteral = 120;
  const std::size_t longest = kLiteral + device_id.size() + msg_id_prefix.size() + 7 * 30;
  body.resize_and_overwrite(2 + fixes.size() * longest, [&](char* data, std::size_t) {
    TextCursor out(data);
    out.text("[");
    for (std::size_t i = 0; i < fixes.size(); ++i) {
      const Fix& fix = fixes[i];
      out.text(i ? R"(,{"device_id":")" : R"({"device_id":")");
      out.text(device_id);
      out.text(R"(","type":"location","ts":)");
      out.integer(fix.time_ms);
      out.text(R"(,"msg_id":")");
      out.text(msg_id_prefix);
      out.text("-");
      out.integer(first_sequence + i);
      out.text(R"(","lat":)");
      out.fixed(fix.lat, 7);
      out.text(R"(,"lon":)");
      out.fixed(fix.lon, 7);
      out.text(R"(,"speed":)");
      out.fixed(fix.speed_mps, 2);
      out.text(R"(,"heading":)");
      out.fixed(fix.heading_deg, 1);
      out.text(R"(,"accuracy":)");
      out.fixed(fix.accuracy_m, 1);
      out.text(R"(,"battery":)");
      out.fixed(fix.battery_pct, 0);
      out.text("}");
    }
    out.text("]");
    return static_cast<std::size_t>(out.end() - data);
  });
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
