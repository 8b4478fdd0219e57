#include "local_log/log_format.hpp"

#include <boost/crc.hpp>

#include <cstring>

#include <fmt/format.h>

namespace telegate::sinks::local_log {

namespace {

void put_u32(std::string& out, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

std::uint32_t get_u32(std::string_view bytes) {
  std::uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = value << 8 | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  return value;
}

}  // namespace

void put_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

bool get_varint(std::string_view& bytes, std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && !bytes.empty(); shift += 7) {
    const auto byte = static_cast<unsigned char>(bytes.front());
    bytes.remove_prefix(1);
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

void put_field(std::string& out, std::string_view field) {
  put_varint(out, field.size());
  out += field;
}

bool get_field(std::string_view& bytes, std::string& out) {
  std::uint64_t length = 0;
  if (!get_varint(bytes, length) || length > bytes.size()) return false;
  out.assign(bytes.substr(0, length));
  bytes.remove_prefix(length);
  return true;
}

std::uint32_t crc32c(std::string_view bytes) noexcept {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

std::size_t begin_frame(std::string& out) {
  const std::size_t start = out.size();
  out.append(kFrameHeaderBytes, '\0');
  return start;
}

void end_frame(std::string& out, std::size_t start) {
  const std::string_view body(out.data() + start + kFrameHeaderBytes, out.size() - start - kFrameHeaderBytes);
  std::string header;
  put_u32(header, static_cast<std::uint32_t>(body.size()));
  put_u32(header, crc32c(body));
  std::memcpy(out.data() + start, header.data(), kFrameHeaderBytes);
}

FrameRead read_frame_body(std::string_view bytes) {
  if (bytes.size() < kFrameHeaderBytes) return {FrameStatus::incomplete, 0, {}, {}};
  const std::uint32_t length = get_u32(bytes);
  if (length > kMaxBodyBytes || length == 0) {
    return {FrameStatus::corrupt, 0, fmt::format("implausible record length {}", length), {}};
  }
  if (bytes.size() < kFrameHeaderBytes + length) return {FrameStatus::incomplete, 0, {}, {}};
  const std::string_view body = bytes.substr(kFrameHeaderBytes, length);
  if (crc32c(body) != get_u32(bytes.substr(4))) return {FrameStatus::corrupt, 0, "CRC-32C mismatch", {}};
  return {FrameStatus::ok, kFrameHeaderBytes + length, {}, body};
}

void append_frame(const envelope::SealedRecord& record, std::string& out) {
  const std::size_t start = begin_frame(out);
  out += static_cast<char>(kFormatVersion);
  put_field(out, record.topic);
  put_field(out, record.key);
  put_field(out, record.route_header);
  out += record.value;
  end_frame(out, start);
}

std::expected<void, std::string> parse_record_body(std::string_view body, envelope::SealedRecord& record) {
  if (body.empty() || static_cast<std::uint8_t>(body.front()) != kFormatVersion) {
    return std::unexpected(
        fmt::format("unknown record format version {}", body.empty() ? -1 : static_cast<int>(body.front())));
  }
  body.remove_prefix(1);
  if (!get_field(body, record.topic) || !get_field(body, record.key) || !get_field(body, record.route_header)) {
    return std::unexpected("record fields overrun the frame");
  }
  record.value.assign(body);
  return {};
}

FrameRead read_frame(std::string_view bytes, envelope::SealedRecord& record) {
  FrameRead frame = read_frame_body(bytes);
  if (frame.status != FrameStatus::ok) return frame;
  if (auto parsed = parse_record_body(frame.body, record); !parsed) {
    return {FrameStatus::corrupt, 0, std::move(parsed.error()), {}};
  }
  return frame;
}

std::string segment_name(std::uint64_t first_offset, std::string_view suffix) {
  return fmt::format("{:020}{}", first_offset, suffix);
}

}  // namespace telegate::sinks::local_log
