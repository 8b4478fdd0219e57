// Local durable log: the embedded default sink, and the format `telegate log dump` reads.
//
// An append-only directory of segment files (`<first offset, 20 digits>.tglog`). Each record is
// framed as [u32 length][u32 CRC-32C of the body][body], little-endian, where the body holds
// topic, key, route header and value (format: sinks/README.md). Writes happen on the sink's own
// thread; a batch completes after its records are written and, per the fsync policy, synced.
// A torn tail (crash mid-write) is detected by length/CRC on open and truncated away.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "telegate/sinks/sink.hpp"

namespace telegate::sinks {

enum class FsyncPolicy : std::uint8_t {
  always = 1,  // fsync before completing each batch: nothing acknowledged is lost on power loss
  interval,    // fsync at most every fsync_interval; a crash of the machine may lose that window
  never,       // leave it to the OS page cache; a process crash loses nothing, power loss may
};
std::string_view to_string(FsyncPolicy policy) noexcept;

struct LocalLogConfig {
  std::filesystem::path directory = "data/log";
  FsyncPolicy fsync = FsyncPolicy::always;
  std::chrono::milliseconds fsync_interval{100};
  std::uint64_t segment_bytes = 64ull << 20;
};

std::unique_ptr<Sink> make_local_log_sink(LocalLogConfig config, prometheus::Registry& metrics);

struct LogEntry {
  std::uint64_t offset;
  envelope::SealedRecord record;
};

struct LogReadError {
  std::string message;  // names the segment file and byte position
};

// Visits every intact record in offset order. A corrupt record in the middle of a segment is an
// error (named); a torn record at the very end of the newest segment is reported as the end.
std::expected<std::uint64_t, LogReadError> read_local_log(
    const std::filesystem::path& directory, const std::function<void(const LogEntry&)>& visit);

}  // namespace telegate::sinks
