// Fuzz target for the MQTT wire layer (gateway/mqtt): what any TCP peer can send the gateway.
//
// The input is a byte stream as a socket would deliver it. It is framed twice — whole, and in
// pseudo-random splits derived from the input (down to 1 byte) — and both must give the same
// frames and the same error. Every frame is decoded like a server would (the version follows
// the last CONNECT that decoded) and also as the other version; what decodes is re-encoded,
// and the encoding must frame and decode back to equal fields. Crashes, sanitizer reports and
// __builtin_trap() are findings.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "input_splits.hpp"
#include "mqtt/mqtt_packet.hpp"

using namespace telegate::gateway::mqtt;

namespace {

constexpr std::uint32_t kMaxPacket = 1 << 16;

struct Framed {
  std::vector<std::vector<std::uint8_t>> frames;  // first byte + body, copied out
  std::optional<ReasonCode> error;
  bool operator==(const Framed&) const = default;
};

// Feeds `data` in chunks whose sizes come from `next_chunk` and collects the frames.
template <typename NextChunk>
Framed frame_all(const std::uint8_t* data, std::size_t size, NextChunk&& next_chunk) {
  FrameReader reader(kMaxPacket);
  Framed out;
  std::size_t pos = 0;
  while (pos < size) {
    const std::size_t chunk = std::min(size - pos, next_chunk());
    Bytes input(data + pos, chunk);
    while (!input.empty()) {
      const auto step = reader.read(input);
      if (!step) {
        out.error = step.error().reason;
        if (step.error().message.empty()) __builtin_trap();
        return out;
      }
      if (step->consumed == 0 && !step->frame) __builtin_trap();  // no progress
      if (step->consumed > input.size()) __builtin_trap();
      if (step->frame) {
        const Frame& frame = *step->frame;
        if (frame.size() > kMaxPacket || frame.header_size < 2 || frame.header_size > 5) __builtin_trap();
        std::vector<std::uint8_t> bytes{frame.first_byte};
        bytes.insert(bytes.end(), frame.body.begin(), frame.body.end());
        out.frames.push_back(std::move(bytes));
      }
      input = input.subspan(step->consumed);
    }
    pos += chunk;
  }
  return out;
}

// encode(decode(frame)) must decode to the same packet.
void round_trip(const Packet& packet, ProtocolVersion version) {
  std::vector<std::uint8_t> encoded;
  const auto result = encode_packet(packet, version, encoded);
  if (!result) {
    // The only decodable packet without an encoding: a 3.1.1 server sends no DISCONNECT.
    if (std::holds_alternative<Disconnect>(packet) && version == ProtocolVersion::v311) return;
    __builtin_trap();
  }
  if (*result != encoded.size()) __builtin_trap();
  FrameReader reader(kMaxPacketSizeLimit);
  const auto step = reader.read(encoded);
  if (!step || !step->frame || step->consumed != encoded.size()) __builtin_trap();
  const auto again = decode_packet(*step->frame, version);
  if (!again || !(*again == packet)) __builtin_trap();
}

void decode_frame(const std::vector<std::uint8_t>& bytes, ProtocolVersion& version) {
  const Frame frame{bytes[0], 2, Bytes(bytes).subspan(1)};
  for (const ProtocolVersion as : {version, version == ProtocolVersion::v5 ? ProtocolVersion::v311 : ProtocolVersion::v5}) {
    const auto packet = decode_packet(frame, as);
    if (!packet) {
      const PacketError& error = packet.error();
      if (error.message.empty() || error.offset > frame.size()) __builtin_trap();
      if (to_string(error.reason) == "Unknown") __builtin_trap();
      continue;
    }
    if (const auto* publish = std::get_if<Publish>(&*packet)) {
      (void)validate_payload_format(*publish);
      if (!publish->topic.empty()) {
        std::vector<std::string_view> captures;
        (void)topic_matches("+/#", publish->topic, &captures);
        if (!validate_topic_name(publish->topic)) __builtin_trap();  // the decoder checked the same rules
      }
    }
    if (const auto* subscribe = std::get_if<Subscribe>(&*packet)) {
      for (const auto& entry : subscribe->subscriptions) {
        if (validate_topic_filter(entry.filter) && !parse_shared_filter(entry.filter)) {
          (void)topic_matches(entry.filter, "a/b/c");
          (void)split_topic(entry.filter);
        }
      }
    }
    round_trip(*packet, as);
    if (as == version) {
      if (const auto* connect = std::get_if<Connect>(&*packet)) version = connect->version;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Framed whole = frame_three_ways(data, size, [](auto... args) { return frame_all(args...); });

  ProtocolVersion version = ProtocolVersion::v311;
  for (const auto& frame : whole.frames) decode_frame(frame, version);
  return 0;
}
