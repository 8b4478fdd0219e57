// Fuzz target for the Teltonika framing (gateway/tracker/teltonika/): arbitrary bytes as a TCP
// stream cut frame by frame, or as one UDP datagram. The first input byte picks the mode (even:
// stream, odd: datagram). Every frame must consume what it says, within the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "tracker/teltonika/teltonika_protocol.hpp"

using namespace telegate::gateway::tracker;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool datagram = (data[0] & 1) != 0;
  std::span<const std::uint8_t> input(data + 1, size - 1);
  constexpr std::size_t kMaxFrame = 4096;
  if (datagram) {
    teltonika::Teltonika protocol(teltonika::Transport::datagram, kMaxFrame);
    if (auto frame = protocol.next_frame(input); frame && frame->kind == Frame::Kind::records) {
      if (frame->consumed != input.size() || frame->payload.size() > input.size()) std::abort();
      (void)protocol.records_reply(*frame, frame->record_count);
    }
    return 0;
  }
  teltonika::Teltonika protocol(teltonika::Transport::stream, kMaxFrame);
  while (!input.empty()) {
    auto frame = protocol.next_frame(input);
    if (!frame || frame->kind == Frame::Kind::need_more) break;
    if (frame->consumed == 0 || frame->consumed > input.size() || frame->consumed > kMaxFrame) std::abort();
    if (frame->kind == Frame::Kind::login) (void)protocol.login_reply(*frame, true);
    if (frame->kind == Frame::Kind::records) (void)protocol.records_reply(*frame, frame->record_count);
    input = input.subspan(frame->consumed);
  }
  return 0;
}
