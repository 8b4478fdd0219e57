// The `protobuf_dynamic` codec: Protobuf devices decoded by a descriptor set the operator
// uploads (protoc --descriptor_set_out=x.pb --include_imports) and the name of the message they
// send, through the dynamic API (DescriptorPool, DynamicMessageFactory, Reflection): a new
// schema needs no rebuild. Fields are mapped to canonical ones by dotted field paths with the
// mapping codec's field plan (scale, unit, default, min/max). Options: codecs/README.md.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mapping/field_plan.hpp"
#include "telegate/codecs/codec.hpp"

namespace telegate::codecs::protobuf_dynamic {

// A dotted path (pos.lat) resolved at compile time: every step but the last is a singular
// message field.
using FieldPath = std::vector<const google::protobuf::FieldDescriptor*>;

// The compiled codec_options, shared (immutable) by every worker thread's codec. The pool owns
// every descriptor the paths point to, so it lives as long as any codec does.
struct ProtobufProgram {
  std::unique_ptr<google::protobuf::DescriptorPool> pool;
  const google::protobuf::Descriptor* message = nullptr;
  FieldPath records;  // empty: the message is the one record
  mapping::RecordPlan record;
  std::vector<FieldPath> sources;  // parallel to record.fields; empty for constants
  DecodeLimits limits;
};

CodecCompiler protobuf_dynamic_compiler();

// Standard base64 (RFC 4648 §4, also the URL-safe alphabet of §5); whitespace is skipped, so a
// YAML block scalar may wrap it. nullopt when the text is not base64.
std::optional<std::string> decode_base64(std::string_view text);

// Lifecycle: created per worker thread by the plan. Owns its DynamicMessageFactory and one
// reusable message (cleared per decode); neither is shared between threads.
class ProtobufDynamicCodec final : public Codec {
 public:
  explicit ProtobufDynamicCodec(std::shared_ptr<const ProtobufProgram> program);

  std::string_view name() const noexcept override { return "protobuf_dynamic"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;

 private:
  static constexpr std::array<std::string_view, 2> kContentTypes{"application/x-protobuf", "application/protobuf"};

  void add_record(const google::protobuf::Message& message, std::size_t index, const DecodeContext& context,
                  DecodedBatch& out);

  // Declaration order is destruction order in reverse: the message goes before its factory,
  // and the program (which owns the descriptors) last.
  std::shared_ptr<const ProtobufProgram> program_;
  google::protobuf::DynamicMessageFactory factory_;
  std::unique_ptr<google::protobuf::Message> message_;
  std::string scratch_;  // for Reflection::GetStringReference
};

}  // namespace telegate::codecs::protobuf_dynamic
