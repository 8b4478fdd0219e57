// Fuzz target for GT06 framing (gateway/tracker/gt06): what any TCP peer can send a GT06 port.
//
// The input is a byte stream as a socket delivers it, framed whole, in pseudo-random splits
// derived from the input and byte by byte; all three must give the same frames and the same
// final error, with every frame inside the bytes it was cut from. Records frames go on through
// the gt06 codec, and every reply must be a frame whose CRC-ITU checks. Crashes, sanitizer
// reports and __builtin_trap() are findings.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gt06/gt06_codec.hpp"
#include "input_splits.hpp"
#include "tracker/gt06/gt06_protocol.hpp"

using namespace telegate::gateway::tracker;

namespace {

struct Framed {
  std::vector<std::string> frames;  // kind, then the frame's bytes
  std::optional<TrackerErrc> error;
  std::size_t skipped = 0;
  bool operator==(const Framed&) const = default;
};

void check_reply(const std::string& reply) {
  if (reply.size() != 10 || reply[0] != 0x78 || reply[1] != 0x78 || reply[2] != 0x05) __builtin_trap();
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(reply.data());
  if ((bytes[6] << 8 | bytes[7]) != gt06::crc_itu({bytes + 2, 4})) __builtin_trap();
}

// Feeds `data` in chunks from `next_chunk` into a connection-like buffer and collects frames.
template <typename NextChunk>
Framed frame_all(const std::uint8_t* data, std::size_t size, NextChunk&& next_chunk) {
  gt06::Gt06Protocol protocol(4096);
  telegate::codecs::Gt06Codec codec(telegate::codecs::DecodeLimits{}, {});
  telegate::codecs::DecodedBatch batch;
  Framed out;
  std::vector<std::uint8_t> buffer;
  std::size_t pos = 0;
  while (pos < size) {
    const std::size_t chunk = std::min(size - pos, next_chunk());
    buffer.insert(buffer.end(), data + pos, data + pos + chunk);
    pos += chunk;
    for (;;) {
      const auto frame = protocol.next_frame(buffer);
      if (!frame) {
        if (frame.error().message.empty() || frame.error().skip > buffer.size()) __builtin_trap();
        if (frame.error().skip == 0) {
          out.error = frame.error().code;
          return out;
        }
        ++out.skipped;
        buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(frame.error().skip));
        continue;
      }
      if (frame->kind == Frame::Kind::need_more) {
        if (frame->consumed != 0) __builtin_trap();
        break;
      }
      if (frame->consumed == 0 || frame->consumed > buffer.size()) __builtin_trap();
      const auto* begin = reinterpret_cast<const char*>(buffer.data());
      if (frame->kind == Frame::Kind::records) {
        if (frame->payload.data() < begin || frame->payload.data() + frame->payload.size() > begin + frame->consumed) {
          __builtin_trap();
        }
        batch.clear();
        const auto decoded = codec.decode(frame->payload, {"t", "d", "tracker", telegate::codecs::Gt06Codec::kContentType},
                                          batch);
        if (!decoded && decoded.error().message.empty()) __builtin_trap();
        check_reply(protocol.records_reply(*frame, batch.records().size()));
      } else if (frame->kind == Frame::Kind::login) {
        if (frame->imei.size() != 15) __builtin_trap();
        check_reply(protocol.login_reply(*frame, true));
      } else {
        check_reply(protocol.heartbeat_reply(*frame));
      }
      std::string bytes(1, static_cast<char>(frame->kind));
      bytes.append(begin, frame->consumed);
      out.frames.push_back(std::move(bytes));
      buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(frame->consumed));
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)frame_three_ways(data, size, [](auto... args) { return frame_all(args...); });
  return 0;
}
