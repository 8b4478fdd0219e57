// Device profiles: what each kind of device puts on the wire for a run of position fixes, and
// the device type a gateway needs to read it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "motion.hpp"
#include "transport.hpp"

namespace telegate::sim {

enum class Profile {
  telegate_json,      // telegate's own JSON batch (`json` codec)
  telegate_protobuf,  // telegate.v1.TelemetryBatch (`protobuf` codec, codecs/protobuf/telemetry.proto)
  osmand,             // OsmAnd online tracking: one GET with the fix as query string (`osmand` codec)
  owntracks,          // OwnTracks HTTP mode: one `_type: location` JSON message per POST (`owntracks` codec)
  sensor_json,        // a field sensor's readings as telegate JSON `sensor` records, with msg_ids (sensors.hpp)
  sensor_senml,       // the same readings as a SenML JSON pack (`senml` codec; the gateway makes the msg_ids)
};

struct ProfileInfo {
  std::string_view name;  // --profile value
  WireFormat wire;
  std::size_t max_records_per_body;  // 0: any number; the phone apps post one fix per request
  bool carries_msg_ids;              // false: the gateway generates them (or, with a native reply, never says)
  std::string_view device_type;      // the default device type name `provision` prints
  // The device type's YAML list entry (after "  - "), `%s` standing for its name.
  std::string_view device_type_yaml;
};

const ProfileInfo& profile_info(Profile profile);
// Throws std::invalid_argument listing the profiles for an unknown name.
Profile parse_profile(std::string_view name);

// Replaces `body` with `fixes` as `profile` sends them (at most max_records_per_body of them).
// Record i gets the msg_id "<msg_id_prefix>-<first_sequence + i>" where the format carries one.
void encode(Profile profile, std::string_view device_id, std::string_view msg_id_prefix, std::uint64_t first_sequence,
            std::span<const Fix> fixes, std::string& body);

}  // namespace telegate::sim
