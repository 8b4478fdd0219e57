#include "senml/senml_codec.hpp"

#include <fmt/format.h>

#include <new>

#include "senml/senml_resolver.hpp"

namespace telegate::codecs {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;

namespace {

// Reads a record object's fields into `record`; the label rules live in the shared resolver.
// Returns only the errors that make the JSON unreadable.
error_code read_fields(ondemand::object object, senml::Record& record) {
  return for_each_field(object, [&](std::string_view key, ondemand::value value) -> error_code {
    const senml::Label label = senml::label_for_name(key);
    error_code error = simdjson::SUCCESS;
    switch (senml::kind_of(label)) {
      case senml::Kind::number: {
        double number = 0;
        if (!(error = value.get_double().get(number))) record.number(label, key, number);
        break;
      }
      case senml::Kind::text: {
        std::string_view text;
        if (!(error = value.get_string().get(text))) record.text(label, key, text);
        break;
      }
      case senml::Kind::boolean: {
        bool flag = false;
        if (!(error = value.get_bool().get(flag))) record.boolean(label, key, flag);
        break;
      }
      case senml::Kind::any:
        record.other(label, key);
        break;
    }
    if (error && !is_structural(error)) {
      record.other(label, key);  // a value of the wrong type: the record is refused, not the pack
      error = simdjson::SUCCESS;
    }
    return error;
  });
}

}  // namespace

SenmlJsonCodec::SenmlJsonCodec(DecodeLimits limits) : limits_(limits) {
  if (parser_.allocate(std::size_t{1} << 16) != simdjson::SUCCESS) throw std::bad_alloc();
}

std::expected<void, CodecError> SenmlJsonCodec::decode(std::string_view body, const DecodeContext& context,
                                                       DecodedBatch& out) {
  if (context.content_type != kContentTypes[0]) {
    return std::unexpected(CodecError{CodecErrc::unsupported_content_type,
                                      fmt::format("the senml codec reads {}, not '{}'", kContentTypes[0],
                                                  context.content_type),
                                      std::nullopt});
  }
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return std::unexpected(CodecError{CodecErrc::empty_body, "the body holds no SenML pack", std::nullopt});
  }
  padded_.assign(body);
  ondemand::document document;
  if (const auto error = parser_.iterate(padded_.data(), padded_.size(), padded_.capacity()).get(document); error) {
    return std::unexpected(malformed_json(error, 0));
  }
  ondemand::array pack;
  if (const auto error = document.get_array().get(pack); error) {
    if (is_structural(error)) return std::unexpected(malformed_json(error, 0));
    return std::unexpected(CodecError{CodecErrc::malformed_body, "a SenML pack must be a JSON array of records", 0});
  }

  senml::Resolver resolver(limits_, context, out);
  senml::Record record(limits_);
  std::size_t index = 0;
  for (auto element : pack) {
    const std::size_t this_index = index++;
    if (!resolver.admit(this_index)) return std::unexpected(resolver.too_many_records());
    ondemand::object object;
    if (const auto error = element.get_object().get(object); error) {
      if (is_structural(error)) return std::unexpected(malformed_json(error, std::nullopt));
      resolver.reject(this_index, "", "a SenML record must be a JSON object");
      continue;
    }
    record.reset();
    if (const auto error = read_fields(object, record); error) return std::unexpected(malformed_json(error, std::nullopt));
    resolver.add(this_index, record);
  }
  return {};
}

}  // namespace telegate::codecs
