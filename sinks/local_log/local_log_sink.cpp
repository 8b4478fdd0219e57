#include <fcntl.h>
#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "local_log/log_format.hpp"
#include "telegate/sinks/local_log.hpp"

namespace telegate::sinks {

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::vector<std::pair<std::uint64_t, fs::path>> list_segments(const fs::path& directory) {
  std::vector<std::pair<std::uint64_t, fs::path>> segments;
  for (const auto& entry : fs::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    if (!name.ends_with(local_log::kSegmentSuffix) || name.size() != 20 + local_log::kSegmentSuffix.size()) continue;
    std::uint64_t first = 0;
    if (std::sscanf(name.c_str(), "%20lu", &first) == 1) segments.emplace_back(first, entry.path());
  }
  std::sort(segments.begin(), segments.end());
  return segments;
}

std::string read_whole(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// Lifecycle: constructed and start()ed on the main thread; the writer thread owns the segment
// file descriptor and the offsets; submit() may be called from any thread; stop() joins.
class LocalLogSink final : public Sink {
 public:
  LocalLogSink(LocalLogConfig config, prometheus::Registry& registry)
      : config_(std::move(config)),
        counters_(registry, "local_log", "written"),
        bytes_(prometheus::BuildCounter()
                   .Name("telegate_local_log_bytes_total")
                   .Help("Bytes appended to the local log")
                   .Register(registry)
                   .Add({})),
        fsync_seconds_(prometheus::BuildHistogram()
                           .Name("telegate_local_log_fsync_seconds")
                           .Help("Latency of fdatasync on the local log")
                           .Register(registry)
                           .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
                                                                            0.1, 0.5, 1})) {}

  ~LocalLogSink() override {
    if (writer_.joinable()) stop();
  }

  std::string_view name() const noexcept override { return "local_log"; }

  void start() override {
    std::error_code error;
    fs::create_directories(config_.directory, error);
    if (error) {
      throw std::runtime_error(fmt::format("sink.local_log.directory: cannot create '{}': {}",
                                           config_.directory.string(), error.message()));
    }
    recover();
    healthy_ = true;
    writer_ = std::thread([this] { run(); });
  }

  void submit(SinkBatch batch) override {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        queue_.push_back(std::move(batch));
        wake_.notify_one();
        return;
      }
    }
    batch.on_complete(std::unexpected(SinkError{SinkErrc::stopping, "the local log is shutting down"}));
  }

  bool ready() const noexcept override { return healthy_ && !stopping_flag_; }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      stopping_flag_ = true;
    }
    wake_.notify_one();
    if (writer_.joinable()) writer_.join();
    if (fd_ >= 0) {
      ::fdatasync(fd_);
      ::close(fd_);
      fd_ = -1;
    }
  }

 private:
  // Finds the next offset and cuts a torn tail (a crash mid-write) off the newest segment.
  void recover() {
    const auto segments = list_segments(config_.directory);
    if (segments.empty()) {
      open_segment(0);
      return;
    }
    const auto& [first, path] = segments.back();
    const std::string bytes = read_whole(path);
    std::size_t at = 0;
    std::uint64_t count = 0;
    envelope::SealedRecord scratch;
    while (at < bytes.size()) {
      const local_log::FrameRead frame = local_log::read_frame(std::string_view(bytes).substr(at), scratch);
      if (frame.status != local_log::FrameStatus::ok) break;
      at += frame.frame_bytes;
      ++count;
    }
    if (at < bytes.size()) {
      spdlog::warn("local log: cutting {} bytes of torn tail off {} after {} intact records", bytes.size() - at,
                   path.string(), count);
      fs::resize_file(path, at);
    }
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
    segment_bytes_ = at;
    next_offset_ = first + count;
  }

  void open_segment(std::uint64_t first_offset) {
    const fs::path path = config_.directory / local_log::segment_name(first_offset);
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(fmt::format("cannot create {}: {}", path.string(), std::strerror(errno)));
    if (fd_ >= 0) {
      ::fdatasync(fd_);  // a closed segment is always durable, whatever the policy
      ::close(fd_);
    }
    fd_ = fd;
    segment_bytes_ = 0;
  }

  void run() {
    std::vector<SinkBatch> taken;
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

  // Group commit: every batch queued since the last pass goes out in one write and one sync.
  void write_group(std::vector<SinkBatch>& batches) {
    buffer_.clear();
    std::size_t records = 0;
    bool ok = true;
    std::string problem;
    for (SinkBatch& batch : batches) {
      const std::size_t before = buffer_.size();
      for (const auto& record : batch.records) local_log::append_frame(record, buffer_);
      if (segment_bytes_ + buffer_.size() > config_.segment_bytes && segment_bytes_ + before > 0) {
        // Roll before this batch: what is buffered goes to the current segment first.
        std::string rest = buffer_.substr(before);
        buffer_.resize(before);
        if (ok && !append_buffer(problem)) ok = false;
        if (ok) {
          try {
            open_segment(next_offset_ + records);
          } catch (const std::exception& error) {
            ok = false;
            problem = error.what();
          }
        }
        buffer_ = std::move(rest);
      }
      records += batch.records.size();
    }
    if (ok && !append_buffer(problem)) ok = false;
    if (ok && config_.fsync == FsyncPolicy::always) ok = sync();
    if (ok && config_.fsync == FsyncPolicy::interval && Clock::now() - last_sync_ >= config_.fsync_interval) ok = sync();
    if (!ok) {
      healthy_ = false;
      if (problem.empty()) problem = "fdatasync failed";
      spdlog::error("local log: {}; failing {} batches", problem, batches.size());
    } else {
      next_offset_ += records;
      healthy_ = true;  // the disk took writes again (e.g. space was freed)
    }
    for (SinkBatch& batch : batches) {
      counters_.batches.Increment();
      (ok ? counters_.durable : counters_.failed).Increment(static_cast<double>(batch.records.size()));
      if (ok) {
        batch.on_complete({});
      } else {
        batch.on_complete(std::unexpected(SinkError{SinkErrc::io_error, problem}));
      }
    }
  }

  // Writes buffer_ to the current segment; on failure the segment is cut back so no partial
  // record is left behind for a later reader to trip over.
  bool append_buffer(std::string& problem) {
    std::size_t written = 0;
    while (written < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        problem = fmt::format("write to the local log failed: {}", std::strerror(errno));
        if (::ftruncate(fd_, static_cast<off_t>(segment_bytes_)) != 0) {
          problem += "; could not cut the partial write back";
        }
        return false;
      }
      written += static_cast<std::size_t>(n);
    }
    segment_bytes_ += buffer_.size();
    bytes_.Increment(static_cast<double>(buffer_.size()));
    unsynced_ = unsynced_ || !buffer_.empty();
    return true;
  }

  bool sync() {
    const auto started = Clock::now();
    const bool ok = ::fdatasync(fd_) == 0;
    last_sync_ = Clock::now();
    fsync_seconds_.Observe(std::chrono::duration<double>(last_sync_ - started).count());
    unsynced_ = !ok;
    return ok;
  }

  LocalLogConfig config_;
  SinkCounters counters_;
  prometheus::Counter& bytes_;
  prometheus::Histogram& fsync_seconds_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<SinkBatch> queue_;
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};
  std::atomic<bool> healthy_{false};
  std::thread writer_;

  // Owned by the writer thread after start().
  int fd_ = -1;
  std::uint64_t segment_bytes_ = 0;
  std::uint64_t next_offset_ = 0;
  std::string buffer_;
  bool unsynced_ = false;
  Clock::time_point last_sync_ = Clock::now();
};

}  // namespace

std::string_view to_string(FsyncPolicy policy) noexcept {
  switch (policy) {
    case FsyncPolicy::always: return "always";
    case FsyncPolicy::interval: return "interval";
    case FsyncPolicy::never: return "never";
  }
  return "unknown";
}

std::unique_ptr<Sink> make_local_log_sink(LocalLogConfig config, prometheus::Registry& metrics) {
  return std::make_unique<LocalLogSink>(std::move(config), metrics);
}

std::expected<std::uint64_t, LogReadError> read_local_log(const std::filesystem::path& directory,
                                                          const std::function<void(const LogEntry&)>& visit) {
  std::error_code error;
  if (!fs::is_directory(directory, error)) {
    return std::unexpected(LogReadError{fmt::format("'{}' is not a local log directory", directory.string())});
  }
  const auto segments = list_segments(directory);
  std::uint64_t count = 0;
  LogEntry entry;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& [first, path] = segments[i];
    const bool newest = i + 1 == segments.size();
    const std::string bytes = read_whole(path);
    std::size_t at = 0;
    entry.offset = first;
    while (at < bytes.size()) {
      const auto frame = local_log::read_frame(std::string_view(bytes).substr(at), entry.record);
      if (frame.status == local_log::FrameStatus::incomplete && newest) return count;  // torn tail: the end
      if (frame.status != local_log::FrameStatus::ok) {
        return std::unexpected(LogReadError{
            fmt::format("{} at byte {}: {}", path.string(), at,
                        frame.status == local_log::FrameStatus::incomplete ? "truncated record" : frame.problem)});
      }
      visit(entry);
      ++entry.offset;
      ++count;
      at += frame.frame_bytes;
    }
  }
  return count;
}

}  // namespace telegate::sinks
