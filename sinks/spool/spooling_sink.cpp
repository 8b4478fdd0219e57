#include <fcntl.h>
#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <charconv>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "local_log/log_format.hpp"
#include "local_log/segment_log.hpp"
#include "spool/spool_format.hpp"
#include "telegate/codecs/clock.hpp"
#include "telegate/sinks/kafka_admin.hpp"
#include "telegate/sinks/spool.hpp"

namespace telegate::sinks {

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr std::string_view kDirectoryKey = "sink.kafka.spool.directory";
// Spool entries Kafka refused for good at replay, one file each (spool::kSpoolSuffix, named by
// the entry's offset), so the spool's own reader and format read them back.
constexpr std::string_view kDeadLetterDirectory = "dead-letter";
constexpr std::string_view kFencedMessage = "another instance took over this gateway's Kafka transactional id";

// Kafka could not take the batch now, and the Kafka sink guarantees none of it is visible: the
// spool may take it instead. (fenced and rejected are not outages: spooling would not help.)
bool spoolable(SinkErrc code) { return code == SinkErrc::unavailable || code == SinkErrc::timed_out; }

enum class Mode : std::uint8_t { direct = 0, spooling = 1, replaying = 2 };

prometheus::Gauge& gauge(prometheus::Registry& registry, const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

class SpoolingSinkImpl final : public SpoolingSink {
 public:
  SpoolingSinkImpl(SpoolConfig config, std::unique_ptr<Sink> kafka, ControlRecord position,
                   std::function<std::optional<std::uint64_t>()> read_position, prometheus::Registry& registry)
      : config_(std::move(config)),
        kafka_(std::move(kafka)),
        position_(std::move(position)),
        read_position_(std::move(read_position)),
        records_(prometheus::BuildCounter()
                     .Name("telegate_spool_records_total")
                     .Help("Records written to the Kafka spool (spooled), replayed from it into Kafka (replayed), "
                           "refused for lack of room (refused_full), or set aside because Kafka refused them for "
                           "good at replay (dead_lettered)")
                     .Register(registry)),
        spooled_(records_.Add({{"result", "spooled"}})),
        replayed_(records_.Add({{"result", "replayed"}})),
        full_(records_.Add({{"result", "refused_full"}})),
        dead_lettered_(records_.Add({{"result", "dead_lettered"}})),
        pending_records_(gauge(registry, "telegate_spool_pending_records", "Records in the spool not yet committed to Kafka")),
        bytes_(gauge(registry, "telegate_spool_bytes", "Bytes of spool segments on disk (and being written)")),
        mode_gauge_(gauge(registry, "telegate_spool_mode", "0 direct to Kafka, 1 spooling, 2 replaying")),
        lag_seconds_(gauge(registry, "telegate_spool_replay_lag_seconds",
                           "Age of the spooled batch replayed last (0 in direct mode)")),
        fsync_seconds_(local_log::fsync_histogram(registry, "telegate_spool_fsync_seconds",
                                                  "Latency of fdatasync on the spool")),
        round_bytes_(config_.replay_batch_bytes) {}

  ~SpoolingSinkImpl() override {
    if (replayer_.joinable()) stop();
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  std::string_view name() const noexcept override { return "kafka"; }

  void start() override {
    lock_directory();
    kafka_->start();
    committed_ = read_position_().value_or(0);
    log_ = std::make_unique<local_log::SegmentLog>(
        local_log::SegmentLogConfig{config_.directory, std::string(spool::kSpoolSuffix), std::string(kDirectoryKey),
                                    config_.fsync, config_.fsync_interval, config_.segment_bytes},
        committed_, fsync_seconds_);
    appended_end_ = log_->end_offset();
    if (appended_end_ < committed_ || (log_->first_offset() > committed_ && appended_end_ > log_->first_offset())) {
      throw std::runtime_error(fmt::format(
          "{}: holds spool entries {}..{} but Kafka says this instance replayed up to {}: this is not this "
          "instance's spool, or segments are missing",
          kDirectoryKey, log_->first_offset(), appended_end_, committed_));
    }
    spool_bytes_ = log_->disk_bytes() - log_->delete_below(committed_);
    scan_unreplayed();
    set_mode(appended_end_ > committed_ ? Mode::spooling : Mode::direct);
    bytes_.Set(static_cast<double>(spool_bytes_));
    if (appended_end_ > committed_) {
      spdlog::info("spool: {} records in {} batches wait for replay from position {}", pending_, appended_end_ - committed_,
                   committed_);
    }
    log_->start();
    replayer_ = std::thread([this] { replay_loop(); });
  }

  void submit(SinkBatch batch) override {
    std::vector<std::function<void()>> later;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        later.emplace_back(fail_later(std::move(batch.on_complete), SinkErrc::stopping, "the spool is shutting down"));
      } else if (fenced_) {
        later.emplace_back(fail_later(std::move(batch.on_complete), SinkErrc::fenced, std::string(kFencedMessage)));
      } else if (mode_ == Mode::direct && kafka_->ready()) {
        submit_direct(std::move(batch));
      } else if (holding_) {
        held_.push_back(std::move(batch));
      } else {
        if (mode_ == Mode::direct) {
          spdlog::warn("spool: Kafka is not ready; spooling");
          set_mode(Mode::spooling);
        }
        std::string frame;
        spool::append_batch_frame(batch.records, batch.control, codecs::unix_ms_now(), frame);
        if (auto refused = spool_locked(std::move(frame), batch.records.size(), std::move(batch.on_complete))) {
          later.push_back(std::move(refused));
        }
      }
    }
    for (auto& call : later) call();
  }

  // Ready while Kafka is, or while the spool has room (it has not refused a batch for space
  // since it last shrank).
  bool ready() const noexcept override {
    if (!log_ || !log_->healthy() || stopping_flag_ || fenced_) return false;
    return kafka_->ready() || !refused_full_;
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      stopping_flag_ = true;
    }
    wake_.notify_all();
    if (replayer_.joinable()) replayer_.join();
    std::vector<std::function<void()>> later;
    {
      std::lock_guard lock(mutex_);
      unhold_locked(later);  // the spool is still open: held batches are kept, not failed
    }
    for (auto& call : later) call();
    kafka_->stop();
    {
      std::lock_guard lock(mutex_);
      closing_ = true;  // batches Kafka fails from here on can no longer be spooled
    }
    if (log_) log_->stop();
  }

  void visit_unreplayed_control(const std::function<void(const ControlRecord&)>& visit) const override {
    for (const ControlRecord& control : startup_control_) visit(control);
  }

 private:
  static std::function<void()> fail_later(Completion done, SinkErrc code, std::string message) {
    return [done = std::move(done), code, message = std::move(message)] {
      done(std::unexpected(SinkError{code, message}));
    };
  }

  // Another process using the same spool would interleave its entries with ours.
  void lock_directory() {
    std::error_code error;
    fs::create_directories(config_.directory, error);
    if (error) {
      throw std::runtime_error(
          fmt::format("{}: cannot create '{}': {}", kDirectoryKey, config_.directory.string(), error.message()));
    }
    const fs::path path = config_.directory / "LOCK";
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      throw std::runtime_error(fmt::format("{}: '{}' is in use by another telegate process ({})", kDirectoryKey,
                                           config_.directory.string(), std::strerror(errno)));
    }
  }

  // Counts what waits for replay and keeps its control records for the de-duplication window.
  void scan_unreplayed() {
    local_log::SegmentReader reader(config_.directory, std::string(spool::kSpoolSuffix));
    std::uint64_t at = committed_;
    while (at < appended_end_) {
      std::string problem;
      const auto read = reader.read(at, appended_end_, 16u << 20, [&](std::uint64_t offset, std::string_view body) {
        spool::SpooledBatch batch;
        if (auto parsed = spool::parse_batch_body(body, batch); !parsed) {
          problem = fmt::format("entry {}: {}", offset, parsed.error());
          return;
        }
        pending_ += batch.records.size();
        for (ControlRecord& control : batch.control) startup_control_.push_back(std::move(control));
      });
      if (!read) throw std::runtime_error(fmt::format("{}: {}", kDirectoryKey, read.error()));
      if (!problem.empty()) throw std::runtime_error(fmt::format("{}: {}", kDirectoryKey, problem));
      if (*read == at) break;
      at = *read;
    }
    pending_records_.Set(static_cast<double>(pending_));
  }

  void set_mode(Mode mode) {
    mode_ = mode;
    mode_gauge_.Set(static_cast<double>(mode));
    if (mode == Mode::direct) lag_seconds_.Set(0);
  }

  // Holds mutex_. The frame is encoded up front: if Kafka fails the batch retryably, its
  // records are gone into the Kafka sink, and the spool takes the frame instead.
  void submit_direct(SinkBatch batch) {
    auto frame = std::make_shared<std::string>();
    spool::append_batch_frame(batch.records, batch.control, codecs::unix_ms_now(), *frame);
    const std::size_t records = batch.records.size();
    batch.on_complete = [this, frame, records, done = std::move(batch.on_complete)](
                            SinkResult result) mutable {
      if (result || !spoolable(result.error().code)) {
        if (!result && result.error().code == SinkErrc::fenced) fenced_ = true;
        done(std::move(result));
        return;
      }
      std::function<void()> refused;
      {
        std::lock_guard lock(mutex_);
        if (closing_) {
          refused = fail_later(std::move(done), result.error().code, result.error().message);
        } else {
          if (mode_ == Mode::direct) {
            spdlog::warn("spool: Kafka failed a batch ({}); spooling", result.error().message);
            set_mode(Mode::spooling);
          }
          refused = spool_locked(std::move(*frame), records, std::move(done));
        }
      }
      if (refused) refused();
    };
    kafka_->submit(std::move(batch));
  }

  // Holds mutex_. Appends one batch's frame; returns the failure to run after unlocking when
  // the spool cannot take it.
  std::function<void()> spool_locked(std::string frame, std::size_t records, Completion done) {
    const std::uint64_t size = frame.size();
    if (spool_bytes_ + size > config_.max_bytes) {
      refused_full_ = true;
      full_.Increment(static_cast<double>(records));
      return fail_later(std::move(done), SinkErrc::unavailable,
                        fmt::format("Kafka is unavailable and the spool is full ({} bytes)", config_.max_bytes));
    }
    spool_bytes_ += size;
    bytes_.Set(static_cast<double>(spool_bytes_));
    ++outstanding_;
    local_log::Append append{std::move(frame), 1, {}};
    append.done = [this, size, records, done](std::expected<std::uint64_t, std::string> written) {
      {
        std::lock_guard lock(mutex_);
        --outstanding_;
        if (written) {
          appended_end_ = std::max(appended_end_, *written + 1);
          pending_ += records;
        } else {
          spool_bytes_ -= size;
        }
        pending_records_.Set(static_cast<double>(pending_));
        bytes_.Set(static_cast<double>(spool_bytes_));
      }
      wake_.notify_all();
      if (written) {
        spooled_.Increment(static_cast<double>(records));
        done(Durable::spooled);
      } else {
        done(std::unexpected(SinkError{SinkErrc::io_error, "spool: " + written.error()}));
      }
    };
    if (log_->append(std::move(append))) return {};
    --outstanding_;
    spool_bytes_ -= size;
    return fail_later(std::move(done), SinkErrc::stopping, "the spool is shutting down");
  }

  // The replayer thread: while the spool holds unreplayed entries and Kafka is ready, submits
  // them in order, one transaction at a time (a later transaction must never commit while an
  // earlier one fails), each with the position after it.
  //
  // Catching up under load: devices keep adding to the spool while it is replayed, so once a
  // round has replayed everything that was in the spool when it began, new batches are held in
  // memory (bounded by the admission budget) instead of spooled; the next round replays what
  // landed meanwhile, and then, under the lock, the sink switches to direct mode and submits
  // the held batches to Kafka first, in their order.
  void replay_loop() {
    local_log::SegmentReader reader(config_.directory, std::string(spool::kSpoolSuffix));
    for (;;) {
      std::uint64_t from = 0, until = 0;
      std::vector<std::function<void()>> later;
      {
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, std::chrono::milliseconds(200),
                       [&] { return stopping_ || (holding_ && outstanding_ == 0); });
        if (stopping_) return;
        if (mode_ == Mode::direct) continue;
        if (!kafka_->ready()) {
          unhold_locked(later);
        } else if (committed_ == appended_end_ && outstanding_ == 0) {
          hand_over_locked();
          continue;
        } else if (committed_ < appended_end_) {
          if (mode_ == Mode::spooling) spdlog::info("spool: Kafka is ready; replaying from position {}", committed_);
          set_mode(Mode::replaying);
          from = committed_;
          until = appended_end_;
        }
      }
      for (auto& call : later) call();
      if (until == 0) continue;
      const Round round = replay_from(reader, from, until);
      std::unique_lock lock(mutex_);
      if (round == Round::caught_up) holding_ = true;
      if (round == Round::failed) {
        set_mode(Mode::spooling);
        unhold_locked(later);
        lock.unlock();
        for (auto& call : later) call();
      }
    }
  }

  // Holds mutex_. Direct mode from here on: the held batches go to Kafka first, in order.
  void hand_over_locked() {
    spdlog::info("spool: replay caught up at position {}; back to direct mode", committed_);
    set_mode(Mode::direct);
    holding_ = false;
    for (SinkBatch& batch : held_) submit_direct(std::move(batch));
    held_.clear();
  }

  // Holds mutex_. Kafka is not ready after all: the held batches go to the spool, in order.
  void unhold_locked(std::vector<std::function<void()>>& later) {
    holding_ = false;
    for (SinkBatch& batch : held_) {
      std::string frame;
      spool::append_batch_frame(batch.records, batch.control, codecs::unix_ms_now(), frame);
      if (auto refused = spool_locked(std::move(frame), batch.records.size(), std::move(batch.on_complete))) {
        later.push_back(std::move(refused));
      }
    }
    held_.clear();
  }

  enum class Round : std::uint8_t { failed, partial, caught_up };

  // What one replay round read from the spool.
  struct RoundRead {
    SinkBatch batch;
    std::size_t records = 0;
    std::size_t entries = 0;
    std::int64_t spooled_at_ms = 0;
    std::string first_entry;  // the first entry's body: set aside whole if Kafka refuses it for good
    std::uint64_t next = 0;   // the position after the last entry read
  };

  Round replay_from(local_log::SegmentReader& reader, std::uint64_t from, std::uint64_t until) {
    auto read = read_round(reader, from, until);
    if (!read) {
      // A spool that cannot be read back would be replayed wrong: stop replaying, loudly (the
      // spool keeps accepting until full, and a restart retries).
      spdlog::critical("spool: cannot replay from position {}: {}", from, read.error());
      std::vector<std::function<void()>> later;
      std::unique_lock lock(mutex_);
      set_mode(Mode::spooling);
      unhold_locked(later);
      lock.unlock();
      for (auto& call : later) call();
      lock.lock();
      wake_.wait(lock, [&] { return stopping_; });
      return Round::failed;
    }
    const std::uint64_t next = read->next;
    const std::size_t records = read->records;
    const std::int64_t spooled_at_ms = read->spooled_at_ms;
    const std::size_t entries = read->entries;
    const std::string first_entry = std::move(read->first_entry);
    std::vector<ControlRecord> first_entry_journal;  // needed only if that entry is set aside
    if (entries == 1) first_entry_journal = read->batch.control;
    auto result = commit_round(std::move(read->batch), next);
    if (!result && result.error().code == SinkErrc::too_large) {
      // A record over a topic's max.message.bytes (below the gateway's own limit, which the
      // record passed when it was accepted) fails every round that holds it. Halve the round
      // until the entry holding it is alone, then set that entry aside: it was acknowledged, so
      // it is kept on disk, not dropped, and the entries behind it are not held hostage.
      if (entries > 1) {
        round_bytes_ = std::max<std::size_t>(1, round_bytes_ / 2);
        spdlog::warn("spool: Kafka refused a record of spool entries {}..{} for its size ({}); replaying {} bytes "
                     "at a time to find its entry",
                     from, next - 1, result.error().message, round_bytes_);
        return Round::partial;
      }
      if (auto kept = dead_letter(from, first_entry); !kept) {
        spdlog::critical("spool: cannot set aside spool entry {} that Kafka refuses: {}; replay stops", from,
                         kept.error());
        return Round::failed;
      }
      spdlog::error("spool: Kafka refuses a record of spool entry {} for good ({}); its {} records are kept in {} "
                    "and the replay goes on",
                    from, result.error().message, records, dead_letter_path(from).string());
      round_bytes_ = config_.replay_batch_bytes;
      SinkBatch position_only;
      position_only.control = std::move(first_entry_journal);  // its msg_ids were accepted: retries stay duplicates
      if (result = commit_round(std::move(position_only), next); result) {
        dead_lettered_.Increment(static_cast<double>(records));
        return settle_round(next, until, records, spooled_at_ms, /*replayed=*/0);
      }
    }
    if (!result) {
      if (result.error().code == SinkErrc::fenced) fenced_ = true;
      spdlog::warn("spool: replay from position {} failed ({}); retrying when Kafka is ready", from,
                   result.error().message);
      return Round::failed;
    }
    return settle_round(next, until, records, spooled_at_ms, records);
  }

  // Reads up to round_bytes_ of entries from `from` into one batch.
  std::expected<RoundRead, std::string> read_round(local_log::SegmentReader& reader, std::uint64_t from,
                                                   std::uint64_t until) {
    RoundRead round;
    spool::SpooledBatch batch;
    std::string problem;
    const auto read = reader.read(from, until, round_bytes_, [&](std::uint64_t offset, std::string_view body) {
      batch = {};
      if (!problem.empty()) return;
      if (auto parsed = spool::parse_batch_body(body, batch); !parsed) {
        problem = fmt::format("entry {}: {}", offset, parsed.error());
        return;
      }
      if (round.entries++ == 0) round.first_entry = body;
      round.records += batch.records.size();
      round.spooled_at_ms = batch.spooled_at_ms;
      std::move(batch.records.begin(), batch.records.end(), std::back_inserter(round.batch.records));
      std::move(batch.control.begin(), batch.control.end(), std::back_inserter(round.batch.control));
    });
    if (!read) return std::unexpected(read.error());
    if (!problem.empty()) return std::unexpected(problem);
    if (*read <= from) return std::unexpected(std::string("no entry found"));
    round.next = *read;
    return round;
  }

  // Submits `batch` with the position after it in the same transaction, and waits.
  SinkResult commit_round(SinkBatch batch, std::uint64_t next) {
    ControlRecord& position = batch.control.emplace_back(position_);
    position.value = std::to_string(next);
    std::promise<SinkResult> outcome;
    batch.on_complete = [&outcome](SinkResult result) { outcome.set_value(std::move(result)); };
    kafka_->submit(std::move(batch));
    return outcome.get_future().get();
  }

  // The round up to `next` is committed: its segments can go.
  Round settle_round(std::uint64_t next, std::uint64_t until, std::size_t records, std::int64_t spooled_at_ms,
                     std::size_t replayed) {
    replayed_.Increment(static_cast<double>(replayed));
    lag_seconds_.Set(static_cast<double>(codecs::unix_ms_now() - spooled_at_ms) / 1000.0);
    const std::uint64_t freed = log_->delete_below(next);
    std::lock_guard lock(mutex_);
    committed_ = next;
    pending_ -= std::min(pending_, records);
    spool_bytes_ -= std::min<std::uint64_t>(spool_bytes_, freed);
    if (freed > 0) refused_full_ = false;
    pending_records_.Set(static_cast<double>(pending_));
    bytes_.Set(static_cast<double>(spool_bytes_));
    return next == until ? Round::caught_up : Round::partial;
  }

  fs::path dead_letter_path(std::uint64_t offset) const {
    return config_.directory / kDeadLetterDirectory / fmt::format("{:020}{}", offset, spool::kSpoolSuffix);
  }

  // Writes the entry at `offset` as a one-entry segment of its own under dead-letter/, synced
  // before the replay position moves past it. A crash in between sets it aside again, over the
  // same file.
  std::expected<void, std::string> dead_letter(std::uint64_t offset, std::string_view body) const {
    const fs::path path = dead_letter_path(offset);
    std::error_code error;
    fs::create_directories(path.parent_path(), error);
    if (error) return std::unexpected(fmt::format("cannot create '{}': {}", path.parent_path().string(), error.message()));
    std::string frame;
    const std::size_t start = local_log::begin_frame(frame);
    frame += body;
    local_log::end_frame(frame, start);
    const fs::path partial = fs::path(path).concat(".partial");
    const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return std::unexpected(fmt::format("cannot create '{}': {}", partial.string(), std::strerror(errno)));
    const bool written = ::write(fd, frame.data(), frame.size()) == static_cast<ssize_t>(frame.size()) && ::fsync(fd) == 0;
    const int write_errno = errno;
    ::close(fd);
    if (!written) return std::unexpected(fmt::format("cannot write '{}': {}", partial.string(), std::strerror(write_errno)));
    fs::rename(partial, path, error);
    if (error) return std::unexpected(fmt::format("cannot rename '{}': {}", partial.string(), error.message()));
    const int directory = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory >= 0) {
      ::fsync(directory);
      ::close(directory);
    }
    return {};
  }

  SpoolConfig config_;
  std::unique_ptr<Sink> kafka_;
  const ControlRecord position_;
  std::function<std::optional<std::uint64_t>()> read_position_;
  prometheus::Family<prometheus::Counter>& records_;
  prometheus::Counter& spooled_;
  prometheus::Counter& replayed_;
  prometheus::Counter& full_;
  prometheus::Counter& dead_lettered_;
  prometheus::Gauge& pending_records_;
  prometheus::Gauge& bytes_;
  prometheus::Gauge& mode_gauge_;
  prometheus::Gauge& lag_seconds_;
  prometheus::Histogram& fsync_seconds_;

  int lock_fd_ = -1;
  std::unique_ptr<local_log::SegmentLog> log_;
  std::vector<ControlRecord> startup_control_;  // written by start() only
  std::thread replayer_;
  std::size_t round_bytes_;  // replayer thread: bytes per replay round, halved to isolate a refused entry

  std::mutex mutex_;
  std::condition_variable wake_;
  Mode mode_ = Mode::direct;
  std::uint64_t committed_ = 0;     // spool position committed to Kafka
  std::uint64_t appended_end_ = 0;  // entries [0, appended_end_) are written to the spool
  std::size_t outstanding_ = 0;     // appends queued to the spool and not yet written
  std::uint64_t pending_ = 0;       // records spooled and not yet replayed
  bool holding_ = false;            // the replay is about to catch up: new batches wait in held_
  std::vector<SinkBatch> held_;
  std::atomic<std::uint64_t> spool_bytes_{0};
  bool stopping_ = false;
  bool closing_ = false;
  std::atomic<bool> stopping_flag_{false};
  std::atomic<bool> refused_full_{false};
  // Another instance took over our transactional id: this one must not accept what it can
  // never replay. Its spool keeps what it acknowledged; a restart on this directory replays it.
  std::atomic<bool> fenced_{false};  // the spool refused a batch and has not shrunk since
};

}  // namespace

std::unique_ptr<SpoolingSink> make_spooling_sink(SpoolConfig config, std::unique_ptr<Sink> kafka, ControlRecord position,
                                                 std::function<std::optional<std::uint64_t>()> read_position,
                                                 prometheus::Registry& metrics) {
  return std::make_unique<SpoolingSinkImpl>(std::move(config), std::move(kafka), std::move(position),
                                            std::move(read_position), metrics);
}

std::optional<std::uint64_t> read_spool_position(const KafkaSinkConfig& kafka, const ControlRecord& position) {
  const auto values = read_key_since(kafka, position.topic, position.partition, position.key, {});
  std::optional<std::uint64_t> last;
  for (const std::string& value : values) {
    std::uint64_t parsed = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (error == std::errc() && end == value.data() + value.size()) last = std::max(last.value_or(0), parsed);
  }
  return last;
}

}  // namespace telegate::sinks
