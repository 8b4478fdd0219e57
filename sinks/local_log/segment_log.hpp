// The append-only segment directory behind the local log and the Kafka spool: CRC-framed
// entries (log_format.hpp) in files named by the offset of their first entry, appended with
// group commit and synced per the fsync policy, read back from any offset, and deleted a whole
// segment at a time once their entries are no longer needed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "telegate/sinks/local_log.hpp"

namespace prometheus {
class Histogram;
class Registry;
}

namespace telegate::sinks::local_log {

struct SegmentLogConfig {
  std::filesystem::path directory;
  std::string suffix;       // segment file suffix: ".tglog", ".tgspool"
  std::string config_key;   // dotted config key of the directory, for start-up errors
  FsyncPolicy fsync = FsyncPolicy::always;
  std::chrono::milliseconds fsync_interval{100};
  std::uint64_t segment_bytes = 64ull << 20;
};

// The fdatasync latency histogram a segment log observes, registered under `name`.
prometheus::Histogram& fsync_histogram(prometheus::Registry& registry, const std::string& name, const std::string& help);

// Segments of `directory` with `suffix`, oldest first: (first offset, path).
std::vector<std::pair<std::uint64_t, std::filesystem::path>> list_segments(const std::filesystem::path& directory,
                                                                           std::string_view suffix);

// One group-committed append: `frames` holds `entries` complete frames. `done` runs on the
// writer thread once they are written and synced per the policy, with the offset of the first
// entry, or with the reason they are not (nothing of them is left on disk then).
struct Append {
  std::string frames;
  std::size_t entries = 0;
  std::function<void(std::expected<std::uint64_t, std::string>)> done;
};

// Lifecycle: constructed on the main thread (recovers the directory: cuts a torn tail, finds
// the next offset; throws naming config_key); start() launches the writer thread, which owns
// the open segment and the offsets from then on; append() from any thread; stop() drains and
// joins. delete_below() may run on any one other thread: it never touches the newest segment.
class SegmentLog {
 public:
  // `first_offset_if_empty` numbers the first segment of an empty directory.
  SegmentLog(SegmentLogConfig config, std::uint64_t first_offset_if_empty, prometheus::Histogram& fsync_seconds);
  ~SegmentLog();
  SegmentLog(const SegmentLog&) = delete;
  SegmentLog& operator=(const SegmentLog&) = delete;

  void start();
  // false after stop() began (`append.done` is not called then).
  bool append(Append append);
  void stop();
  bool healthy() const noexcept { return healthy_; }

  // After construction, before start(): offsets [first_offset, end_offset) are on disk.
  std::uint64_t first_offset() const noexcept { return first_offset_; }
  std::uint64_t end_offset() const noexcept { return next_offset_; }
  std::uint64_t disk_bytes() const noexcept { return disk_bytes_; }

  // Deletes every segment whose entries all lie below `offset` (never the newest); returns the
  // bytes freed.
  std::uint64_t delete_below(std::uint64_t offset);

 private:
  void run();
  void write_group(std::vector<Append>& group);
  void open_segment(std::uint64_t first_offset);
  bool write_buffer(std::string& problem);
  bool sync();

  SegmentLogConfig config_;
  prometheus::Histogram& fsync_seconds_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Append> queue_;
  bool stopping_ = false;
  std::atomic<bool> healthy_{true};
  std::thread writer_;

  // Owned by the writer thread after start().
  int fd_ = -1;
  std::uint64_t first_offset_ = 0;
  std::uint64_t segment_bytes_ = 0;
  std::uint64_t next_offset_ = 0;
  std::uint64_t disk_bytes_ = 0;
  std::string buffer_;
  bool unsynced_ = false;
  std::chrono::steady_clock::time_point last_sync_ = std::chrono::steady_clock::now();
};

// Reads entries in offset order, from any offset; sequential reads continue where the last one
// stopped without rescanning. Lifecycle: owned and used by one thread.
class SegmentReader {
 public:
  SegmentReader(std::filesystem::path directory, std::string suffix);
  ~SegmentReader();
  SegmentReader(const SegmentReader&) = delete;
  SegmentReader& operator=(const SegmentReader&) = delete;

  // Visits the bodies of entries [from, until), stopping early once `max_bytes` of frames were
  // visited (always at least one entry) or at the end of what is on disk (a torn tail of the
  // newest segment is its end). Returns the offset after the last visited entry (below `from`
  // when the log ends before it); an error
  // names the segment and byte of a corrupt entry or a gap between segments.
  std::expected<std::uint64_t, std::string> read(std::uint64_t from, std::uint64_t until, std::size_t max_bytes,
                                                 const std::function<void(std::uint64_t, std::string_view)>& visit);

 private:
  std::expected<void, std::string> seek(std::uint64_t offset);
  bool next_segment();
  std::string_view bytes_at(std::uint64_t position, std::size_t count);

  std::filesystem::path directory_;
  std::string suffix_;
  int fd_ = -1;
  std::filesystem::path path_;
  std::uint64_t position_ = 0;  // byte position of entry `offset_` in path_
  std::uint64_t offset_ = 0;
  bool positioned_ = false;
  std::string buffer_;          // bytes of path_ from buffer_at_
  std::uint64_t buffer_at_ = 0;
};

}  // namespace telegate::sinks::local_log
