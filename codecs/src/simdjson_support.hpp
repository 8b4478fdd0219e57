// What the simdjson-based codecs share: the padded body buffer and the line between a value of
// the wrong type (a record-level problem) and JSON that cannot be read at all.
#pragma once

#include <fmt/format.h>
#include <simdjson.h>

#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "telegate/codecs/codec.hpp"

namespace telegate::codecs {

// Errors that concern one value (the record is rejected, decoding goes on); any other error
// means the JSON itself is unreadable.
inline bool is_structural(simdjson::error_code error) {
  switch (error) {
    case simdjson::INCORRECT_TYPE:
    case simdjson::NUMBER_ERROR:
    case simdjson::NUMBER_OUT_OF_RANGE:
      return false;
    default:
      return true;
  }
}

inline CodecError malformed_json(simdjson::error_code error, std::optional<std::size_t> offset) {
  std::string message = fmt::format("malformed JSON: {}", simdjson::error_message(error));
  if (offset) message += fmt::format(" (at byte offset {})", *offset);
  return CodecError{CodecErrc::malformed_body, std::move(message), offset};
}

// Calls visit(key, value) for every field of `object`, in order. Stops at the first error,
// from simdjson (the JSON is unreadable) or from `visit`, and returns it.
template <class Visit>
simdjson::error_code for_each_field(simdjson::ondemand::object object, Visit&& visit) {
  for (auto field_result : object) {
    simdjson::ondemand::field field;
    if (const auto error = std::move(field_result).get(field); error) return error;
    std::string_view key;
    if (const auto error = field.unescaped_key().get(key); error) return error;
    if (const auto error = visit(key, field.value()); error) return error;
  }
  return simdjson::SUCCESS;
}

// A reusable copy of a request body with the SIMDJSON_PADDING spare bytes simdjson reads past
// the end. Copying (a few ns per record) keeps listeners free of simdjson's constraints.
// Owned by one codec instance, like the parser it feeds.
class PaddedBody {
 public:
  void assign(std::string_view body) {
    if (buffer_.size() < body.size() + simdjson::SIMDJSON_PADDING) buffer_.resize(body.size() + simdjson::SIMDJSON_PADDING);
    std::memcpy(buffer_.data(), body.data(), body.size());
    std::memset(buffer_.data() + body.size(), 0, simdjson::SIMDJSON_PADDING);
    size_ = body.size();
  }
  const char* data() const noexcept { return buffer_.data(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return buffer_.size(); }
  std::size_t offset_of(const char* at) const noexcept { return static_cast<std::size_t>(at - buffer_.data()); }

 private:
  std::string buffer_;
  std::size_t size_ = 0;
};

}  // namespace telegate::codecs
