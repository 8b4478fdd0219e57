// Device profiles: what each kind of device puts on the wire for a run of position fixes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "motion.hpp"
#include "transport.hpp"

namespace telegate::sim {

enum class Profile {
  telegate_json,  // telegate's own JSON batch (codecs/README.md, `json` codec)
};

const WireFormat& wire_format(Profile profile);

// Replaces `body` with `fixes` as `profile` sends them. Record i gets the msg_id
// "<msg_id_prefix>-<first_sequence + i>" where the format carries one.
void encode(Profile profile, std::string_view device_id, std::string_view msg_id_prefix, std::uint64_t first_sequence,
            std::span<const Fix> fixes, std::string& body);

}  // namespace telegate::sim
