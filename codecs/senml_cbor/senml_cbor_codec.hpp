// SenML CBOR (RFC 8428 §6, application/senml+cbor): the same packs as SenML JSON, with the
// integer labels of RFC 8428 Table 4. This is only the CBOR front end: the records it reads go
// through the resolver shared with the JSON codec (senml/senml_resolver.hpp), so both resolve
// base fields, names, times and values identically.
#pragma once

#include <array>
#include <expected>
#include <memory>
#include <string_view>

#include "telegate/codecs/codec.hpp"

namespace telegate::codecs {

// Reads the body with libcbor's streaming decoder (one data item per call, no tree): nesting is
// tracked on our own bounded stack and no allocation depends on a declared length, so hostile
// input can exhaust neither stack nor memory.
//
// Lifecycle: created per worker thread by the registry; owns the reusable parse state (container
// stack, record fields, string-chunk buffer), which decode() resets per request.
class SenmlCborCodec final : public Codec {
 public:
  explicit SenmlCborCodec(DecodeLimits limits);
  ~SenmlCborCodec() override;
  SenmlCborCodec(const SenmlCborCodec&) = delete;
  SenmlCborCodec& operator=(const SenmlCborCodec&) = delete;

  std::string_view name() const noexcept override { return "senml_cbor"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;

  // Containers nested deeper than this (pack → record → decimal fraction is 3) are refused.
  static constexpr std::size_t kMaxDepth = 32;

  // The parse state machine libcbor's callbacks drive; defined in the .cpp.
  struct State;

 private:
  static constexpr std::array<std::string_view, 1> kContentTypes{"application/senml+cbor"};

  DecodeLimits limits_;
  std::unique_ptr<State> state_;
};

}  // namespace telegate::codecs
