// The built-in codecs: one line each. A new codec is a folder under codecs/, a
// telegate_codec(NAME …) line in codecs/CMakeLists.txt and a line here.
#include "gt06/gt06_codec.hpp"
#include "json/json_codec.hpp"
#include "mapping/mapping_codec.hpp"
#include "osmand/osmand_codec.hpp"
#include "overland/overland_codec.hpp"
#include "owntracks/owntracks_codec.hpp"
#include "protobuf/protobuf_codec.hpp"
#include "protobuf_dynamic/protobuf_dynamic_codec.hpp"
#include "senml/senml_codec.hpp"
#include "senml_cbor/senml_cbor_codec.hpp"
#include "telegate/codecs/codec.hpp"
#include "teltonika/teltonika_codec.hpp"

namespace telegate::codecs {

void register_builtin_codecs(CodecRegistry& registry) {
  registry.add("json", without_options<JsonCodec>());
  registry.add("senml", without_options<SenmlJsonCodec>());
  registry.add("osmand", compile_osmand);
  registry.add("owntracks", compile_owntracks);
  registry.add("overland", without_options<OverlandCodec>());
  registry.add("senml_cbor", without_options<SenmlCborCodec>());
  registry.add("protobuf", without_options<ProtobufCodec>());
  registry.add("mapping", mapping::mapping_compiler());
  registry.add("protobuf_dynamic", protobuf_dynamic::protobuf_dynamic_compiler());
  registry.add("teltonika", without_options<TeltonikaCodec>());
  registry.add("gt06", compile_gt06);
}

}  // namespace telegate::codecs
