#include "payloads.hpp"

#include <cstdio>

namespace telegate::sim {

namespace {

constexpr WireFormat kTelegateJson{"application/json", ReplyStyle::telegate, "", HttpAuth::bearer, HttpPayload::body};

void telegate_json(std::string_view device_id, std::string_view msg_id_prefix, std::uint64_t first_sequence,
                   std::span<const Fix> fixes, std::string& body) {
  body += '[';
  for (std::size_t i = 0; i < fixes.size(); ++i) {
    const Fix& fix = fixes[i];
    char record[400];
    const int length = std::snprintf(
        record, sizeof record,
        R"(%s{"device_id":"%.*s","type":"location","ts":%lld,"msg_id":"%.*s-%llu","lat":%.7f,"lon":%.7f,"speed":%.2f,"heading":%.1f,"accuracy":%.1f,"battery":%.0f})",
        i ? "," : "", static_cast<int>(device_id.size()), device_id.data(), static_cast<long long>(fix.time_ms),
        static_cast<int>(msg_id_prefix.size()), msg_id_prefix.data(),
        static_cast<unsigned long long>(first_sequence + i), fix.lat, fix.lon, fix.speed_mps, fix.heading_deg,
        fix.accuracy_m, fix.battery_pct);
    body.append(record, static_cast<std::size_t>(length));
  }
  body += ']';
}

}  // namespace

const WireFormat& wire_format(Profile) { return kTelegateJson; }

void encode(Profile, std::string_view device_id, std::string_view msg_id_prefix, std::uint64_t first_sequence,
            std::span<const Fix> fixes, std::string& body) {
  body.clear();
  telegate_json(device_id, msg_id_prefix, first_sequence, fixes, body);
}

}  // namespace telegate::sim
