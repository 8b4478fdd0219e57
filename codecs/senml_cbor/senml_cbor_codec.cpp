#include "senml_cbor/senml_cbor_codec.hpp"

#include <cbor.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "senml/senml_resolver.hpp"

namespace telegate::codecs {

namespace {

// RFC 8949 §3.4.4: tag 4 is a decimal fraction [exponent, mantissa], which RFC 8428 §6 allows
// for any SenML number.
constexpr std::uint64_t kDecimalFractionTag = 4;
// Field names in errors are cut to this length (a hostile label may be megabytes long).
constexpr std::size_t kMaxKeyInMessage = 64;

enum class FrameKind : std::uint8_t {
  pack,     // the top-level array of records
  record,   // a record map: alternating labels and values
  skip,     // a container whose content is not read (an extension value, a refused element)
  decimal,  // a tag-4 decimal fraction in a record value position
  chunks,   // an indefinite-length string: definite chunks of the same type, then break
};

struct Frame {
  FrameKind kind;
  bool indefinite;
  bool text = false;             // chunks: a text string (else a byte string)
  std::uint64_t remaining = 0;   // items still to come in a definite container
  std::uint64_t count = 0;       // items seen so far
};

enum class ScalarType : std::uint8_t { integer, floating, boolean, text, bytes, null };

struct Scalar {
  ScalarType type = ScalarType::null;
  double number = 0;                    // integer, floating
  std::optional<std::int64_t> integer;  // integer, when it fits
  bool flag = false;                    // boolean
  std::string_view bytes;               // text, bytes

  static Scalar numeric(ScalarType type, double number, std::optional<std::int64_t> integer = std::nullopt) {
    Scalar scalar;
    scalar.type = type;
    scalar.number = number;
    scalar.integer = integer;
    return scalar;
  }
  static Scalar string(ScalarType type, std::string_view bytes) {
    Scalar scalar;
    scalar.type = type;
    scalar.bytes = bytes;
    return scalar;
  }
  static Scalar boolean(bool flag) {
    Scalar scalar;
    scalar.type = ScalarType::boolean;
    scalar.flag = flag;
    return scalar;
  }
};

}  // namespace

// The streaming parse of one body: libcbor calls back once per data item header or scalar, and
// this state machine tracks where in the pack the item sits. Recursion is bounded by kMaxDepth.
//
// Lifecycle: owned by one SenmlCborCodec (one worker thread); start() resets it per request.
struct SenmlCborCodec::State {
  explicit State(const DecodeLimits& decode_limits) : limits(decode_limits), record(limits) {}

  void start(senml::Resolver& pack_resolver) {
    resolver = &pack_resolver;
    frames.clear();
    record.reset();
    tag.reset();
    done = false;
    failure.reset();
  }

  void fail(std::string message) {
    if (failure) return;
    failure = CodecError{CodecErrc::malformed_body, fmt::format("{} (at byte offset {})", message, item_offset),
                         item_offset};
  }

  // --- libcbor events -------------------------------------------------------------------------

  void on_tag(std::uint64_t value) {
    if (!frames.empty() && frames.back().kind == FrameKind::chunks) {
      return fail("an indefinite-length string holds a tag instead of a string chunk");
    }
    tag = value;  // applies to the next item; tags other than 4 are read through
  }

  void on_scalar(const Scalar& scalar) {
    const std::optional<std::uint64_t> item_tag = std::exchange(tag, std::nullopt);
    if (frames.empty()) return fail("a SenML pack must be a CBOR array of records");
    Frame& top = frames.back();
    switch (top.kind) {
      case FrameKind::pack: {
        const std::size_t index = top.count;
        if (!resolver->admit(index)) return too_many();
        resolver->reject(index, "", "a SenML record must be a CBOR map");
        break;
      }
      case FrameKind::record:
        if (expect_key) {
          take_label(scalar);
        } else if (item_tag == kDecimalFractionTag) {
          if (!ignore_value) record.other(label, key);  // a decimal fraction is an array
        } else {
          take_value(scalar);
        }
        break;
      case FrameKind::skip:
        break;
      case FrameKind::decimal:
        if (scalar.type != ScalarType::integer || !scalar.integer) {
          decimal_ok = false;
        } else if (top.count == 0) {
          exponent = *scalar.integer;
        } else {
          mantissa = *scalar.integer;
        }
        break;
      case FrameKind::chunks:
        if ((scalar.type != ScalarType::text && scalar.type != ScalarType::bytes) ||
            (scalar.type == ScalarType::text) != top.text) {
          return fail("an indefinite-length string holds a chunk that is not a definite string of its type");
        }
        // Joined up to one byte past the limit: enough for the length check to refuse it.
        chunks.append(scalar.bytes.substr(0, chunk_cap() - std::min(chunk_cap(), chunks.size())));
        return;  // chunks end with a break, not with a count
    }
    advance();
  }

  void on_open(bool map, bool indefinite, std::uint64_t size) {
    const std::optional<std::uint64_t> item_tag = std::exchange(tag, std::nullopt);
    if (frames.size() >= kMaxDepth) return fail(fmt::format("CBOR containers nest deeper than {} levels", kMaxDepth));
    FrameKind kind = FrameKind::skip;
    if (frames.empty()) {
      if (map) return fail("a SenML pack must be a CBOR array of records");
      kind = FrameKind::pack;
    } else {
      switch (frames.back().kind) {
        case FrameKind::pack: {
          const std::size_t index = frames.back().count;
          if (!resolver->admit(index)) return too_many();
          if (map) {
            kind = FrameKind::record;
            record.reset();
            expect_key = true;
          } else {
            resolver->reject(index, "", "a SenML record must be a CBOR map");
          }
          break;
        }
        case FrameKind::record:
          if (expect_key) {
            record.problem("label", "a SenML label must be an integer or a text string");
            ignore_value = true;
          } else if (ignore_value) {
            // the label was refused already; its value is skipped whatever it holds
          } else if (item_tag == kDecimalFractionTag && !map) {
            kind = FrameKind::decimal;
            decimal_ok = true;
            exponent.reset();
            mantissa.reset();
          } else {
            record.other(label, key);  // no SenML value is a container
          }
          break;
        case FrameKind::decimal:
          decimal_ok = false;
          break;
        case FrameKind::chunks:
          return fail("an indefinite-length string holds a container instead of a string chunk");
        case FrameKind::skip:
          break;
      }
    }
    // A map of n entries is 2n items; a length that large cannot be in the body anyway.
    const std::uint64_t items = !map ? size : size > std::numeric_limits<std::uint64_t>::max() / 2 ? size : 2 * size;
    frames.push_back(Frame{kind, indefinite, false, items, 0});
    if (!indefinite && items == 0) close_top();
  }

  void on_open_chunks(bool text) {
    if (!frames.empty() && frames.back().kind == FrameKind::chunks) {
      return fail("an indefinite-length string nests another one");
    }
    if (frames.size() >= kMaxDepth) return fail(fmt::format("CBOR containers nest deeper than {} levels", kMaxDepth));
    chunks.clear();
    frames.push_back(Frame{FrameKind::chunks, true, text, 0, 0});
  }

  void on_break() {
    if (tag) return fail("a tag is followed by a break instead of an item");
    if (frames.empty() || !frames.back().indefinite) return fail("a break outside an indefinite-length container");
    const Frame& top = frames.back();
    if (top.kind == FrameKind::record && !expect_key) return fail("a SenML record map ends between a label and its value");
    if (top.kind == FrameKind::chunks) {
      const bool text = top.text;
      frames.pop_back();
      return on_scalar(Scalar::string(text ? ScalarType::text : ScalarType::bytes, chunks));
    }
    close_top();
  }

  // --- where an item lands --------------------------------------------------------------------

  // The item at the top frame's current position is complete.
  void advance() {
    if (failure || frames.empty()) return;
    Frame& top = frames.back();
    ++top.count;
    if (top.kind == FrameKind::record) expect_key = !expect_key;
    if (!top.indefinite && --top.remaining == 0) close_top();
  }

  void close_top() {
    const Frame top = frames.back();
    frames.pop_back();
    switch (top.kind) {
      case FrameKind::pack:
        done = true;
        return;
      case FrameKind::record:
        resolver->add(frames.back().count, record);
        break;
      case FrameKind::decimal:
        if (decimal_ok && top.count == 2 && exponent && mantissa && *exponent >= -400 && *exponent <= 400) {
          record.number(label, key, static_cast<double>(*mantissa) * std::pow(10.0, static_cast<double>(*exponent)));
        } else {
          record.other(label, key);
        }
        break;
      case FrameKind::skip:
      case FrameKind::chunks:
        break;
    }
    advance();
  }

  void take_label(const Scalar& scalar) {
    ignore_value = false;
    if (scalar.type == ScalarType::integer) {
      label = scalar.integer ? senml::label_for_cbor(*scalar.integer) : senml::Label::extension;
      const std::string_view name = senml::json_name(label);
      key = name.empty() ? fmt::format("label {}", scalar.number) : std::string(name);
    } else if (scalar.type == ScalarType::text) {
      // RFC 8428 §6 gives Table 4's fields integer labels; a text label is read like a JSON name
      // so that a device writing {"n": …} in CBOR is still understood.
      label = senml::label_for_name(scalar.bytes);
      key.assign(scalar.bytes.substr(0, kMaxKeyInMessage));
    } else {
      record.problem("label", "a SenML label must be an integer or a text string");
      ignore_value = true;
    }
  }

  void take_value(const Scalar& scalar) {
    if (ignore_value) return;
    switch (scalar.type) {
      case ScalarType::integer:
      case ScalarType::floating: return record.number(label, key, scalar.number);
      case ScalarType::text: return record.text(label, key, scalar.bytes);
      case ScalarType::boolean: return record.boolean(label, key, scalar.flag);
      case ScalarType::bytes:
      case ScalarType::null: return record.other(label, key);
    }
  }

  void too_many() {
    if (!failure) failure = resolver->too_many_records();
  }

  std::size_t chunk_cap() const noexcept { return std::max(limits.max_string_bytes, kMaxKeyInMessage) + 1; }

  const DecodeLimits& limits;
  senml::Record record;
  senml::Resolver* resolver = nullptr;
  std::vector<Frame> frames;         // open containers, outermost first; at most kMaxDepth
  std::string chunks;                // an indefinite-length string's chunks, joined (capped)
  std::string key;                   // the current field's name, for errors
  senml::Label label = senml::Label::extension;
  bool expect_key = true;            // in a record: the next item is a label
  bool ignore_value = false;         // the current label was unusable: its value is skipped
  std::optional<std::uint64_t> tag;  // the tag of the next item
  bool decimal_ok = true;
  std::optional<std::int64_t> exponent;
  std::optional<std::int64_t> mantissa;
  std::size_t item_offset = 0;       // where the item being decoded starts
  bool done = false;                 // the pack is complete
  std::optional<CodecError> failure;
};

namespace {

using State = SenmlCborCodec::State;

State& state(void* context) { return *static_cast<State*>(context); }

void on_unsigned(void* context, std::uint64_t value) {
  std::optional<std::int64_t> integer;
  if (value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    integer = static_cast<std::int64_t>(value);
  }
  state(context).on_scalar(Scalar::numeric(ScalarType::integer, static_cast<double>(value), integer));
}

// CBOR negative integers carry n for the value -1 - n.
void on_negative(void* context, std::uint64_t value) {
  std::optional<std::int64_t> integer;
  if (value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    integer = -1 - static_cast<std::int64_t>(value);
  }
  state(context).on_scalar(Scalar::numeric(ScalarType::integer, -1.0 - static_cast<double>(value), integer));
}

void on_float(void* context, double value) { state(context).on_scalar(Scalar::numeric(ScalarType::floating, value)); }

void on_string(void* context, ScalarType type, cbor_data data, std::size_t size) {
  state(context).on_scalar(Scalar::string(type, std::string_view(reinterpret_cast<const char*>(data), size)));
}

cbor_callbacks make_callbacks() {
  cbor_callbacks callbacks = cbor_empty_callbacks;
  callbacks.uint8 = [](void* c, std::uint8_t v) { on_unsigned(c, v); };
  callbacks.uint16 = [](void* c, std::uint16_t v) { on_unsigned(c, v); };
  callbacks.uint32 = [](void* c, std::uint32_t v) { on_unsigned(c, v); };
  callbacks.uint64 = [](void* c, std::uint64_t v) { on_unsigned(c, v); };
  callbacks.negint8 = [](void* c, std::uint8_t v) { on_negative(c, v); };
  callbacks.negint16 = [](void* c, std::uint16_t v) { on_negative(c, v); };
  callbacks.negint32 = [](void* c, std::uint32_t v) { on_negative(c, v); };
  callbacks.negint64 = [](void* c, std::uint64_t v) { on_negative(c, v); };
  callbacks.float2 = [](void* c, float v) { on_float(c, static_cast<double>(v)); };
  callbacks.float4 = [](void* c, float v) { on_float(c, static_cast<double>(v)); };
  callbacks.float8 = [](void* c, double v) { on_float(c, v); };
  callbacks.boolean = [](void* c, bool v) {
    state(c).on_scalar(Scalar::boolean(v));
  };
  callbacks.null = [](void* c) { state(c).on_scalar(Scalar{}); };
  callbacks.undefined = [](void* c) { state(c).on_scalar(Scalar{}); };
  callbacks.string = [](void* c, cbor_data d, std::size_t n) { on_string(c, ScalarType::text, d, n); };
  callbacks.byte_string = [](void* c, cbor_data d, std::size_t n) { on_string(c, ScalarType::bytes, d, n); };
  callbacks.string_start = [](void* c) { state(c).on_open_chunks(true); };
  callbacks.byte_string_start = [](void* c) { state(c).on_open_chunks(false); };
  callbacks.array_start = [](void* c, std::size_t n) { state(c).on_open(false, false, n); };
  callbacks.indef_array_start = [](void* c) { state(c).on_open(false, true, 0); };
  callbacks.map_start = [](void* c, std::size_t n) { state(c).on_open(true, false, n); };
  callbacks.indef_map_start = [](void* c) { state(c).on_open(true, true, 0); };
  callbacks.tag = [](void* c, std::uint64_t v) { state(c).on_tag(v); };
  callbacks.indef_break = [](void* c) { state(c).on_break(); };
  return callbacks;
}

const cbor_callbacks kCallbacks = make_callbacks();

CodecError malformed(std::string_view message, std::size_t offset) {
  return CodecError{CodecErrc::malformed_body, fmt::format("{} (at byte offset {})", message, offset), offset};
}

}  // namespace

SenmlCborCodec::SenmlCborCodec(DecodeLimits limits) : limits_(limits), state_(std::make_unique<State>(limits_)) {}

SenmlCborCodec::~SenmlCborCodec() = default;

std::expected<void, CodecError> SenmlCborCodec::decode(std::string_view body, const DecodeContext& context,
                                                       DecodedBatch& out) {
  if (context.content_type != kContentTypes[0]) {
    return std::unexpected(CodecError{CodecErrc::unsupported_content_type,
                                      fmt::format("the senml_cbor codec reads {}, not '{}'", kContentTypes[0],
                                                  context.content_type),
                                      std::nullopt});
  }
  if (body.empty()) return std::unexpected(CodecError{CodecErrc::empty_body, "the body holds no SenML pack", std::nullopt});

  senml::Resolver resolver(limits_, context, out);
  State& parse = *state_;
  parse.start(resolver);
  const auto* data = reinterpret_cast<const unsigned char*>(body.data());
  std::size_t offset = 0;
  while (offset < body.size()) {
    if (parse.done) return std::unexpected(malformed("trailing bytes after the SenML pack", offset));
    parse.item_offset = offset;
    const cbor_decoder_result result = cbor_stream_decode(data + offset, body.size() - offset, &kCallbacks, &parse);
    if (parse.failure) return std::unexpected(std::move(*parse.failure));
    if (result.status == CBOR_DECODER_NEDATA) {
      return std::unexpected(malformed("the body ends inside a CBOR item (truncated or a length too large)", offset));
    }
    if (result.status != CBOR_DECODER_FINISHED || result.read == 0) {
      return std::unexpected(malformed("not well-formed CBOR", offset));
    }
    offset += result.read;
  }
  if (!parse.done) {
    return std::unexpected(malformed("the body ends before the SenML pack is complete (truncated)", body.size()));
  }
  return {};
}

}  // namespace telegate::codecs
