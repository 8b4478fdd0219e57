// GT06 / Concox location and alarm packets (protocol numbers 0x12, 0x22, 0x16, 0x26) as the
// tracker listener's GT06 protocol (gateway/tracker/gt06/) hands them over: the protocol
// number, the packet content and the 2-byte serial number, framing and CRC already checked.
//
// Each packet gives a location record and a sensor record holding what the canonical location
// has no field for (satellites, the GSM cell, ACC, alarm and status bytes); both share the
// packet's time and a msg_id derived from device, protocol number, serial and time, so a
// packet the tracker resends is de-duplicated. Options: timezone_offset_min. Format, choices:
// codecs/README.md.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <memory>
#include <string_view>

#include "telegate/codecs/codec.hpp"

namespace telegate::codecs {

struct Gt06Options {
  // Minutes east of UTC of the tracker's clock (GT06 sends local time when so configured).
  int timezone_offset_min = 0;
};

// Lifecycle: created per worker thread from the shared plan; holds only its options, so
// decode() keeps no state between packets.
class Gt06Codec final : public Codec {
 public:
  Gt06Codec(DecodeLimits limits, Gt06Options options) : limits_(limits), options_(options) {}

  static constexpr std::string_view kContentType = "application/x-gt06";

  std::string_view name() const noexcept override { return "gt06"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;

 private:
  static constexpr std::array<std::string_view, 1> kContentTypes{kContentType};

  DecodeLimits limits_;
  Gt06Options options_;
};

// Reads codec_options (timezone_offset_min); throws OptionError naming the key.
std::shared_ptr<const CodecPlan> compile_gt06(OptionReader& options, const DecodeLimits& limits);

}  // namespace telegate::codecs
