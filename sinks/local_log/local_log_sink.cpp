#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>

#include "local_log/log_format.hpp"
#include "local_log/segment_log.hpp"
#include "telegate/sinks/local_log.hpp"

namespace telegate::sinks {

namespace {


// Lifecycle: constructed and start()ed on the main thread; the segment log's writer thread
// writes and runs the completions; submit() may be called from any thread; stop() drains.
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
        fsync_seconds_(local_log::fsync_histogram(registry, "telegate_local_log_fsync_seconds", "Latency of fdatasync on the local log")) {}

  std::string_view name() const noexcept override { return "local_log"; }

  void start() override {
    log_ = std::make_unique<local_log::SegmentLog>(
        local_log::SegmentLogConfig{config_.directory, std::string(local_log::kSegmentSuffix), "sink.local_log.directory",
                                    config_.fsync, config_.fsync_interval, config_.segment_bytes},
        0, fsync_seconds_);
    log_->start();
  }

  void submit(SinkBatch batch) override {
    local_log::Append append;
    for (const auto& record : batch.records) local_log::append_frame(record, append.frames);
    append.entries = batch.records.size();
    const std::size_t bytes = append.frames.size();
    auto shared = std::make_shared<SinkBatch>(std::move(batch));
    append.done = [this, shared, bytes](std::expected<std::uint64_t, std::string> written) {
      counters_.batches.Increment();
      const auto records = static_cast<double>(shared->records.size());
      if (written) {
        counters_.durable.Increment(records);
        bytes_.Increment(static_cast<double>(bytes));
        shared->on_complete({});
      } else {
        counters_.failed.Increment(records);
        shared->on_complete(std::unexpected(SinkError{SinkErrc::io_error, written.error()}));
      }
    };
    if (!stopping_ && log_->append(std::move(append))) return;
    shared->on_complete(std::unexpected(SinkError{SinkErrc::stopping, "the local log is shutting down"}));
  }

  bool ready() const noexcept override { return log_ && log_->healthy() && !stopping_; }

  void stop() override {
    stopping_ = true;
    if (log_) log_->stop();
  }

 private:
  LocalLogConfig config_;
  SinkCounters counters_;
  prometheus::Counter& bytes_;
  prometheus::Histogram& fsync_seconds_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<local_log::SegmentLog> log_;
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
  if (!std::filesystem::is_directory(directory, error)) {
    return std::unexpected(LogReadError{fmt::format("'{}' is not a local log directory", directory.string())});
  }
  if (local_log::list_segments(directory, local_log::kSegmentSuffix).empty()) return 0;
  local_log::SegmentReader reader(directory, std::string(local_log::kSegmentSuffix));
  std::uint64_t from = local_log::list_segments(directory, local_log::kSegmentSuffix).front().first;
  std::uint64_t count = 0;
  LogEntry entry;
  std::string problem;
  for (;;) {
    const auto read = reader.read(from, UINT64_MAX, 16u << 20, [&](std::uint64_t offset, std::string_view body) {
      if (!problem.empty()) return;
      if (auto parsed = local_log::parse_record_body(body, entry.record); !parsed) {
        problem = fmt::format("record at offset {}: {}", offset, parsed.error());
        return;
      }
      entry.offset = offset;
      visit(entry);
      ++count;
    });
    if (!read) return std::unexpected(LogReadError{read.error()});
    if (!problem.empty()) return std::unexpected(LogReadError{problem});
    if (*read == from) return count;
    from = *read;
  }
}

}  // namespace telegate::sinks
