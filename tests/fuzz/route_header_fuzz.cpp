// Fuzz target for what consumers and `telegate log dump` read back: the tg-route header and
// envelope values of both formats. Round trip: a header that decodes re-encodes to one that
// decodes to the same fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "telegate/envelope/envelope.hpp"

using namespace telegate::envelope;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (const auto fields = decode_route_header(bytes)) {
    std::string encoded;
    encode_route_header(*fields, encoded);
    const auto again = decode_route_header(encoded);
    if (!again || again->tenant != fields->tenant || again->msg_id != fields->msg_id ||
        again->event_time_ms != fields->event_time_ms || again->device_type != fields->device_type) {
      __builtin_trap();
    }
  }
  (void)decode_envelope(bytes, Format::protobuf);
  (void)decode_envelope(bytes, Format::json);
  (void)render_json(bytes, Format::protobuf);
  return 0;
}
