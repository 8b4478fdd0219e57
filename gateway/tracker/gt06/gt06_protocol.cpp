#include "tracker/gt06/gt06_protocol.hpp"

#include <fmt/format.h>

#include <array>

namespace telegate::gateway::tracker::gt06 {

namespace {

constexpr std::uint8_t kShortStart = 0x78;
constexpr std::uint8_t kLongStart = 0x79;
// Protocol number + serial + CRC: the smallest length a packet can declare.
constexpr std::size_t kMinLength = 5;
constexpr std::size_t kImeiBytes = 8;

std::uint16_t read16(std::span<const std::uint8_t> bytes, std::size_t at) noexcept {
  return static_cast<std::uint16_t>(bytes[at] << 8 | bytes[at + 1]);
}

std::unexpected<TrackerError> fail(TrackerErrc code, std::string message, std::size_t skip = 0) {
  return std::unexpected(TrackerError{code, std::move(message), skip});
}

// The 15-digit IMEI from its 8 BCD bytes (a leading 0 nibble pads it to 16 digits).
std::expected<std::string, std::string> imei_of(std::span<const std::uint8_t> bcd) {
  std::string digits;
  digits.reserve(2 * kImeiBytes);
  for (const std::uint8_t byte : bcd) {
    for (const int nibble : {byte >> 4, byte & 0x0F}) {
      if (nibble > 9) return std::unexpected(fmt::format("login IMEI is not BCD: nibble {:X}", nibble));
      digits += static_cast<char>('0' + nibble);
    }
  }
  if (digits.front() != '0') return std::unexpected(fmt::format("login IMEI has 16 digits ({})", digits));
  return digits.substr(1);
}

}  // namespace

std::uint16_t crc_itu(std::span<const std::uint8_t> bytes) noexcept {
  static constexpr std::array<std::uint16_t, 256> table = [] {
    std::array<std::uint16_t, 256> built{};
    for (unsigned i = 0; i < 256; ++i) {
      unsigned crc = i;
      for (int bit = 0; bit < 8; ++bit) crc = crc & 1 ? (crc >> 1) ^ 0x8408 : crc >> 1;
      built[i] = static_cast<std::uint16_t>(crc);
    }
    return built;
  }();
  unsigned crc = 0xFFFF;
  for (const std::uint8_t byte : bytes) crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF];
  return static_cast<std::uint16_t>(crc ^ 0xFFFF);
}

std::string packet(std::uint8_t protocol, std::span<const std::uint8_t> content, std::uint16_t serial) {
  const std::size_t length = kMinLength + content.size();
  const bool long_form = length > 0xFF;
  std::string out;
  out.reserve(length + 7);
  const auto put = [&out](unsigned byte) { out += static_cast<char>(byte & 0xFF); };
  put(long_form ? kLongStart : kShortStart);
  put(long_form ? kLongStart : kShortStart);
  if (long_form) put(static_cast<unsigned>(length >> 8));
  put(static_cast<unsigned>(length));
  put(protocol);
  out.append(reinterpret_cast<const char*>(content.data()), content.size());
  put(serial >> 8u);
  put(serial);
  const auto* checked = reinterpret_cast<const std::uint8_t*>(out.data()) + 2;
  const std::uint16_t crc = crc_itu({checked, out.size() - 2});
  put(crc >> 8u);
  put(crc);
  put(0x0D);
  put(0x0A);
  return out;
}

std::expected<Frame, TrackerError> Gt06Protocol::next_frame(std::span<const std::uint8_t> input) {
  // Each check runs as soon as its bytes are in, so garbage and oversized lengths are refused
  // without waiting for bytes that may never come.
  if (input.empty()) return Frame{};
  const std::uint8_t start = input[0];
  if ((start != kShortStart && start != kLongStart) || (input.size() > 1 && input[1] != start)) {
    return fail(TrackerErrc::malformed_frame,
                fmt::format("start bits {:02x}{:02x}, expected 7878 or 7979", input[0], input.size() > 1 ? input[1] : 0));
  }
  const std::size_t length_bytes = start == kShortStart ? 1 : 2;
  if (input.size() < 2 + length_bytes) return Frame{};
  const std::size_t length = length_bytes == 1 ? input[2] : read16(input, 2);
  const std::size_t total = 2 + length_bytes + length + 2;
  if (total > max_frame_bytes_) {
    return fail(TrackerErrc::frame_too_large,
                fmt::format("packet length {} makes a {}-byte frame, limit {}", length, total, max_frame_bytes_));
  }
  if (length < kMinLength) {
    return fail(TrackerErrc::malformed_frame, fmt::format("packet length {}, at least {}", length, kMinLength));
  }
  if (input.size() < total) return Frame{};

  const std::span<const std::uint8_t> frame = input.first(total);
  if (frame[total - 2] != 0x0D || frame[total - 1] != 0x0A) {
    return fail(TrackerErrc::malformed_frame,
                fmt::format("stop bits {:02x}{:02x}, expected 0d0a", frame[total - 2], frame[total - 1]));
  }
  const std::size_t crc_at = total - 4;
  const std::uint16_t declared = read16(frame, crc_at);
  const std::uint16_t computed = crc_itu(frame.subspan(2, crc_at - 2));
  if (declared != computed) {
    return fail(TrackerErrc::bad_checksum, fmt::format("CRC-ITU 0x{:04x}, computed 0x{:04x}", declared, computed));
  }

  const std::size_t protocol_at = 2 + length_bytes;
  const std::uint8_t protocol = frame[protocol_at];
  const std::uint16_t serial = read16(frame, crc_at - 2);
  const std::span<const std::uint8_t> content = frame.subspan(protocol_at + 1, crc_at - 2 - protocol_at - 1);
  Frame out;
  out.consumed = total;
  switch (protocol) {
    case kLogin: {
      if (content.size() < kImeiBytes) {
        return fail(TrackerErrc::malformed_frame, fmt::format("login content of {} bytes, the IMEI needs 8", content.size()));
      }
      auto imei = imei_of(content.first(kImeiBytes));
      if (!imei) return fail(TrackerErrc::malformed_frame, std::move(imei.error()));
      out.kind = Frame::Kind::login;
      out.imei = std::move(*imei);
      out.sequence = serial;
      return out;
    }
    case kStatus:
      out.kind = Frame::Kind::heartbeat;
      out.sequence = serial;
      return out;
    case kLocation:
    case kLocationN:
    case kAlarm:
    case kAlarmN:
      // The codec checks the content's layout: a short location is a rejected record, which the
      // tracker must still see acknowledged, not a reason to drop the connection.
      out.kind = Frame::Kind::records;
      out.payload = {reinterpret_cast<const char*>(frame.data() + protocol_at), crc_at - protocol_at};
      out.sequence = sequence_of(protocol, serial);
      out.record_count = 1;
      return out;
    default:
      return fail(TrackerErrc::unsupported, fmt::format("protocol number 0x{:02x} (serial {}) is not read", protocol, serial),
                  total);
  }
}

std::string Gt06Protocol::login_reply(const Frame& login, bool accepted) {
  // A refused tracker gets no answer: it retries its login on a new connection, which the
  // listener's refusal counter shows, instead of believing it is online.
  if (!accepted) return {};
  return packet(kLogin, {}, static_cast<std::uint16_t>(login.sequence));
}

std::string Gt06Protocol::records_reply(const Frame& frame, std::size_t /*accepted*/) {
  // Answered whatever was accepted: a packet whose record was refused (e.g. no GPS fix) is
  // final, and an unanswered GT06 packet is resent forever.
  return packet(static_cast<std::uint8_t>(frame.sequence >> 16), {}, static_cast<std::uint16_t>(frame.sequence));
}

std::string Gt06Protocol::heartbeat_reply(const Frame& heartbeat) {
  return packet(kStatus, {}, static_cast<std::uint16_t>(heartbeat.sequence));
}

std::unique_ptr<TrackerProtocol> make_protocol(std::size_t max_frame_bytes) {
  return std::make_unique<Gt06Protocol>(max_frame_bytes);
}

}  // namespace telegate::gateway::tracker::gt06
