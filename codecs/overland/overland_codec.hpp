// Overland (https://github.com/aaronpk/Overland-iOS#api): batches of GeoJSON Point features,
// {"locations":[{"type":"Feature","geometry":{…},"properties":{…}}, …], "current":…, "trip":…},
// each feature one location record. No options: the format fixes its units (m/s, degrees,
// battery as a fraction). Format: codecs/README.md.
#pragma once

#include <simdjson.h>

#include <array>
#include <expected>
#include <optional>
#include <string_view>

#include "src/simdjson_support.hpp"
#include "telegate/codecs/codec.hpp"

namespace telegate::codecs {

// Lifecycle: created per worker thread by the registry; owns the simdjson parser and a padded
// copy of the current body, reused across decode() calls.
class OverlandCodec final : public Codec {
 public:
  explicit OverlandCodec(DecodeLimits limits);

  std::string_view name() const noexcept override { return "overland"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;
  // Overland keeps a batch queued, and sends it again, until the reply is exactly this.
  std::optional<NativeReply> native_reply() const noexcept override {
    return NativeReply{"application/json", R"({"result":"ok"})"};
  }

 private:
  static constexpr std::array<std::string_view, 1> kContentTypes{"application/json"};

  simdjson::error_code read_feature(simdjson::ondemand::value value, std::size_t index, const DecodeContext& context,
                                    DecodedBatch& out);

  DecodeLimits limits_;
  simdjson::ondemand::parser parser_;
  PaddedBody padded_;
};

}  // namespace telegate::codecs
