#include "mapping/mapping_codec.hpp"

#include <fmt/format.h>

#include <charconv>

#include "src/form_decode.hpp"

namespace telegate::codecs::mapping {

namespace dom = simdjson::dom;

namespace {

// The immutable plan handed out by the registry: every worker's codec shares its program.
class MappingPlan final : public CodecPlan {
 public:
  explicit MappingPlan(std::shared_ptr<const MappingProgram> program) : program_(std::move(program)) {}
  std::unique_ptr<Codec> instantiate() const override { return std::make_unique<MappingCodec>(program_); }

 private:
  std::shared_ptr<const MappingProgram> program_;
};

std::string_view type_name(dom::element_type type) {
  switch (type) {
    case dom::element_type::ARRAY: return "an array";
    case dom::element_type::OBJECT: return "an object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE: return "a number";
    case dom::element_type::STRING: return "a string";
    case dom::element_type::BOOL: return "a boolean";
    case dom::element_type::NULL_VALUE: return "null";
  }
  return "unknown";
}

// Follows the pre-split tokens from `at`; nullopt when any step is missing. A token reads an
// object by key and an array by index, as RFC 6901 §4 says.
std::optional<dom::element> walk(dom::element at, const JsonPointer& pointer) {
  for (const JsonPointer::Token& token : pointer.tokens) {
    dom::object object;
    dom::array array;
    if (at.get_object().get(object) == simdjson::SUCCESS) {
      if (object.at_key(token.key).get(at) != simdjson::SUCCESS) return std::nullopt;
    } else if (token.index && at.get_array().get(array) == simdjson::SUCCESS) {
      if (array.at(*token.index).get(at) != simdjson::SUCCESS) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  return at;
}

// JSON null reads as absent: apps send "alt": null when they have no fix.
RawValue raw_value(dom::element element) {
  constexpr auto ok = simdjson::SUCCESS;
  std::int64_t signed_value = 0;
  std::uint64_t unsigned_value = 0;
  double number = 0;
  std::string_view text;
  bool boolean = false;
  switch (element.type()) {
    case dom::element_type::INT64:
      if (element.get_int64().get(signed_value) == ok) return RawValue::of_signed(signed_value);
      break;
    case dom::element_type::UINT64:
      if (element.get_uint64().get(unsigned_value) == ok) return RawValue::of_unsigned(unsigned_value);
      break;
    case dom::element_type::DOUBLE:
      if (element.get_double().get(number) == ok) return RawValue::of_number(number);
      break;
    case dom::element_type::STRING:
      if (element.get_string().get(text) == ok) return RawValue::of_text(text);
      break;
    case dom::element_type::BOOL:
      if (element.get_bool().get(boolean) == ok) return RawValue::of_boolean(boolean);
      break;
    case dom::element_type::NULL_VALUE: return RawValue{};
    case dom::element_type::ARRAY:
    case dom::element_type::OBJECT: break;
  }
  return RawValue::of_other(type_name(element.type()));
}

CodecError malformed(std::string message, std::optional<std::size_t> offset) {
  return CodecError{CodecErrc::malformed_body, std::move(message), offset};
}

}  // namespace

JsonPointer compile_pointer(const std::string& key, const std::string& text) {
  if (text.empty() || text.front() != '/') {
    throw OptionError(key, "must be a JSON pointer starting with / (such as /lat or /data/0/lat), got '" + text + "'");
  }
  JsonPointer pointer{text, {}};
  std::size_t at = 1;
  while (true) {
    const std::size_t end = std::min(text.find('/', at), text.size());
    JsonPointer::Token token;
    for (std::size_t i = at; i < end; ++i) {
      if (text[i] != '~') {
        token.key.push_back(text[i]);
        continue;
      }
      if (i + 1 >= end || (text[i + 1] != '0' && text[i + 1] != '1')) {
        throw OptionError(key, "'~' must be followed by 0 or 1 in a JSON pointer (~0 is ~, ~1 is /), got '" + text + "'");
      }
      token.key.push_back(text[++i] == '0' ? '~' : '/');
    }
    // RFC 6901 array indices: digits without a leading zero.
    const std::string& digits = token.key;
    if (!digits.empty() && digits.size() <= 18 && (digits.size() == 1 || digits.front() != '0') &&
        digits.find_first_not_of("0123456789") == std::string::npos) {
      std::size_t index = 0;
      std::from_chars(digits.data(), digits.data() + digits.size(), index);
      token.index = index;
    }
    pointer.tokens.push_back(std::move(token));
    if (end == text.size()) break;
    at = end + 1;
  }
  return pointer;
}

CodecCompiler mapping_compiler() {
  return [](OptionReader& options, const DecodeLimits& limits) -> std::shared_ptr<const CodecPlan> {
    auto program = std::make_shared<MappingProgram>();
    program->limits = limits;
    if (options.has("records")) {
      std::string records;
      options.string("records", records);
      program->records = compile_pointer(options.key_path("records"), records);
    }
    options.take("records");
    program->record = read_record_plan(
        options, "pointer",
        [&](std::size_t index, const FieldPlan& field, const std::string& key) {
          if (program->sources.size() <= index) program->sources.resize(index + 1);
          program->sources[index] = compile_pointer(key, field.source);
        },
        limits);
    program->sources.resize(program->record.fields.size());
    options.finish();
    return std::make_shared<MappingPlan>(std::move(program));
  };
}

MappingCodec::MappingCodec(std::shared_ptr<const MappingProgram> program) : program_(std::move(program)) {}

std::expected<void, CodecError> MappingCodec::decode(std::string_view body, const DecodeContext& context,
                                                     DecodedBatch& out) {
  const std::string_view type = context.content_type;
  const bool json = type == "application/json";
  const bool ndjson = type == "application/x-ndjson";
  const bool form = type == "application/x-www-form-urlencoded";
  if (!json && !ndjson && !form) {
    return std::unexpected(CodecError{CodecErrc::unsupported_content_type,
                                      fmt::format("the mapping codec reads application/json, application/x-ndjson "
                                                  "and application/x-www-form-urlencoded, not '{}'",
                                                  type),
                                      std::nullopt});
  }
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return std::unexpected(CodecError{CodecErrc::empty_body, "the body is empty", std::nullopt});
  }
  if (form) return decode_form(body, context, out);

  padded_.assign(body);
  std::size_t next_index = 0;
  if (json) return decode_json(0, body.size(), next_index, context, out);
  // NDJSON: every non-blank line is a JSON text of its own, read like a whole JSON body.
  for (std::size_t start = 0; start < body.size();) {
    const std::size_t end = std::min(body.find('\n', start), body.size());
    if (body.substr(start, end - start).find_first_not_of(" \t\r") != std::string_view::npos) {
      if (auto decoded = decode_json(start, end - start, next_index, context, out); !decoded) return decoded;
    }
    start = end + 1;
  }
  return {};
}

std::expected<void, CodecError> MappingCodec::decode_json(std::size_t offset, std::size_t length,
                                                          std::size_t& next_index, const DecodeContext& context,
                                                          DecodedBatch& out) {
  // The DOM parser needs only readable bytes past `length`, which the padded copy of the whole
  // body provides for every line.
  dom::element root;
  if (const auto error = parser_.parse(padded_.data() + offset, length, false).get(root); error) {
    return std::unexpected(malformed_json(error, offset));
  }
  dom::element container = root;
  if (program_->records) {
    const auto found = walk(root, *program_->records);
    if (!found) {
      return std::unexpected(malformed(fmt::format("no records at {}: the body has no such value",
                                                   program_->records->text),
                                       offset));
    }
    container = *found;
  }

  auto add = [&](dom::element element) -> std::expected<void, CodecError> {
    if (next_index == program_->limits.max_records) {
      return std::unexpected(CodecError{CodecErrc::too_many_records,
                                        fmt::format("more than {} records in one body", program_->limits.max_records),
                                        offset});
    }
    const std::size_t index = next_index++;
    if (element.type() != dom::element_type::OBJECT) {
      out.reject(index, "", fmt::format("a record must be a JSON object, not {}", type_name(element.type())));
      return {};
    }
    add_record(index, context, out, [&](std::size_t field) -> RawValue {
      const auto value = walk(element, program_->sources[field]);
      return value ? raw_value(*value) : RawValue{};
    });
    return {};
  };

  switch (container.type()) {
    case dom::element_type::ARRAY: {
      dom::array array;
      if (container.get_array().get(array) != simdjson::SUCCESS) break;
      for (const dom::element element : array) {
        if (auto added = add(element); !added) return added;
      }
      return {};
    }
    case dom::element_type::OBJECT: return add(container);
    default: break;
  }
  if (program_->records) {
    return std::unexpected(malformed(fmt::format("the records at {} must be an array of objects, not {}",
                                                 program_->records->text, type_name(container.type())),
                                     offset));
  }
  return std::unexpected(malformed(fmt::format("the body must be a record object or an array of records, not {}",
                                               type_name(container.type())),
                                   offset));
}

std::expected<void, CodecError> MappingCodec::decode_form(std::string_view body, const DecodeContext& context,
                                                          DecodedBatch& out) {
  // A whole query string may arrive with its '?'; line ends after it are not part of a value.
  std::size_t start = body.front() == '?' ? 1 : 0;
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
  form_size_ = 0;
  while (start <= body.size()) {
    const std::size_t end = std::min(body.find('&', start), body.size());
    const std::string_view pair = body.substr(start, end - start);
    if (!pair.empty()) {
      const std::size_t equals = std::min(pair.find('='), pair.size());
      if (form_size_ == form_.size()) form_.emplace_back();
      auto& [key, value] = form_[form_size_++];
      if (const auto bad = form_decode(pair.substr(0, equals), key)) {
        return std::unexpected(malformed(fmt::format("broken percent escape in a form field name at byte {}",
                                                     start + *bad),
                                         start + *bad));
      }
      const std::string_view encoded = equals < pair.size() ? pair.substr(equals + 1) : std::string_view();
      if (const auto bad = form_decode(encoded, value)) {
        const std::size_t at = start + equals + 1 + *bad;
        return std::unexpected(malformed(fmt::format("broken percent escape in form field '{}' at byte {}",
                                                     key.substr(0, 40), at),
                                         at));
      }
    }
    start = end + 1;
  }
  // A form is one record; /name reads field `name` (the first, if repeated). An empty value is
  // absent: apps fill placeholders they have no value for (no fix, no battery) with nothing.
  add_record(0, context, out, [&](std::size_t field) -> RawValue {
    const JsonPointer& pointer = program_->sources[field];
    if (pointer.tokens.size() != 1) return RawValue{};
    for (std::size_t i = 0; i < form_size_; ++i) {
      if (form_[i].first == pointer.tokens.front().key) {
        return form_[i].second.empty() ? RawValue{} : RawValue::of_text(form_[i].second);
      }
    }
    return RawValue{};
  });
  return {};
}

template <class Lookup>
void MappingCodec::add_record(std::size_t index, const DecodeContext& context, DecodedBatch& out, Lookup&& lookup) {
  CanonicalRecord& record = out.append(index);
  record.type = program_->record.message_type;
  record.device_id.assign(context.device_id);
  if (auto problem = build_record(program_->record, record, program_->limits, lookup)) {
    out.drop_last();
    out.reject(index, std::move(problem->field), std::move(problem->reason));
  }
}

}  // namespace telegate::codecs::mapping
