// The local log's record framing, shared by the writer and read_local_log().
//
//   frame = [u32 body length LE][u32 CRC-32C(body) LE][body]
//   body  = [u8 version = 1][varint topic length][topic][varint key length][key]
//           [varint header length][tg-route header][value: the rest of the body]
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

#include "telegate/envelope/envelope.hpp"

namespace telegate::sinks::local_log {

inline constexpr std::size_t kFrameHeaderBytes = 8;
inline constexpr std::uint8_t kFormatVersion = 1;
inline constexpr std::uint32_t kMaxBodyBytes = 64u << 20;
inline constexpr std::string_view kSegmentSuffix = ".tglog";

std::uint32_t crc32c(std::string_view bytes) noexcept;

// Appends one framed record to `out`.
void append_frame(const envelope::SealedRecord& record, std::string& out);

enum class FrameStatus : std::uint8_t { ok, incomplete, corrupt };

struct FrameRead {
  FrameStatus status;
  std::size_t frame_bytes = 0;  // bytes consumed when ok
  std::string problem;          // when corrupt
};

// Parses the frame at the start of `bytes` into `record`.
FrameRead read_frame(std::string_view bytes, envelope::SealedRecord& record);

std::string segment_name(std::uint64_t first_offset);

}  // namespace telegate::sinks::local_log
