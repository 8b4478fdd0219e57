// GT06 / Concox framing (GT06, GT06N, and the many trackers that copy them): login, status
// (heartbeat) and location/alarm packets over TCP, as the listener's TrackerProtocol.
//
//   78 78 <len:1> <protocol> <content…> <serial:2> <crc:2> 0D 0A     len = protocol..crc
//   79 79 <len:2> <protocol> <content…> <serial:2> <crc:2> 0D 0A     (the long form)
//
// The CRC is CRC-ITU (CRC-16/X-25) over the length field through the serial number. Records
// frames hand the codec (codecs/gt06/) `protocol, content…, serial` so the codec knows the
// layout and can build a msg_id that is stable when the tracker resends the packet.
// Format, choices and metrics: gateway/tracker/gt06/README.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <span>
#include <string>

#include "tracker/tracker_protocol.hpp"

namespace telegate::gateway::tracker::gt06 {

// Protocol numbers this side reads.
inline constexpr std::uint8_t kLogin = 0x01;
inline constexpr std::uint8_t kLocation = 0x12;     // GPS + LBS
inline constexpr std::uint8_t kStatus = 0x13;       // status information: the heartbeat
inline constexpr std::uint8_t kAlarm = 0x16;        // GPS + LBS + status + alarm
inline constexpr std::uint8_t kLocationN = 0x22;    // GT06N "GPS LBS" (adds ACC, upload mode)
inline constexpr std::uint8_t kAlarmN = 0x26;       // GT06N alarm

// The largest frame either start form can declare (79 79 with a 16-bit length).
inline constexpr std::size_t kMaxFrameBytes = 2 + 2 + 0xFFFF + 2;

// CRC-ITU as GT06 uses it: CRC-16/X-25 (poly 0x1021 reflected, init 0xFFFF, xorout 0xFFFF).
std::uint16_t crc_itu(std::span<const std::uint8_t> bytes) noexcept;

// One complete 78 78 packet (79 79 when the content needs a 2-byte length) with its CRC: what
// the gateway answers and what telegate-sim's GT06 tracker sends.
std::string packet(std::uint8_t protocol, std::span<const std::uint8_t> content, std::uint16_t serial);

// Records frames carry both numbers the ack echoes in Frame::sequence: protocol << 16 | serial.
constexpr std::uint32_t sequence_of(std::uint8_t protocol, std::uint16_t serial) noexcept {
  return std::uint32_t{protocol} << 16 | serial;
}

// Lifecycle: one per tracker connection (TrackerProtocol's contract); stateless between frames
// apart from its limit, so any number may exist. Used only by its connection's I/O thread.
class Gt06Protocol final : public TrackerProtocol {
 public:
  // `max_frame_bytes`: the listener's limit; a length field declaring more is frame_too_large.
  explicit Gt06Protocol(std::size_t max_frame_bytes = 1024) noexcept : max_frame_bytes_(max_frame_bytes) {}

  // Errors: malformed_frame (start or stop bits, a length below the minimum, a login whose IMEI
  // is not BCD), frame_too_large, bad_checksum — the listener closes; unsupported (a
  // well-formed packet of a protocol number not read here) carries `skip`: the listener counts
  // it, drops those bytes and reads on.
  std::expected<Frame, TrackerError> next_frame(std::span<const std::uint8_t> input) override;
  std::string login_reply(const Frame& login, bool accepted) override;
  std::string records_reply(const Frame& frame, std::size_t accepted) override;
  std::string heartbeat_reply(const Frame& heartbeat) override;

 private:
  std::size_t max_frame_bytes_;
};

// A fresh protocol per connection.
std::unique_ptr<TrackerProtocol> make_protocol(std::size_t max_frame_bytes);

// The payload is the `gt06` codec's content type (codecs/gt06/gt06_codec.hpp). TCP only: GT06
// trackers do not send datagrams.
inline constexpr ProtocolSpec kSpec{"gt06", "application/x-gt06", make_protocol, nullptr};

}  // namespace telegate::gateway::tracker::gt06
