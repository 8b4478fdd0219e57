// Fuzz target for the local log's frame reader: segment bytes after a crash, a bad disk or an
// operator's copy. Reading never crashes; a frame that reads back re-frames to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "local_log/log_format.hpp"

using namespace telegate::sinks::local_log;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  telegate::envelope::SealedRecord record;
  while (!bytes.empty()) {
    const FrameRead frame = read_frame(bytes, record);
    if (frame.status != FrameStatus::ok) break;
    std::string reframed;
    append_frame(record, reframed);
    if (reframed != bytes.substr(0, frame.frame_bytes)) __builtin_trap();
    bytes.remove_prefix(frame.frame_bytes);
  }
  return 0;
}
