// The spool's entry: one spooled batch per frame (the local log's CRC framing,
// local_log/log_format.hpp), so that a batch's records and its control records (the
// de-duplication journal) are replayed together or not at all.
//
//   body    = [u8 version = 2][varint spooled-at, Unix ms]
//             [varint record count] record*  [varint control count] control*
//   record  = field(topic) field(key) field(tg-route header) [varint header count]
//             (field(name) field(value))* field(value)
//   control = field(topic) [varint partition] field(key) field(value)
//   field   = [varint length][bytes]
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "telegate/envelope/envelope.hpp"
#include "telegate/sinks/sink.hpp"

namespace telegate::sinks::spool {

inline constexpr std::uint8_t kSpoolFormatVersion = 2;
inline constexpr std::string_view kSpoolSuffix = ".tgspool";

// Appends one framed batch to `out`.
void append_batch_frame(const std::vector<envelope::SealedRecord>& records, const std::vector<ControlRecord>& control,
                        std::int64_t spooled_at_ms, std::string& out);

struct SpooledBatch {
  std::int64_t spooled_at_ms = 0;
  std::vector<envelope::SealedRecord> records;
  std::vector<ControlRecord> control;
};

// Parses an entry body (what read_frame_body() found), appending its records and control
// records to `batch`; the error says what is wrong with it.
std::expected<void, std::string> parse_batch_body(std::string_view body, SpooledBatch& batch);

}  // namespace telegate::sinks::spool
