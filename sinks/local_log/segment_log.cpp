#include "local_log/segment_log.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "local_log/log_format.hpp"

namespace telegate::sinks::local_log {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

prometheus::Histogram& fsync_histogram(prometheus::Registry& registry, const std::string& name, const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add(
      {}, prometheus::Histogram::BucketBoundaries{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1});
}

std::vector<std::pair<std::uint64_t, fs::path>> list_segments(const fs::path& directory, std::string_view suffix) {
  std::vector<std::pair<std::uint64_t, fs::path>> segments;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    if (!name.ends_with(suffix) || name.size() != 20 + suffix.size()) continue;
    std::uint64_t first = 0;
    if (std::sscanf(name.c_str(), "%20lu", &first) == 1) segments.emplace_back(first, entry.path());
  }
  std::sort(segments.begin(), segments.end());
  return segments;
}

SegmentLog::SegmentLog(SegmentLogConfig config, std::uint64_t first_offset_if_empty,
                       prometheus::Histogram& fsync_seconds)
    : config_(std::move(config)), fsync_seconds_(fsync_seconds) {
  std::error_code error;
  fs::create_directories(config_.directory, error);
  if (error) {
    throw std::runtime_error(
        fmt::format("{}: cannot create '{}': {}", config_.config_key, config_.directory.string(), error.message()));
  }
  const auto segments = list_segments(config_.directory, config_.suffix);
  if (segments.empty()) {
    first_offset_ = next_offset_ = first_offset_if_empty;
    open_segment(first_offset_if_empty);
    return;
  }
  first_offset_ = segments.front().first;
  for (const auto& [first, path] : segments) disk_bytes_ += fs::file_size(path);
  // Find the next offset and cut a torn tail (a crash mid-write) off the newest segment: what
  // follows the last intact entry, whether incomplete or unreadable, was never acknowledged.
  SegmentReader reader(config_.directory, config_.suffix);
  const auto& [first, path] = segments.back();
  std::uint64_t at = 0;
  std::uint64_t end = first;
  for (;;) {
    const auto read = reader.read(end, UINT64_MAX, 16u << 20,
                                  [&](std::uint64_t, std::string_view body) { at += kFrameHeaderBytes + body.size(); });
    if (!read || *read == end) break;
    end = *read;
  }
  const std::uint64_t size = fs::file_size(path);
  if (at < size) {
    spdlog::warn("{}: cutting {} bytes of torn tail off {} after {} intact entries", config_.config_key, size - at,
                 path.string(), end - first);
    fs::resize_file(path, at);
    disk_bytes_ -= size - at;
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  segment_bytes_ = at;
  next_offset_ = end;
}

SegmentLog::~SegmentLog() {
  if (writer_.joinable()) stop();
  if (fd_ >= 0) ::close(fd_);
}

void SegmentLog::start() { writer_ = std::thread([this] { run(); }); }

bool SegmentLog::append(Append append) {
  std::lock_guard lock(mutex_);
  if (stopping_) return false;
  queue_.push_back(std::move(append));
  wake_.notify_one();
  return true;
}

void SegmentLog::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (writer_.joinable()) writer_.join();
  if (fd_ >= 0) ::fdatasync(fd_);
}

std::uint64_t SegmentLog::delete_below(std::uint64_t offset) {
  const auto segments = list_segments(config_.directory, config_.suffix);
  std::uint64_t freed = 0;
  for (std::size_t i = 0; i + 1 < segments.size() && segments[i + 1].first <= offset; ++i) {
    std::error_code error;
    const std::uint64_t size = fs::file_size(segments[i].second, error);
    if (!error && fs::remove(segments[i].second, error)) freed += size;
    if (error) spdlog::warn("{}: cannot delete {}: {}", config_.config_key, segments[i].second.string(), error.message());
  }
  return freed;
}

void SegmentLog::open_segment(std::uint64_t first_offset) {
  const fs::path path = config_.directory / segment_name(first_offset, config_.suffix);
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot create {}: {}", path.string(), std::strerror(errno)));
  if (fd_ >= 0) {
    ::fdatasync(fd_);  // a closed segment is always durable, whatever the policy
    ::close(fd_);
  }
  fd_ = fd;
  segment_bytes_ = 0;
}

void SegmentLog::run() {
  std::vector<Append> taken;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, config_.fsync_interval, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty() && stopping_) break;
      taken.swap(queue_);
    }
    if (taken.empty()) {
      if (unsynced_) sync();  // the interval policy's timer: idle data gets synced too
      continue;
    }
    write_group(taken);
    taken.clear();
  }
  if (unsynced_) sync();
}

// Group commit: every append queued since the last pass goes out in one write (per segment)
// and one sync.
void SegmentLog::write_group(std::vector<Append>& group) {
  buffer_.clear();
  std::uint64_t entries = 0;
  bool ok = true;
  std::string problem;
  for (Append& append : group) {
    if (segment_bytes_ + buffer_.size() + append.frames.size() > config_.segment_bytes &&
        segment_bytes_ + buffer_.size() > 0) {
      // Roll before this append: what is buffered goes to the current segment first.
      if (ok && !write_buffer(problem)) ok = false;
      if (ok) {
        try {
          open_segment(next_offset_ + entries);
        } catch (const std::exception& error) {
          ok = false;
          problem = error.what();
        }
      }
      buffer_.clear();
    }
    buffer_ += append.frames;
    entries += append.entries;
  }
  if (ok && !write_buffer(problem)) ok = false;
  if (ok && config_.fsync == FsyncPolicy::always) ok = sync();
  if (ok && config_.fsync == FsyncPolicy::interval && Clock::now() - last_sync_ >= config_.fsync_interval) ok = sync();
  if (!ok) {
    healthy_ = false;
    if (problem.empty()) problem = "fdatasync failed";
    spdlog::error("{}: {}; failing {} appends", config_.config_key, problem, group.size());
    // Appends already written before a failed roll stay on disk, uncounted: the offsets below
    // restart from next_offset_, which a restart's recovery recomputes from the files.
    for (Append& append : group) append.done(std::unexpected(problem));
    return;
  }
  healthy_ = true;  // the disk took writes again (e.g. space was freed)
  for (Append& append : group) {
    const std::uint64_t first = next_offset_;
    next_offset_ += append.entries;
    append.done(first);
  }
}

// Writes buffer_ to the current segment; on failure the segment is cut back so no partial
// entry is left behind for a later reader to trip over.
bool SegmentLog::write_buffer(std::string& problem) {
  std::size_t written = 0;
  while (written < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      problem = fmt::format("write to {} failed: {}", config_.directory.string(), std::strerror(errno));
      if (::ftruncate(fd_, static_cast<off_t>(segment_bytes_)) != 0) problem += "; could not cut the partial write back";
      return false;
    }
    written += static_cast<std::size_t>(n);
  }
  segment_bytes_ += buffer_.size();
  disk_bytes_ += buffer_.size();
  unsynced_ = unsynced_ || !buffer_.empty();
  return true;
}

bool SegmentLog::sync() {
  const auto started = Clock::now();
  const bool ok = ::fdatasync(fd_) == 0;
  last_sync_ = Clock::now();
  fsync_seconds_.Observe(std::chrono::duration<double>(last_sync_ - started).count());
  unsynced_ = !ok;
  return ok;
}

SegmentReader::SegmentReader(fs::path directory, std::string suffix)
    : directory_(std::move(directory)), suffix_(std::move(suffix)) {}

SegmentReader::~SegmentReader() {
  if (fd_ >= 0) ::close(fd_);
}

std::string_view SegmentReader::bytes_at(std::uint64_t position, std::size_t count) {
  if (position < buffer_at_ || position + count > buffer_at_ + buffer_.size()) {
    buffer_.resize(std::max<std::size_t>(count, 1u << 20));
    std::size_t got = 0;
    while (got < buffer_.size()) {
      const ssize_t n = ::pread(fd_, buffer_.data() + got, buffer_.size() - got, static_cast<off_t>(position + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    buffer_.resize(got);
    buffer_at_ = position;
  }
  const std::string_view all(buffer_);
  return all.substr(position - buffer_at_, std::min<std::size_t>(count, buffer_.size() - (position - buffer_at_)));
}

std::expected<void, std::string> SegmentReader::seek(std::uint64_t offset) {
  const auto segments = list_segments(directory_, suffix_);
  auto it = std::upper_bound(segments.begin(), segments.end(), offset,
                             [](std::uint64_t value, const auto& segment) { return value < segment.first; });
  if (it == segments.begin()) {
    return std::unexpected(fmt::format("{}: no segment holds offset {}", directory_.string(), offset));
  }
  --it;
  if (fd_ >= 0) ::close(fd_);
  path_ = it->second;
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return std::unexpected(fmt::format("cannot open {}: {}", path_.string(), std::strerror(errno)));
  buffer_.clear();
  buffer_at_ = 0;
  position_ = 0;
  offset_ = it->first;
  positioned_ = true;
  return {};
}

// At the end of the current segment: moves to the next one, which must start where this ended.
bool SegmentReader::next_segment() {
  const auto segments = list_segments(directory_, suffix_);
  for (const auto& [first, path] : segments) {
    if (path == path_ || first != offset_) continue;
    return seek(offset_).has_value();
  }
  return false;
}

std::expected<std::uint64_t, std::string> SegmentReader::read(
    std::uint64_t from, std::uint64_t until, std::size_t max_bytes,
    const std::function<void(std::uint64_t, std::string_view)>& visit) {
  if (!positioned_ || from < offset_) {
    if (auto sought = seek(from); !sought) return std::unexpected(sought.error());
  }
  std::size_t visited_bytes = 0;
  while (offset_ < until && visited_bytes < max_bytes) {
    std::string_view header = bytes_at(position_, kFrameHeaderBytes);
    FrameRead frame = read_frame_body(header);
    if (frame.status == FrameStatus::incomplete && header.size() == kFrameHeaderBytes) {
      const auto length = static_cast<std::size_t>(static_cast<unsigned char>(header[0])) |
                          static_cast<std::size_t>(static_cast<unsigned char>(header[1])) << 8 |
                          static_cast<std::size_t>(static_cast<unsigned char>(header[2])) << 16 |
                          static_cast<std::size_t>(static_cast<unsigned char>(header[3])) << 24;
      frame = read_frame_body(bytes_at(position_, kFrameHeaderBytes + length));
    }
    if (frame.status == FrameStatus::incomplete) {
      if (next_segment()) continue;
      break;  // the end of what is on disk (or a torn tail of the newest segment)
    }
    if (frame.status == FrameStatus::corrupt) {
      return std::unexpected(fmt::format("{} at byte {}: {}", path_.string(), position_, frame.problem));
    }
    if (offset_ >= from) {
      visit(offset_, frame.body);
      visited_bytes += frame.frame_bytes;
    }
    position_ += frame.frame_bytes;
    ++offset_;
  }
  return offset_;
}

}  // namespace telegate::sinks::local_log
