#include "load_driver.hpp"

#include <algorithm>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdio>

namespace telegate::sim {

namespace asio = boost::asio;

std::string device_id(std::string_view prefix, std::size_t index) {
  return std::string(prefix) + "-" + std::to_string(index);
}
std::string device_token(std::string_view prefix, std::size_t index) {
  return std::string(prefix) + "-token-" + std::to_string(index);
}

namespace {

// The gateway's default decode.max_records: a longer store-and-forward backlog goes out in
// several requests.
constexpr std::size_t kMaxRecordsPerBody = 10'000;

std::int64_t wall_ms(Clock::time_point when) {
  const auto now = std::chrono::system_clock::now() + (when - Clock::now());
  return std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
}

}  // namespace

Fleet::Fleet(const LoadPlan& plan, const MotionModel& motion)
    : plan_(plan),
      motion_(motion),
      profile_(profile_info(plan.profile)),
      // A phone app posts each fix as it comes: --batch does not apply to it.
      per_report_(profile_.max_records_per_body ? std::min(plan.batch, profile_.max_records_per_body) : plan.batch),
      started_(Clock::now()) {
  const double interval_s = plan.report_interval_s > 0 ? plan.report_interval_s
                            : plan.rate > 0 ? static_cast<double>(plan.devices * per_report_) / plan.rate
                                            : 0.0;
  interval_ns_ = static_cast<std::int64_t>(interval_s * 1e9);
  devices_.resize(plan.devices);
  std::vector<Due> schedule;
  schedule.reserve(plan.devices);
  for (std::size_t i = 0; i < plan.devices; ++i) {
    // Open loop: phases spread evenly over one interval, so the fleet's rate is smooth from
    // the start, and each device's first report covers the interval before it. Closed loop:
    // plain round robin.
    const std::int64_t key = interval_ns_ > 0 ? static_cast<std::int64_t>(static_cast<double>(interval_ns_) *
                                                                          static_cast<double>(i) / static_cast<double>(plan.devices))
                                              : static_cast<std::int64_t>(i);
    const std::int64_t first_ms =
        interval_ns_ > 0 ? wall_ms(started_ + std::chrono::nanoseconds(key - interval_ns_)) : wall_ms(started_);
    devices_[i].motion = motion.start(i * 0x9e3779b97f4a7c15 + 17, first_ms);
    schedule.push_back({key, static_cast<std::uint32_t>(i), false});
  }
  due_ = decltype(due_)(std::greater<>(), std::move(schedule));
}

bool Fleet::making() const {
  if (made_ >= plan_.records) return false;
  return plan_.duration_s <= 0 || Clock::now() - started_ < std::chrono::duration<double>(plan_.duration_s);
}

// Fixes evenly spaced since the device's last one: a tracker samples its GPS between uploads.
void Fleet::make_records(Device& device, std::size_t count, std::int64_t until_ms) {
  const std::int64_t from_ms = device.motion.last_ms;
  device.buffer.reserve(device.buffer.size() + count);  // one allocation per report, not one per doubling
  for (std::size_t i = 1; i <= count; ++i) {
    const auto at = from_ms + (until_ms - from_ms) * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(count);
    device.buffer.push_back(motion_.advance(device.motion, at));
  }
  device.sequence += count;
  made_ += count;
  buffered_ += count;
}

std::optional<Clock::time_point> Fleet::take(Batch& batch) {
  while (!due_.empty()) {
    const Due next = due_.top();
    due_.pop();
    Device& device = devices_[next.device];
    const bool making_now = making();
    Clock::time_point when = Clock::now();
    if (interval_ns_ > 0 && making_now && !next.drain) when = started_ + std::chrono::nanoseconds(next.key);
    const std::size_t held = device.buffer.size();  // made by an earlier report
    if (making_now && !next.drain) {
      const std::int64_t at_ms = wall_ms(when);
      make_records(device, std::min(per_report_, plan_.records - made_), at_ms);
      due_.push({next.key + (interval_ns_ > 0 ? interval_ns_ : static_cast<std::int64_t>(plan_.devices)), next.device, false});
      if (!motion_.covered(device.motion, at_ms)) continue;  // store and forward
    } else if (device.buffer.empty()) {
      continue;  // nothing more to make or send: the device leaves the schedule
    }
    // Once no more records are made, a device in a gap sends what it holds anyway: the run ends.
    const std::size_t limit = profile_.max_records_per_body ? profile_.max_records_per_body : kMaxRecordsPerBody;
    const std::size_t count = std::min(device.buffer.size(), limit);
    const std::span<const Fix> fixes(device.buffer.data(), count);
    batch.device = next.device;
    batch.device_id = device_id(plan_.id_prefix, next.device);
    batch.token = device_token(plan_.id_prefix, next.device);
    batch.format = &profile_.wire;
    batch.records = count;
    const std::string msg_id_prefix = plan_.run_id + "-" + batch.device_id;
    batch.first_sequence = device.sequence - device.buffer.size();
    batch.msg_id_prefix = profile_.carries_msg_ids ? msg_id_prefix : std::string();
    encode(plan_.profile, batch.device_id, msg_id_prefix, batch.first_sequence, fixes, batch.body);
    device.buffer.erase(device.buffer.begin(), device.buffer.begin() + static_cast<std::ptrdiff_t>(count));
    if (device.buffer.empty()) device.buffer.shrink_to_fit();  // an idle device holds no heap memory
    buffered_ -= count;
    forwarded_ += std::min(count, held);
    if (!device.buffer.empty()) due_.push({next.key, next.device, true});
    return when;
  }
  return std::nullopt;
}

namespace {

// Shared by the lanes of one run; lives on run_load's stack, used on the io_context thread.
struct Run {
  const RetryPolicy& policy;
  Fleet& fleet;
  RunReport& report;
  std::size_t lanes_running;
  asio::steady_timer progress;
  asio::signal_set interrupt;  // SIGINT, SIGTERM: waited for while lanes run

  void lane_finished() {
    if (--lanes_running > 0) return;
    progress.cancel();
    interrupt.cancel();
  }
};

// One channel sending whichever device is due next, until the fleet has nothing left; then
// the lane closes its channel. Runs on the io_context thread; run_load holds every lane until
// the run ends.
class Lane : public std::enable_shared_from_this<Lane> {
 public:
  Lane(asio::io_context& io, std::size_t index, std::unique_ptr<Channel> channel, Run& run)
      : timer_(io), channel_(std::move(channel)), run_(run), random_(index * 7919 + 17) {}

  void next() {
    const std::optional<Clock::time_point> due = run_.fleet.take(batch_);
    if (!due) {
      channel_->close();
      enter(LaneState::finished);
      run_.lane_finished();
      return;
    }
    retries_ = 0;
    enter(LaneState::waiting_due);
    if (*due <= Clock::now()) return first_send(*due);
    timer_.expires_at(*due);
    timer_.async_wait([self = shared_from_this(), due = *due](boost::system::error_code) { self->first_send(due); });
  }

  // Where the lane is, for an interrupted run's summary: a run that never ends shows whether it
  // waits for answers (how long, from which device) or keeps being refused.
  void tell(RunReport::Interruption& interruption) const {
    if (state_ == LaneState::finished) return;
    const Clock::duration waited = Clock::now() - since_;
    if (state_ == LaneState::awaiting_answer) {
      ++interruption.awaiting_answer;
      if (waited > interruption.longest_wait) {
        interruption.longest_wait = waited;
        interruption.longest_waiting_device = batch_.device_id;
        interruption.longest_waiting_retries = retries_;
      }
    } else if (state_ == LaneState::backing_off) {
      ++interruption.backing_off;
    } else {
      ++interruption.waiting_due;
    }
  }

 private:
  // Open loop, how late the report goes out: all lanes busy delays it, and its ack latency
  // alone would hide that wait (coordinated omission).
  void first_send(Clock::time_point due) {
    run_.report.record_send_lag(Clock::now() - due);
    send();
  }

  enum class LaneState { waiting_due, awaiting_answer, backing_off, finished };
  void enter(LaneState state) {
    state_ = state;
    since_ = Clock::now();
  }

  void send() {
    enter(LaneState::awaiting_answer);
    channel_->send(batch_, [self = shared_from_this()](const Outcome& outcome) { self->resolved(outcome); });
  }

  void resolved(const Outcome& outcome) {
    const Verdict verdict = run_.policy.decide(outcome, retries_);
    run_.report.record(batch_, outcome, verdict);
    if (verdict != Verdict::retry) return next();
    enter(LaneState::backing_off);
    timer_.expires_after(std::max(run_.policy.backoff(++retries_, random_), outcome.retry_after));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code) { self->send(); });
  }

  asio::steady_timer timer_;
  std::unique_ptr<Channel> channel_;
  Run& run_;
  SmallRandom random_;
  Batch batch_;
  std::size_t retries_ = 0;
  LaneState state_ = LaneState::waiting_due;
  Clock::time_point since_ = Clock::now();
};

void print_progress(Run& run, Clock::time_point started) {
  run.progress.expires_after(std::chrono::seconds(1));
  run.progress.async_wait([&run, started](boost::system::error_code error) {
    if (error) return;
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::fprintf(stderr, "%s\n", run.report.progress_line(seconds, run.fleet.made(), run.fleet.buffered()).c_str());
    print_progress(run, started);
  });
}

}  // namespace

void run_load(asio::io_context& io, const LoadPlan& plan, Fleet& fleet, const ChannelFactory& channels,
              RunReport& report) {
  const RetryPolicy policy(plan.max_retries);
  Run run{policy, fleet, report, plan.connections, asio::steady_timer(io), asio::signal_set(io, SIGINT, SIGTERM)};
  std::vector<std::shared_ptr<Lane>> lanes;
  lanes.reserve(plan.connections);
  for (std::size_t i = 0; i < plan.connections; ++i) lanes.push_back(std::make_shared<Lane>(io, i, channels(), run));
  run.interrupt.async_wait([&](boost::system::error_code error, int signal_number) {
    if (error) return;
    RunReport::Interruption interruption;
    interruption.signal = signal_number;
    for (const auto& lane : lanes) lane->tell(interruption);
    report.interrupted(interruption);
    io.stop();
  });
  for (const auto& lane : lanes) lane->next();
  if (plan.progress && run.lanes_running > 0) print_progress(run, Clock::now());
  io.run();
}

}  // namespace telegate::sim
