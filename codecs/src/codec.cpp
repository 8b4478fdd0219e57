#include "telegate/codecs/codec.hpp"

#include <stdexcept>

namespace telegate::codecs {

std::string_view to_string(CodecErrc code) noexcept {
  switch (code) {
    case CodecErrc::malformed_body: return "malformed_body";
    case CodecErrc::unsupported_content_type: return "unsupported_content_type";
    case CodecErrc::too_many_records: return "too_many_records";
    case CodecErrc::empty_body: return "empty_body";
  }
  return "unknown";
}

CanonicalRecord& DecodedBatch::append(std::size_t index) {
  if (size_ == slots_.size()) slots_.emplace_back();
  CanonicalRecord& record = slots_[size_++];
  record.reset();
  record.index = index;
  return record;
}

void DecodedBatch::drop_last() noexcept {
  if (size_ > 0) --size_;
}

void DecodedBatch::reject(std::size_t index, std::string field, std::string reason) {
  errors_.push_back(FieldError{index, std::move(field), std::move(reason)});
}

void DecodedBatch::clear() noexcept {
  size_ = 0;
  errors_.clear();
}

void CodecRegistry::add(std::string name, CodecCompiler compiler) {
  if (!compilers_.emplace(name, std::move(compiler)).second) {
    throw std::invalid_argument("codec '" + name + "' registered twice");
  }
}

bool CodecRegistry::contains(std::string_view name) const { return compilers_.contains(name); }

std::shared_ptr<const CodecPlan> CodecRegistry::compile(std::string_view name, OptionReader& options,
                                                        const DecodeLimits& limits) const {
  const auto found = compilers_.find(name);
  if (found == compilers_.end()) {
    std::string known;
    for (const auto& [known_name, compiler] : compilers_) known += (known.empty() ? "" : ", ") + known_name;
    throw OptionError("codec", "unknown codec '" + std::string(name) + "' (known: " + known + ")");
  }
  return found->second(options, limits);
}

std::unique_ptr<Codec> CodecRegistry::create(std::string_view name, const DecodeLimits& limits) const {
  if (!contains(name)) return nullptr;
  OptionReader no_options(YAML::Node(), "codec_options");
  return compile(name, no_options, limits)->instantiate();
}

std::vector<std::string> CodecRegistry::names() const {
  std::vector<std::string> names;
  for (const auto& [name, compiler] : compilers_) names.push_back(name);
  return names;
}

}  // namespace telegate::codecs
