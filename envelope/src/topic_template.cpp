#include <fmt/format.h>

#include "telegate/envelope/envelope.hpp"

namespace telegate::envelope {

std::expected<TopicTemplate, EnvelopeError> TopicTemplate::compile(std::string_view text) {
  TopicTemplate compiled;
  compiled.text_ = std::string(text);
  std::string literal;
  for (std::size_t at = 0; at < text.size();) {
    if (text[at] == '}') {
      return std::unexpected(EnvelopeError{EnvelopeErrc::bad_template,
                                           fmt::format("unmatched '}}' at position {} in '{}'", at, text)});
    }
    if (text[at] != '{') {
      literal += text[at++];
      continue;
    }
    const std::size_t close = text.find('}', at);
    if (close == std::string_view::npos) {
      return std::unexpected(EnvelopeError{EnvelopeErrc::bad_template,
                                           fmt::format("unclosed '{{' at position {} in '{}'", at, text)});
    }
    const std::string_view name = text.substr(at + 1, close - at - 1);
    Part part;
    if (name == "tenant") {
      part = Part::tenant;
    } else if (name == "device_type") {
      part = Part::device_type;
    } else if (name == "type") {
      part = Part::type;
    } else {
      return std::unexpected(EnvelopeError{
          EnvelopeErrc::bad_template,
          fmt::format("unknown placeholder {{{}}} in '{}' (known: {{tenant}}, {{device_type}}, {{type}})", name, text)});
    }
    if (!literal.empty()) compiled.pieces_.push_back(Piece{Part::literal, std::move(literal)});
    literal.clear();
    compiled.pieces_.push_back(Piece{part, {}});
    at = close + 1;
  }
  if (!literal.empty()) compiled.pieces_.push_back(Piece{Part::literal, std::move(literal)});
  if (compiled.pieces_.empty()) {
    return std::unexpected(EnvelopeError{EnvelopeErrc::bad_template, "the topic template is empty"});
  }
  return compiled;
}

void TopicTemplate::expand(std::string_view tenant, std::string_view device_type, codecs::MessageType type,
                           std::string& out) const {
  const auto text_of = [&](const Piece& piece) -> std::string_view {
    switch (piece.part) {
      case Part::literal: return piece.literal;
      case Part::tenant: return tenant;
      case Part::device_type: return device_type;
      case Part::type: return codecs::to_string(type);
    }
    return {};
  };
  std::size_t size = 0;  // reserved up front: one allocation, not one per doubling
  for (const Piece& piece : pieces_) size += text_of(piece).size();
  out.clear();
  out.reserve(size);
  for (const Piece& piece : pieces_) out += text_of(piece);
}

}  // namespace telegate::envelope
