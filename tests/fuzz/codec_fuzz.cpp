// Fuzz target for one codec (TELEGATE_CODEC_UNDER_TEST names it): any bytes, every content type the
// codec reads. The codec contract says decode() never crashes, throws or asserts on input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "codec_under_test.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto codec = telegate::codecs::make_codec_under_test();
  static telegate::codecs::DecodedBatch batch;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const std::string_view content_type : codec->content_types()) {
    batch.clear();
    const auto result = codec->decode(body, {"fuzz", "fuzz-device", "fuzz", content_type}, batch);
    // An error names a record by its position in the payload: in order, never repeated, and
    // never past the payload (a record takes at least one byte).
    std::size_t next = 0;
    for (const auto& error : batch.errors()) {
      if (error.index < next || error.index >= size) __builtin_trap();
      next = error.index + 1;
    }
    (void)result;
  }
  return 0;
}
