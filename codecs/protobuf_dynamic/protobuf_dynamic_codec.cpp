#include "protobuf_dynamic/protobuf_dynamic_codec.hpp"

#include <fmt/format.h>
#include <google/protobuf/descriptor.pb.h>

#include <charconv>
#include <climits>
#include <fstream>
#include <iterator>

namespace telegate::codecs::protobuf_dynamic {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;
using mapping::FieldPlan;
using mapping::RawValue;
using mapping::Target;

namespace {

class ProtobufPlan final : public CodecPlan {
 public:
  explicit ProtobufPlan(std::shared_ptr<const ProtobufProgram> program) : program_(std::move(program)) {}
  std::unique_ptr<Codec> instantiate() const override { return std::make_unique<ProtobufDynamicCodec>(program_); }

 private:
  std::shared_ptr<const ProtobufProgram> program_;
};

// Keeps the first error of one BuildFileCollectingErrors() call (control plane only).
class FirstError final : public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name, const pb::Message*, ErrorLocation,
                const std::string& message) override {
    if (first.empty()) first = fmt::format("{}: {}: {}", filename, element_name, message);
  }
  std::string first;
};

constexpr std::string_view kHowToMakeOne = "protoc --descriptor_set_out=x.pb --include_imports x.proto";

pb::FileDescriptorSet read_descriptor_set(OptionReader& options, std::string& key) {
  const bool inline_set = options.has("descriptor_set");
  const bool file_set = options.has("descriptor_set_file");
  std::string text;
  options.string("descriptor_set", text);
  std::string path;
  options.string("descriptor_set_file", path);
  std::string bytes;
  if (inline_set && file_set) {
    throw OptionError(options.key_path("descriptor_set_file"), "give descriptor_set or descriptor_set_file, not both");
  }
  if (inline_set) {
    key = options.key_path("descriptor_set");
    auto decoded = decode_base64(text);
    if (!decoded) throw OptionError(key, "must be base64 (of the file " + std::string(kHowToMakeOne) + " writes)");
    bytes = std::move(*decoded);
  } else if (file_set) {
    key = options.key_path("descriptor_set_file");
    std::ifstream file(path, std::ios::binary);
    if (!file) throw OptionError(key, "cannot read '" + path + "'");
    bytes.assign(std::istreambuf_iterator<char>(file), {});
  } else {
    throw OptionError(options.key_path("descriptor_set"),
                      fmt::format("is required: base64 of a FileDescriptorSet ({}), or give descriptor_set_file",
                                  kHowToMakeOne));
  }
  pb::FileDescriptorSet set;
  if (!set.ParseFromString(bytes) || set.file_size() == 0) {
    throw OptionError(key, fmt::format("is not a FileDescriptorSet: make one with {}", kHowToMakeOne));
  }
  return set;
}

// Builds every file of the set into a pool of its own, dependencies first whatever order the
// set lists them in.
std::unique_ptr<pb::DescriptorPool> build_pool(const pb::FileDescriptorSet& set, const std::string& key) {
  auto pool = std::make_unique<pb::DescriptorPool>();
  std::vector<bool> built(static_cast<std::size_t>(set.file_size()), false);
  for (std::size_t remaining = built.size(); remaining > 0;) {
    bool progress = false;
    for (int i = 0; i < set.file_size(); ++i) {
      const pb::FileDescriptorProto& file = set.file(i);
      if (built[static_cast<std::size_t>(i)]) continue;
      bool ready = true;
      for (const std::string& dependency : file.dependency()) ready = ready && pool->FindFileByName(dependency);
      if (!ready) continue;
      FirstError errors;
      if (!pool->BuildFileCollectingErrors(file, &errors)) throw OptionError(key, "is invalid: " + errors.first);
      built[static_cast<std::size_t>(i)] = true;
      --remaining;
      progress = true;
    }
    if (progress) continue;
    for (int i = 0; i < set.file_size(); ++i) {
      if (built[static_cast<std::size_t>(i)]) continue;
      for (const std::string& dependency : set.file(i).dependency()) {
        if (!pool->FindFileByName(dependency)) {
          throw OptionError(key, fmt::format("{} imports {}, which the set does not hold (build it with {})",
                                             set.file(i).name(), dependency, kHowToMakeOne));
        }
      }
    }
    throw OptionError(key, "has files that import each other");
  }
  return pool;
}

std::string message_names(const pb::FileDescriptorSet& set) {
  std::string names;
  std::size_t count = 0;
  for (const pb::FileDescriptorProto& file : set.file()) {
    for (const pb::DescriptorProto& message : file.message_type()) {
      if (++count > 20) return names + ", …";
      names += (names.empty() ? "" : ", ") + (file.package().empty() ? "" : file.package() + ".") + message.name();
    }
  }
  return names;
}

// Resolves "pos.lat" in `message`; every step but the last must be a singular message field.
FieldPath resolve_path(const std::string& key, const pb::Descriptor* message, const std::string& path) {
  FieldPath resolved;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = std::min(path.find('.', start), path.size());
    const std::string name = path.substr(start, end - start);
    if (name.empty()) throw OptionError(key, "must be field names separated by dots, such as pos.lat, got '" + path + "'");
    if (!resolved.empty()) {
      const FD* parent = resolved.back();
      if (parent->cpp_type() != FD::CPPTYPE_MESSAGE || parent->is_repeated()) {
        throw OptionError(key, fmt::format("{} is {}{}, not a message that holds '{}'", parent->full_name(),
                                           parent->is_repeated() ? "repeated " : "", parent->type_name(), name));
      }
      message = parent->message_type();
    }
    const FD* field = message->FindFieldByName(name);
    if (!field) {
      std::string known;
      for (int i = 0; i < message->field_count(); ++i) known += (i ? ", " : "") + message->field(i)->name();
      throw OptionError(key, fmt::format("{} has no field '{}' (fields: {})", message->full_name(), name, known));
    }
    resolved.push_back(field);
    if (end == path.size()) break;
    start = end + 1;
  }
  return resolved;
}

bool is_integer(FD::CppType type) {
  return type == FD::CPPTYPE_INT32 || type == FD::CPPTYPE_INT64 || type == FD::CPPTYPE_UINT32 ||
         type == FD::CPPTYPE_UINT64;
}

// The leaf must be able to hold what the field plan converts: refused at compile time rather
// than rejecting every record later.
void check_leaf(const FieldPlan& field, const FD* leaf, const std::string& key) {
  if (leaf->is_repeated()) throw OptionError(key, fmt::format("{} is repeated: map a single value", leaf->full_name()));
  const FD::CppType type = leaf->cpp_type();
  const bool text = type == FD::CPPTYPE_STRING && leaf->type() != FD::TYPE_BYTES;
  const bool number = is_integer(type) || type == FD::CPPTYPE_FLOAT || type == FD::CPPTYPE_DOUBLE ||
                      type == FD::CPPTYPE_ENUM;
  bool fits = false;
  std::string_view needs;
  if (mapping::is_text(field.target)) {
    fits = text || is_integer(type);
    needs = "a string or an integer";
  } else if (field.target == Target::time && field.time_format == mapping::TimeFormat::rfc3339) {
    fits = text;
    needs = "a string (unit rfc3339)";
  } else if (field.target == Target::reading) {
    fits = number || text || type == FD::CPPTYPE_BOOL;
    needs = "a number, a numeric string or a bool";
  } else {
    fits = number || text;
    needs = "a number or a numeric string";
  }
  if (!fits) {
    throw OptionError(key, fmt::format("{} is {}, but {} needs {}", leaf->full_name(), leaf->type_name(), field.field,
                                       needs));
  }
}

// A float read as the decimal it was written as (13.4, not 13.3999996185): what the operator
// sees in the device's schema and what scale/min/max were written against.
double widen(float value) {
  char text[32];
  const auto written = std::to_chars(text, text + sizeof text, value);
  double wide = static_cast<double>(value);
  std::from_chars(text, written.ptr, wide);
  return wide;
}

RawValue read_value(const pb::Message& record, const FieldPath& path, std::string& scratch) {
  const pb::Message* current = &record;
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    const pb::Reflection* reflection = current->GetReflection();
    if (!reflection->HasField(*current, path[i])) return RawValue{};
    current = &reflection->GetMessage(*current, path[i]);
  }
  const FD* field = path.back();
  const pb::Reflection* reflection = current->GetReflection();
  // A proto3 scalar without `optional` has no presence: its value (zero included) is read; an
  // empty string there is the same as unset.
  if (field->has_presence() && !reflection->HasField(*current, field)) return RawValue{};
  switch (field->cpp_type()) {
    case FD::CPPTYPE_INT32: return RawValue::of_signed(reflection->GetInt32(*current, field));
    case FD::CPPTYPE_INT64: return RawValue::of_signed(reflection->GetInt64(*current, field));
    case FD::CPPTYPE_UINT32: return RawValue::of_unsigned(reflection->GetUInt32(*current, field));
    case FD::CPPTYPE_UINT64: return RawValue::of_unsigned(reflection->GetUInt64(*current, field));
    case FD::CPPTYPE_DOUBLE: return RawValue::of_number(reflection->GetDouble(*current, field));
    case FD::CPPTYPE_FLOAT: return RawValue::of_number(widen(reflection->GetFloat(*current, field)));
    case FD::CPPTYPE_BOOL: return RawValue::of_boolean(reflection->GetBool(*current, field));
    case FD::CPPTYPE_ENUM: return RawValue::of_signed(reflection->GetEnumValue(*current, field));
    case FD::CPPTYPE_STRING: {
      const std::string& text = reflection->GetStringReference(*current, field, &scratch);
      if (text.empty() && !field->has_presence()) return RawValue{};
      return RawValue::of_text(text);
    }
    case FD::CPPTYPE_MESSAGE: break;
  }
  return RawValue::of_other("a message");
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  std::uint32_t bits = 0;
  int pending = 0;  // bits in `bits` not yet written out
  std::size_t symbols = 0;
  std::size_t padding = 0;
  for (const char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int value = base64_value(c);
    if (value < 0 || padding > 0) return std::nullopt;  // not base64, or data after padding
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    pending += 6;
    ++symbols;
    if (pending >= 8) {
      pending -= 8;
      out.push_back(static_cast<char>((bits >> pending) & 0xFFu));
      bits &= (1u << pending) - 1;
    }
  }
  if (symbols % 4 == 1 || padding > 2 || (padding > 0 && (symbols + padding) % 4 != 0)) return std::nullopt;
  return out;
}

CodecCompiler protobuf_dynamic_compiler() {
  return [](OptionReader& options, const DecodeLimits& limits) -> std::shared_ptr<const CodecPlan> {
    auto program = std::make_shared<ProtobufProgram>();
    program->limits = limits;
    std::string set_key;
    const pb::FileDescriptorSet set = read_descriptor_set(options, set_key);
    program->pool = build_pool(set, set_key);

    std::string message_name;
    options.string("message", message_name);
    if (message_name.empty()) {
      throw OptionError(options.key_path("message"),
                        "is required: the full name of the message the device sends, such as acme.v1.Report");
    }
    program->message = program->pool->FindMessageTypeByName(message_name);
    if (!program->message) {
      throw OptionError(options.key_path("message"), fmt::format("the descriptor set has no message '{}' (messages: {})",
                                                                 message_name, message_names(set)));
    }

    const pb::Descriptor* record_type = program->message;
    if (options.has("records")) {
      std::string records;
      options.string("records", records);
      const std::string key = options.key_path("records");
      program->records = resolve_path(key, program->message, records);
      const FD* leaf = program->records.back();
      if (leaf->cpp_type() != FD::CPPTYPE_MESSAGE || !leaf->is_repeated() || leaf->is_map()) {
        throw OptionError(key, fmt::format("{} is {}{}, not a repeated message field holding the records",
                                           leaf->full_name(), leaf->is_repeated() ? "repeated " : "",
                                           leaf->type_name()));
      }
      record_type = leaf->message_type();
    }
    options.take("records");

    program->record = mapping::read_record_plan(
        options, "path",
        [&](std::size_t index, const FieldPlan& field, const std::string& key) {
          FieldPath path = resolve_path(key, record_type, field.source);
          check_leaf(field, path.back(), key);
          if (program->sources.size() <= index) program->sources.resize(index + 1);
          program->sources[index] = std::move(path);
        },
        limits);
    program->sources.resize(program->record.fields.size());
    options.finish();
    return std::make_shared<ProtobufPlan>(std::move(program));
  };
}

ProtobufDynamicCodec::ProtobufDynamicCodec(std::shared_ptr<const ProtobufProgram> program)
    : program_(std::move(program)), message_(factory_.GetPrototype(program_->message)->New()) {}

std::expected<void, CodecError> ProtobufDynamicCodec::decode(std::string_view body, const DecodeContext& context,
                                                             DecodedBatch& out) {
  if (context.content_type != "application/x-protobuf" && context.content_type != "application/protobuf") {
    return std::unexpected(CodecError{CodecErrc::unsupported_content_type,
                                      fmt::format("the protobuf_dynamic codec reads application/x-protobuf and "
                                                  "application/protobuf, not '{}'",
                                                  context.content_type),
                                      std::nullopt});
  }
  // Zero bytes are a valid (all-default) message, but never a device's report.
  if (body.empty()) return std::unexpected(CodecError{CodecErrc::empty_body, "the body is empty", std::nullopt});
  message_->Clear();
  // Partial: a proto2 `required` field that is missing becomes a per-record error from the
  // field plan (if mapped) instead of failing the whole batch.
  if (body.size() > static_cast<std::size_t>(INT_MAX) ||
      !message_->ParsePartialFromArray(body.data(), static_cast<int>(body.size()))) {
    return std::unexpected(CodecError{CodecErrc::malformed_body,
                                      fmt::format("not a serialized {}: protobuf parsing failed",
                                                  program_->message->full_name()),
                                      std::nullopt});
  }

  const FieldPath& records = program_->records;
  if (records.empty()) {
    add_record(*message_, 0, context, out);
    return {};
  }
  const pb::Message* container = message_.get();
  for (std::size_t i = 0; i + 1 < records.size(); ++i) {
    const pb::Reflection* reflection = container->GetReflection();
    if (!reflection->HasField(*container, records[i])) return {};  // no records: an empty batch
    container = &reflection->GetMessage(*container, records[i]);
  }
  const pb::Reflection* reflection = container->GetReflection();
  const int count = reflection->FieldSize(*container, records.back());
  if (static_cast<std::size_t>(count) > program_->limits.max_records) {
    return std::unexpected(CodecError{CodecErrc::too_many_records,
                                      fmt::format("{} records in one body, more than {}", count,
                                                  program_->limits.max_records),
                                      std::nullopt});
  }
  for (int i = 0; i < count; ++i) {
    add_record(reflection->GetRepeatedMessage(*container, records.back(), i), static_cast<std::size_t>(i), context,
               out);
  }
  return {};
}

void ProtobufDynamicCodec::add_record(const pb::Message& message, std::size_t index, const DecodeContext& context,
                                      DecodedBatch& out) {
  CanonicalRecord& record = out.append(index);
  record.type = program_->record.message_type;
  record.device_id.assign(context.device_id);
  auto problem = mapping::build_record(program_->record, record, program_->limits, [&](std::size_t field) {
    return read_value(message, program_->sources[field], scratch_);
  });
  if (problem) {
    out.drop_last();
    out.reject(index, std::move(problem->field), std::move(problem->reason));
  }
}

}  // namespace telegate::codecs::protobuf_dynamic
