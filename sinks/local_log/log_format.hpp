// CRC-framed entries on disk, shared by the local log (one record per frame) and the Kafka
// spool (one batch per frame, sinks/spool/spool_format.hpp).
//
//   frame = [u32 body length LE][u32 CRC-32C(body) LE][body]
//   local log body = [u8 version = 1][varint topic length][topic][varint key length][key]
//                    [varint header length][tg-route header][value: the rest of the body]
// Every body starts with a version byte, so a reader handed the other kind's segment fails
// with "unknown format version" instead of misreading it.
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

// Field encodings shared by the body formats.
void put_varint(std::string& out, std::uint64_t value);
bool get_varint(std::string_view& bytes, std::uint64_t& value);
void put_field(std::string& out, std::string_view field);  // varint length + bytes
bool get_field(std::string_view& bytes, std::string& out);

// A frame is written as begin_frame(), the body appended to `out`, end_frame().
std::size_t begin_frame(std::string& out);
void end_frame(std::string& out, std::size_t start);

enum class FrameStatus : std::uint8_t { ok, incomplete, corrupt };

struct FrameRead {
  FrameStatus status;
  std::size_t frame_bytes = 0;  // bytes consumed when ok
  std::string problem;          // when corrupt
  std::string_view body;        // when ok: a view into the bytes passed in
};

// Checks length and CRC of the frame at the start of `bytes`.
FrameRead read_frame_body(std::string_view bytes);

// Appends one framed local-log record to `out`.
void append_frame(const envelope::SealedRecord& record, std::string& out);

// Parses a local-log record body (what read_frame_body() found) into `record`; the error says
// what is wrong with it.
std::expected<void, std::string> parse_record_body(std::string_view body, envelope::SealedRecord& record);

// Parses the local-log record frame at the start of `bytes` into `record`.
FrameRead read_frame(std::string_view bytes, envelope::SealedRecord& record);

// "<first offset, 20 digits><suffix>"
std::string segment_name(std::uint64_t first_offset, std::string_view suffix = kSegmentSuffix);

}  // namespace telegate::sinks::local_log
