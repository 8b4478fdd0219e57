// Fuzz target for the Kafka spool's entry reader: spool segments after a crash, a bad disk or
// an operator's copy. Reading never crashes; an entry that reads back re-encodes to an entry
// that reads back the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "local_log/log_format.hpp"
#include "spool/spool_format.hpp"

using namespace telegate::sinks;

namespace {

bool same(const spool::SpooledBatch& a, const spool::SpooledBatch& b) {
  if (a.spooled_at_ms != b.spooled_at_ms || a.records.size() != b.records.size() || a.control.size() != b.control.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    const auto &x = a.records[i], &y = b.records[i];
    if (x.topic != y.topic || x.key != y.key || x.route_header != y.route_header || x.value != y.value ||
        x.headers != y.headers) {
      return false;
    }
  }
  for (std::size_t i = 0; i < a.control.size(); ++i) {
    const auto &x = a.control[i], &y = b.control[i];
    if (x.topic != y.topic || x.partition != y.partition || x.key != y.key || x.value != y.value) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  while (!bytes.empty()) {
    const local_log::FrameRead frame = local_log::read_frame_body(bytes);
    if (frame.status != local_log::FrameStatus::ok) break;
    spool::SpooledBatch batch;
    if (spool::parse_batch_body(frame.body, batch)) {
      std::string again;
      spool::append_batch_frame(batch.records, batch.control, batch.spooled_at_ms, again);
      spool::SpooledBatch reread;
      const local_log::FrameRead reframed = local_log::read_frame_body(again);
      if (reframed.status != local_log::FrameStatus::ok || !spool::parse_batch_body(reframed.body, reread) ||
          !same(batch, reread)) {
        __builtin_trap();
      }
    }
    bytes.remove_prefix(frame.frame_bytes);
  }
  return 0;
}
