// telegate's own compact binary batch (telegate.v1.TelemetryBatch, codecs/protobuf/telemetry.proto):
// for trackers and sensors that want fewer bytes than JSON without giving up typed fields.
#pragma once

#include <array>
#include <expected>
#include <memory>
#include <string_view>

#include "telegate/codecs/codec.hpp"

namespace telegate::v1 {
class TelemetryBatch;
}

namespace telegate::codecs {

// Parses the body with ParseFromArray into one reused message (repeated fields keep their
// capacity across requests), then maps each Telemetry to a canonical record or a per-record
// error naming the proto field.
//
// Lifecycle: created per worker thread by the registry; owns the reused message, so an instance
// is never shared between threads.
class ProtobufCodec final : public Codec {
 public:
  explicit ProtobufCodec(DecodeLimits limits);
  ~ProtobufCodec() override;
  ProtobufCodec(const ProtobufCodec&) = delete;
  ProtobufCodec& operator=(const ProtobufCodec&) = delete;

  std::string_view name() const noexcept override { return "protobuf"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;

 private:
  static constexpr std::array<std::string_view, 2> kContentTypes{"application/x-protobuf",
                                                                 "application/vnd.telegate.batch+protobuf"};

  DecodeLimits limits_;
  std::unique_ptr<telegate::v1::TelemetryBatch> batch_;
};

}  // namespace telegate::codecs
