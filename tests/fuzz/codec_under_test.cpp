#include "codec_under_test.hpp"

#include <stdexcept>
#include <string_view>

namespace telegate::codecs {

std::unique_ptr<Codec> make_codec_under_test(const DecodeLimits& limits) {
  CodecRegistry registry;
  register_builtin_codecs(registry);
  constexpr std::string_view options_file = TELEGATE_CODEC_OPTIONS;
  OptionReader options(options_file.empty() ? YAML::Node() : YAML::LoadFile(std::string(options_file)),
                       "codec_options");
  auto codec = registry.compile(TELEGATE_CODEC_UNDER_TEST, options, limits)->instantiate();
  if (!codec) throw std::logic_error("codec " TELEGATE_CODEC_UNDER_TEST " instantiated nothing");
  return codec;
}

}  // namespace telegate::codecs
