// OwnTracks JSON (https://owntracks.org/booklet/tech/json/) as the app posts it in HTTP mode: one
// message object, or an array of them. `_type: location` becomes a location record; the app's
// other messages (transition, waypoint, lwt, card, status, …) are routine and produce nothing;
// encrypted payloads are refused with the fix. Option: speed_unit for `vel` (default kmh).
// Format and options: codecs/README.md.
#pragma once

#include <simdjson.h>

#include <array>
#include <expected>
#include <memory>
#include <optional>
#include <string_view>

#include "src/simdjson_support.hpp"
#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/units.hpp"

namespace telegate::codecs {

struct OwnTracksOptions {
  SpeedUnit speed_unit = SpeedUnit::kmh;
};

// Lifecycle: created per worker thread from the shared plan; owns the simdjson parser and a
// padded copy of the current body, reused across decode() calls.
class OwnTracksCodec final : public Codec {
 public:
  OwnTracksCodec(DecodeLimits limits, OwnTracksOptions options);

  std::string_view name() const noexcept override { return "owntracks"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;
  // The app reads the reply as a JSON array of messages for it (friends' locations, commands);
  // anything else shows as an error in its status screen.
  std::optional<NativeReply> native_reply() const noexcept override {
    return NativeReply{"application/json", "[]"};
  }

 private:
  static constexpr std::array<std::string_view, 1> kContentTypes{"application/json"};

  simdjson::error_code read_message(simdjson::ondemand::value value, std::size_t index, const DecodeContext& context,
                                    DecodedBatch& out);

  DecodeLimits limits_;
  double metres_per_second_;  // per unit of `vel`
  simdjson::ondemand::parser parser_;
  PaddedBody padded_;
};

// Reads codec_options (speed_unit); throws OptionError naming the key.
std::shared_ptr<const CodecPlan> compile_owntracks(OptionReader& options, const DecodeLimits& limits);

}  // namespace telegate::codecs
