// The built-in codecs: one line each. A new codec is a folder under codecs/, a
// telegate_codec(NAME …) line in codecs/CMakeLists.txt and a line here.
#include "json/json_codec.hpp"
#include "telegate/codecs/codec.hpp"

namespace telegate::codecs {

void register_builtin_codecs(CodecRegistry& registry) {
  registry.add("json", [](const DecodeLimits& limits) { return std::make_unique<JsonCodec>(limits); });
}

}  // namespace telegate::codecs
