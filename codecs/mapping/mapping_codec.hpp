// The `mapping` codec: any JSON device, read through a declarative mapping from JSON pointers
// (RFC 6901) to canonical fields that the operator writes in the device type's codec_options.
// Also reads HTML form / query-string bodies (GPSLogger-style apps), where /name is the form
// field `name`. Options and formats: codecs/README.md.
#pragma once

#include <simdjson.h>

#include <array>
#include <cstddef>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mapping/field_plan.hpp"
#include "src/simdjson_support.hpp"
#include "telegate/codecs/codec.hpp"

namespace telegate::codecs::mapping {

// An RFC 6901 pointer split once at compile time: each token is an object key, and also an
// array index when it is one (whether it is depends on the document, known only per record).
struct JsonPointer {
  struct Token {
    std::string key;  // unescaped (~1 → /, ~0 → ~)
    std::optional<std::size_t> index;
  };
  std::string text;
  std::vector<Token> tokens;
};

// Throws OptionError naming `key` unless `text` is a pointer such as /data/0/lat.
JsonPointer compile_pointer(const std::string& key, const std::string& text);

// The compiled codec_options, shared (immutable) by every worker thread's codec.
struct MappingProgram {
  RecordPlan record;
  std::vector<JsonPointer> sources;  // parallel to record.fields; empty for constants
  std::optional<JsonPointer> records;
  DecodeLimits limits;
};

CodecCompiler mapping_compiler();

// Lifecycle: created per worker thread by the plan; owns the simdjson DOM parser, a padded copy
// of the body and the decoded form fields, all reused across decode() calls.
class MappingCodec final : public Codec {
 public:
  explicit MappingCodec(std::shared_ptr<const MappingProgram> program);

  std::string_view name() const noexcept override { return "mapping"; }
  std::span<const std::string_view> content_types() const noexcept override { return kContentTypes; }
  std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                         DecodedBatch& out) override;

 private:
  static constexpr std::array<std::string_view, 3> kContentTypes{"application/json", "application/x-ndjson",
                                                                 "application/x-www-form-urlencoded"};

  // Decodes one JSON text (the body, or one NDJSON line at `offset`); record indices continue
  // from `next_index`.
  std::expected<void, CodecError> decode_json(std::size_t offset, std::size_t length, std::size_t& next_index,
                                              const DecodeContext& context, DecodedBatch& out);
  std::expected<void, CodecError> decode_form(std::string_view body, const DecodeContext& context,
                                              DecodedBatch& out);
  template <class Lookup>
  void add_record(std::size_t index, const DecodeContext& context, DecodedBatch& out, Lookup&& lookup);

  std::shared_ptr<const MappingProgram> program_;
  simdjson::dom::parser parser_;
  PaddedBody padded_;
  std::vector<std::pair<std::string, std::string>> form_;  // slots reused; form_size_ in use
  std::size_t form_size_ = 0;
};

}  // namespace telegate::codecs::mapping
