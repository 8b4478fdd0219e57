// Teltonika framing over TCP and UDP (wiki "Codec"): the IMEI handshake, AVL data packets with
// their CRC-16/IBM, the UDP header, and the acks. The AVL data itself (codec id … second record
// count) is the payload the `teltonika` codec decodes (codecs/teltonika/).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "tracker/tracker_protocol.hpp"

namespace telegate::gateway::tracker::teltonika {

// CRC-16/IBM (ARC: polynomial 0x8005 reflected, initial value 0), as the AVL packet carries it.
std::uint16_t crc16_ibm(std::span<const std::uint8_t> bytes) noexcept;

enum class Transport : std::uint8_t { stream, datagram };

// TCP (`stream`): `000F` + 15 ASCII digits → login (answered 0x01 / 0x00); then AVL packets:
// 4 zero bytes, 4-byte data length, data (codec id … record count), 4-byte CRC over the data →
// records, answered with the 4-byte big-endian count of records accepted.
// UDP (`datagram`): each datagram is 2-byte length, 2-byte packet id, 1 byte not usable, 1-byte
// AVL packet id, 2-byte IMEI length + IMEI, then the AVL data (no preamble, no CRC) → records
// with `imei` set and `sequence` = packet id << 8 | AVL packet id; answered with 0x0005, packet
// id, 0x01, AVL packet id, 1-byte accepted count.
// Lifecycle: one per TCP connection or UDP socket, used by its I/O thread only; keeps no state
// between frames.
class Teltonika final : public TrackerProtocol {
 public:
  Teltonika(Transport transport, std::size_t max_frame_bytes) : transport_(transport), max_frame_bytes_(max_frame_bytes) {}
  std::expected<Frame, TrackerError> next_frame(std::span<const std::uint8_t> input) override;
  std::string login_reply(const Frame& login, bool accepted) override;
  std::string records_reply(const Frame& frame, std::size_t accepted) override;
  std::string heartbeat_reply(const Frame& heartbeat) override;

 private:
  std::expected<Frame, TrackerError> next_packet(std::span<const std::uint8_t> input) const;
  std::expected<Frame, TrackerError> next_datagram(std::span<const std::uint8_t> input) const;

  Transport transport_;
  std::size_t max_frame_bytes_;
};

std::unique_ptr<TrackerProtocol> make_stream(std::size_t max_frame_bytes);
std::unique_ptr<TrackerProtocol> make_datagram(std::size_t max_frame_bytes);

// The payload is the `teltonika` codec's content type (codecs/teltonika/teltonika_codec.hpp).
inline constexpr ProtocolSpec kSpec{"teltonika", "application/x-teltonika-avl", make_stream, make_datagram};

}  // namespace telegate::gateway::tracker::teltonika
