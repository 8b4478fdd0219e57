#include "tracker/tracker_protocol.hpp"

namespace telegate::gateway::tracker {

std::string_view to_string(TrackerErrc code) noexcept {
  switch (code) {
    case TrackerErrc::malformed_frame: return "malformed";
    case TrackerErrc::bad_checksum: return "bad_checksum";
    case TrackerErrc::unsupported: return "unsupported";
    case TrackerErrc::frame_too_large: return "too_large";
    case TrackerErrc::not_logged_in: return "not_logged_in";
  }
  return "unknown";
}

}  // namespace telegate::gateway::tracker
