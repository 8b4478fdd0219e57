// SenML JSON (RFC 8428, application/senml+json): a pack of records whose base fields (bn, bt,
// bu, bv, bs) carry forward. Each resolved record becomes a sensor reading named bn+n; readings
// that resolve to the same time and follow each other share one canonical sensor record.
// This is the JSON front end only: resolution is shared with SenML CBOR (senml_resolver.hpp).
#pragma once

#include <simdjson.h>

#include <array>
#include <expected>
#include <string>
#include <string_view>

#include "src/simdjson_support.hpp"
#include "telegate/codecs/codec.hpp"

namespace telegate::codecs {

// Lifecycle: created per worker thread by the registry; owns the parser and body buffer.
class SenmlJsonCodec final : public Codec {
 public:
  explicit SenmlJsonCodec(DecodeLimits limits);

  std::string_view name() const noexcept override { return "senml"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;

 private:
  static constexpr std::array<std::string_view, 1> kContentTypes{"application/senml+json"};

  DecodeLimits limits_;
  simdjson::ondemand::parser parser_;
  PaddedBody padded_;
};

}  // namespace telegate::codecs
