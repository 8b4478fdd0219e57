#include "tracker/teltonika/teltonika_protocol.hpp"

#include <fmt/format.h>

namespace telegate::gateway::tracker::teltonika {

namespace {

constexpr std::uint8_t kCodec8 = 0x08;
constexpr std::uint8_t kCodec8Extended = 0x8E;
constexpr std::size_t kImeiDigits = 15;
constexpr std::size_t kTcpHeader = 8;   // preamble + data length
constexpr std::size_t kTcpTrailer = 4;  // CRC
constexpr std::size_t kUdpHeader = 8;   // length, packet id, not usable, AVL packet id, IMEI length

std::uint32_t be(std::span<const std::uint8_t> bytes) noexcept {
  std::uint32_t value = 0;
  for (const std::uint8_t byte : bytes) value = (value << 8) | byte;
  return value;
}

std::unexpected<TrackerError> fail(TrackerErrc code, std::string message) {
  return std::unexpected(TrackerError{code, std::move(message)});
}

bool all_digits(std::span<const std::uint8_t> bytes) noexcept {
  for (const std::uint8_t byte : bytes) {
    if (byte < '0' || byte > '9') return false;
  }
  return !bytes.empty();
}

// The AVL data both transports carry: codec id, record count, records, the count again. Only
// the envelope is checked here; the records are the codec's.
std::expected<std::uint32_t, TrackerError> check_avl_data(std::span<const std::uint8_t> data) {
  if (data.size() < 3) return fail(TrackerErrc::malformed_frame, fmt::format("AVL data of {} bytes", data.size()));
  if (data[0] != kCodec8 && data[0] != kCodec8Extended) {
    return fail(TrackerErrc::unsupported, fmt::format("codec id 0x{:02x} (read: 0x08, 0x8e)", data[0]));
  }
  if (data[1] != data.back()) {
    return fail(TrackerErrc::malformed_frame, fmt::format("record counts differ: {} and {}", data[1], data.back()));
  }
  return data[1];
}

std::string be_bytes(std::uint32_t value, std::size_t bytes) {
  std::string out(bytes, '\0');
  for (std::size_t i = 0; i < bytes; ++i) out[bytes - 1 - i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return out;
}

}  // namespace

std::uint16_t crc16_ibm(std::span<const std::uint8_t> bytes) noexcept {
  std::uint16_t crc = 0;
  for (const std::uint8_t byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA001) : static_cast<std::uint16_t>(crc >> 1);
  }
  return crc;
}

std::expected<Frame, TrackerError> Teltonika::next_frame(std::span<const std::uint8_t> input) {
  return transport_ == Transport::stream ? next_packet(input) : next_datagram(input);
}

std::expected<Frame, TrackerError> Teltonika::next_packet(std::span<const std::uint8_t> input) const {
  Frame frame;
  if (input.size() < 2) return frame;
  if (input[0] != 0 || input[1] != 0) {
    // The handshake: 2-byte length, then the IMEI as ASCII digits.
    const std::size_t length = be(input.first(2));
    if (length != kImeiDigits) {
      return fail(TrackerErrc::malformed_frame, fmt::format("IMEI handshake of length {}, expected 15", length));
    }
    if (input.size() < 2 + length) return frame;
    const auto digits = input.subspan(2, length);
    if (!all_digits(digits)) return fail(TrackerErrc::malformed_frame, "IMEI handshake with non-digits");
    frame.kind = Frame::Kind::login;
    frame.imei.assign(digits.begin(), digits.end());
    frame.consumed = 2 + length;
    return frame;
  }
  if (input.size() < kTcpHeader) return frame;
  if (be(input.first(4)) != 0) return fail(TrackerErrc::malformed_frame, "AVL packet without its 4 zero bytes");
  const std::size_t length = be(input.subspan(4, 4));
  // Checked before waiting for (or holding) the bytes a hostile length announces.
  if (length > max_frame_bytes_ || length + kTcpHeader + kTcpTrailer > max_frame_bytes_) {
    return fail(TrackerErrc::frame_too_large, fmt::format("AVL data length {}, max_frame_bytes {}", length, max_frame_bytes_));
  }
  if (input.size() < kTcpHeader + length + kTcpTrailer) return frame;
  const auto data = input.subspan(kTcpHeader, length);
  const std::uint32_t sent = be(input.subspan(kTcpHeader + length, kTcpTrailer));
  const std::uint16_t computed = crc16_ibm(data);
  if (sent != computed) {
    return fail(TrackerErrc::bad_checksum, fmt::format("AVL packet CRC 0x{:04x}, computed 0x{:04x}", sent, computed));
  }
  auto count = check_avl_data(data);
  if (!count) return std::unexpected(std::move(count.error()));
  frame.kind = Frame::Kind::records;
  frame.consumed = kTcpHeader + length + kTcpTrailer;
  frame.payload = std::string_view(reinterpret_cast<const char*>(data.data()), data.size());
  frame.record_count = *count;
  return frame;
}

std::expected<Frame, TrackerError> Teltonika::next_datagram(std::span<const std::uint8_t> input) const {
  if (input.size() > max_frame_bytes_) {
    return fail(TrackerErrc::frame_too_large, fmt::format("datagram of {} bytes, max_frame_bytes {}", input.size(), max_frame_bytes_));
  }
  if (input.size() < kUdpHeader) return fail(TrackerErrc::malformed_frame, fmt::format("datagram of {} bytes", input.size()));
  if (be(input.first(2)) != input.size() - 2) {
    return fail(TrackerErrc::malformed_frame,
                fmt::format("datagram length field {}, {} bytes follow it", be(input.first(2)), input.size() - 2));
  }
  const std::size_t imei_length = be(input.subspan(6, 2));
  if (imei_length != kImeiDigits || input.size() < kUdpHeader + imei_length) {
    return fail(TrackerErrc::malformed_frame, fmt::format("IMEI of length {}, expected 15", imei_length));
  }
  const auto digits = input.subspan(kUdpHeader, imei_length);
  if (!all_digits(digits)) return fail(TrackerErrc::malformed_frame, "IMEI with non-digits");
  const auto data = input.subspan(kUdpHeader + imei_length);
  auto count = check_avl_data(data);
  if (!count) return std::unexpected(std::move(count.error()));
  Frame frame;
  frame.kind = Frame::Kind::records;
  frame.consumed = input.size();
  frame.imei.assign(digits.begin(), digits.end());
  frame.payload = std::string_view(reinterpret_cast<const char*>(data.data()), data.size());
  frame.sequence = be(input.subspan(2, 2)) << 8 | input[5];
  frame.record_count = *count;
  return frame;
}

// UDP has no login: every datagram names its IMEI.
std::string Teltonika::login_reply(const Frame&, bool accepted) {
  if (transport_ == Transport::datagram) return {};
  return std::string(1, accepted ? '\x01' : '\x00');
}

std::string Teltonika::records_reply(const Frame& frame, std::size_t accepted) {
  if (transport_ == Transport::stream) return be_bytes(static_cast<std::uint32_t>(accepted), 4);
  return be_bytes(5, 2) + be_bytes(frame.sequence >> 8, 2) + '\x01' + static_cast<char>(frame.sequence & 0xFF) +
         static_cast<char>(accepted & 0xFF);
}

std::string Teltonika::heartbeat_reply(const Frame&) { return {}; }  // Teltonika has no heartbeat frame

std::unique_ptr<TrackerProtocol> make_stream(std::size_t max_frame_bytes) {
  return std::make_unique<Teltonika>(Transport::stream, max_frame_bytes);
}

std::unique_ptr<TrackerProtocol> make_datagram(std::size_t max_frame_bytes) {
  return std::make_unique<Teltonika>(Transport::datagram, max_frame_bytes);
}

}  // namespace telegate::gateway::tracker::teltonika
