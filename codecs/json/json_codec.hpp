// The telegate JSON codec: one record object, an array of records, or NDJSON, decoded with
// simdjson On-Demand straight into reused canonical records. Format: codecs/README.md.
#pragma once

#include <simdjson.h>

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include "src/simdjson_support.hpp"
#include "telegate/codecs/codec.hpp"

namespace telegate::codecs {

// Lifecycle: created per worker thread by the registry; owns the simdjson parser and a padded
// copy of the current body, both reused across decode() calls.
class JsonCodec final : public Codec {
 public:
  explicit JsonCodec(DecodeLimits limits);

  std::string_view name() const noexcept override { return "json"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;

 private:
  static constexpr std::array<std::string_view, 2> kContentTypes{"application/json", "application/x-ndjson"};

  // Outcome of reading one record: fine, a record-level problem (reported, decoding goes on),
  // or a structural JSON error that makes the whole body unreadable.
  struct RecordProblem {
    std::string field;
    std::string reason;
  };
  using RecordResult = std::expected<std::optional<RecordProblem>, simdjson::error_code>;

  std::expected<void, CodecError> decode_document(std::size_t length, DecodedBatch& out);
  std::expected<void, CodecError> decode_lines(std::size_t length, DecodedBatch& out);
  RecordResult read_record(simdjson::ondemand::value value, CanonicalRecord& record);
  RecordResult read_readings(simdjson::ondemand::value value, CanonicalRecord& record);
  std::expected<void, CodecError> add_record(simdjson::ondemand::value value, std::size_t index, DecodedBatch& out);

  DecodeLimits limits_;
  simdjson::ondemand::parser parser_;
  PaddedBody padded_;
};

}  // namespace telegate::codecs
