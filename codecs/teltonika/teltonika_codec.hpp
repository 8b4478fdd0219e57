// Teltonika AVL data (Codec 8 and Codec 8 Extended), as the tracker listener hands it over:
// the bytes from the codec id to the second record count of one AVL packet (TCP: what the
// CRC covers; UDP: what follows the IMEI). Content type application/x-teltonika-avl. Mapping,
// msg_ids and limits: codecs/README.md, "Teltonika".
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <string_view>

#include "telegate/codecs/codec.hpp"

namespace telegate::codecs {

inline constexpr std::uint8_t kTeltonikaCodec8 = 0x08;
inline constexpr std::uint8_t kTeltonikaCodec8Extended = 0x8E;
inline constexpr std::string_view kTeltonikaContentType = "application/x-teltonika-avl";

// Lifecycle: created per worker thread by the registry; holds no parse state besides its
// limits, so decode() is a single forward pass over the body.
class TeltonikaCodec final : public Codec {
 public:
  explicit TeltonikaCodec(DecodeLimits limits) : limits_(limits) {}

  std::string_view name() const noexcept override { return "teltonika"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;

 private:
  static constexpr std::array<std::string_view, 1> kContentTypes{kTeltonikaContentType};

  DecodeLimits limits_;
};

}  // namespace telegate::codecs
