// The OsmAnd protocol as Traccar Client and OsmAnd's online tracking send it, read the way
// Traccar's OsmAndProtocolDecoder reads it:
//  - application/x-www-form-urlencoded: a GET query string (the HTTP listener passes it as the
//    body) or a form POST, one location per request: id=…&timestamp=…&lat=…&lon=…&speed=…
//  - application/json: the newer Traccar Client's body {"device_id":…,"location":{"timestamp":…,
//    "coords":{…},"battery":{…}}}, or an array of such objects.
// Options: speed_unit (form speeds; default knots, Traccar's convention) and time_unit (numeric
// timestamps; default auto). Format and options: codecs/README.md.
#pragma once

#include <simdjson.h>

#include <array>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "src/simdjson_support.hpp"
#include "telegate/codecs/codec.hpp"
#include "telegate/codecs/units.hpp"

namespace telegate::codecs {

struct OsmandOptions {
  SpeedUnit speed_unit = SpeedUnit::knots;
  EpochUnit time_unit = EpochUnit::automatic;
};

// Lifecycle: created per worker thread from the shared plan; owns the simdjson parser, a padded
// copy of the current body and the percent-decoding scratch buffers, reused across decode() calls.
class OsmandCodec final : public Codec {
 public:
  OsmandCodec(DecodeLimits limits, OsmandOptions options);

  std::string_view name() const noexcept override { return "osmand"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;

 private:
  static constexpr std::array<std::string_view, 2> kContentTypes{"application/x-www-form-urlencoded",
                                                                 "application/json"};

  std::expected<void, CodecError> decode_form(std::string_view body, const DecodeContext& context, DecodedBatch& out);
  std::expected<void, CodecError> decode_json(std::string_view body, const DecodeContext& context, DecodedBatch& out);
  simdjson::error_code read_json_message(simdjson::ondemand::value value, std::size_t index,
                                         const DecodeContext& context, DecodedBatch& out);

  DecodeLimits limits_;
  OsmandOptions options_;
  double metres_per_second_ = 1.0;  // per unit of a form `speed`
  simdjson::ondemand::parser parser_;
  PaddedBody padded_;
  std::string key_;    // percent-decoded parameter name
  std::string value_;  // percent-decoded parameter value
};

// Reads codec_options (speed_unit, time_unit); throws OptionError naming the key.
std::shared_ptr<const CodecPlan> compile_osmand(OptionReader& options, const DecodeLimits& limits);

}  // namespace telegate::codecs
