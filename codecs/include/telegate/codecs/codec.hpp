// Codecs turn a device's payload bytes into canonical records.
//
// Contract (docs/component-spec.md, "Codecs"):
//  - decode() never throws and never asserts on input; a body that cannot be parsed at all
//    returns a CodecError naming the problem (and the byte offset where known);
//  - a record that parses but is unusable is reported through DecodedBatch::reject() with
//    its index, the field and the reason, and decoding continues with the next record;
//  - a codec instance is owned by one worker thread (parsers keep reusable state); each
//    thread instantiates its own from the shared, immutable CodecPlan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "telegate/codecs/options.hpp"
#include "telegate/codecs/record.hpp"

namespace telegate::codecs {

// Error codes of the codecs component (each component has its own).
enum class CodecErrc : std::uint8_t {
  malformed_body = 1,        // not parseable as the codec's format at all
  unsupported_content_type,  // the codec does not read this content type
  too_many_records,          // more records than DecodeLimits::max_records
  empty_body,
};

std::string_view to_string(CodecErrc code) noexcept;

struct CodecError {
  CodecErrc code;
  std::string message;
  std::optional<std::size_t> offset;  // byte offset in the body where the problem was found
};

// Why one record was not accepted; `field` is empty when the record as a whole is bad.
struct FieldError {
  std::size_t index;
  std::string field;
  std::string reason;
};

// Where a payload came from. Identity fields are already authenticated by the listener.
struct DecodeContext {
  std::string_view tenant;
  std::string_view device_id;
  std::string_view transport;     // "http", "mqtt", "coap", …
  std::string_view content_type;  // media type without parameters, lower case
};

struct DecodeLimits {
  std::size_t max_records = 10'000;
  std::size_t max_readings = 64;
  std::size_t max_string_bytes = 256;
};

// Output of one decode() call. Slots are reused between calls to avoid reallocating records.
//
// Lifecycle: owned by one worker thread, clear()ed at the start of each request.
class DecodedBatch {
 public:
  // A fresh (reset) record appended to the batch, with its request index set.
  CanonicalRecord& append(std::size_t index);
  // Drops the most recently appended record (decode found it unusable half-way).
  void drop_last() noexcept;
  void reject(std::size_t index, std::string field, std::string reason);
  void clear() noexcept;

  std::span<CanonicalRecord> records() noexcept { return {slots_.data(), size_}; }
  std::span<const CanonicalRecord> records() const noexcept { return {slots_.data(), size_}; }
  std::span<const FieldError> errors() const noexcept { return errors_; }
  std::size_t total() const noexcept { return size_ + errors_.size(); }

 private:
  std::vector<CanonicalRecord> slots_;
  std::size_t size_ = 0;
  std::vector<FieldError> errors_;
};

// The positive reply a device's own app expects (OwnTracks wants a JSON array, Overland
// {"result":"ok"}); listeners send it instead of telegate's own ack body.
struct NativeReply {
  std::string_view content_type;
  std::string_view body;
};

class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::string_view name() const noexcept = 0;
  // Content types (lower case, no parameters) this codec reads.
  virtual std::span<const std::string_view> content_types() const noexcept = 0;
  // Appends the decoded records and per-record errors to `out` (which the caller cleared).
  // A body may legitimately hold no record (an OwnTracks status message): no records and no
  // errors is an accepted, empty request.
  virtual std::expected<void, CodecError> decode(std::string_view body, const DecodeContext& context,
                                                 DecodedBatch& out) = 0;
  virtual std::optional<NativeReply> native_reply() const noexcept { return std::nullopt; }
};

// A codec's options compiled once, when a device type is defined: immutable and shared by every
// worker thread, which each instantiate() their own Codec (codecs keep per-thread parse state).
// Work that depends only on the options (JSON pointers, unit factors, descriptor lookups) is
// done here, so that decode() does no string look-ups per record.
class CodecPlan {
 public:
  virtual ~CodecPlan() = default;
  virtual std::unique_ptr<Codec> instantiate() const = 0;
};

// Reads the codec's options (the device type's `codec_options`; an empty reader when absent)
// and returns its plan. Throws OptionError naming the offending key. Control plane only.
using CodecCompiler = std::function<std::shared_ptr<const CodecPlan>(OptionReader& options, const DecodeLimits&)>;

// The compiler for a codec that has no options: any option is refused as an unknown key.
template <class ConcreteCodec>
CodecCompiler without_options() {
  struct Plan final : CodecPlan {
    explicit Plan(const DecodeLimits& decode_limits) : limits(decode_limits) {}
    std::unique_ptr<Codec> instantiate() const override { return std::make_unique<ConcreteCodec>(limits); }
    DecodeLimits limits;
  };
  return [](OptionReader& options, const DecodeLimits& limits) -> std::shared_ptr<const CodecPlan> {
    options.finish();
    return std::make_shared<Plan>(limits);
  };
}

// Codecs by name. Filled explicitly at start-up by register_builtin_codecs() (no static
// self-registration, which a linker may drop from a static library); read-only afterwards,
// so any thread may compile() concurrently.
class CodecRegistry {
 public:
  void add(std::string name, CodecCompiler compiler);  // throws std::invalid_argument on a duplicate name
  bool contains(std::string_view name) const;
  // Throws OptionError (key `options.path()`'s parent "codec") for an unknown name.
  std::shared_ptr<const CodecPlan> compile(std::string_view name, OptionReader& options,
                                           const DecodeLimits& limits) const;
  // Convenience for codecs used without options (tests, benchmarks): nullptr if unknown.
  std::unique_ptr<Codec> create(std::string_view name, const DecodeLimits& limits) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, CodecCompiler, std::less<>> compilers_;
};

// One line per built-in codec lives in codecs/src/builtin.cpp.
void register_builtin_codecs(CodecRegistry& registry);

}  // namespace telegate::codecs
