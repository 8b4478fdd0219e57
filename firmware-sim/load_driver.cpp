#include "load_driver.hpp"

#include <boost/asio/steady_timer.hpp>
#include <random>

namespace telegate::sim {

namespace asio = boost::asio;

std::string device_id(std::size_t index) { return "sim-" + std::to_string(index); }
std::string device_token(std::size_t index) { return "sim-token-" + std::to_string(index); }

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One channel posting batches in a loop, playing one device at a time (device i = lane i mod
// N). Lives until the record budget is spent and its last batch is resolved; runs on the
// io_context thread, kept alive by its pending handlers.
class Lane : public std::enable_shared_from_this<Lane> {
 public:
  Lane(asio::io_context& io, const LoadPlan& plan, std::size_t index, std::unique_ptr<Channel> channel,
       const RetryPolicy& policy, std::size_t& remaining, RunReport& report)
      : timer_(io), plan_(plan), channel_(std::move(channel)), policy_(policy), remaining_(remaining), report_(report),
        random_(index * 7919 + 17) {
    batch_.device = index % plan.devices;
    batch_.device_id = device_id(batch_.device);
    batch_.token = device_token(batch_.device);
    batch_.format = &wire_format(plan.profile);
    // Unique per run and lane: the gateway de-duplicates by msg_id, so a second run (or a
    // second lane playing the same device) must not reuse the first one's ids. The run id
    // comes first so that `audit --prefix RUN_ID` selects one run.
    msg_id_prefix_ = plan.run_id + "-" + batch_.device_id + "-" + std::to_string(index);
    std::uniform_real_distribution<double> spread(-0.2, 0.2);
    track_ = Track{46.05 + spread(random_), 14.51 + spread(random_), 12.0, 90.0, now_ms()};
    interval_ = plan.rate > 0 ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                    static_cast<double>(plan.batch * plan.connections) / plan.rate))
                              : Clock::duration::zero();
    next_send_ = Clock::now();
  }

  // Builds the next batch and sends it when it is due.
  void next() {
    if (remaining_ == 0) return channel_->close();
    batch_.records = std::min(plan_.batch, remaining_);
    remaining_ -= batch_.records;
    fixes_.clear();
    for (std::size_t i = 0; i < batch_.records; ++i) fixes_.push_back(track_.advance(now_ms(), random_));
    encode(plan_.profile, batch_.device_id, msg_id_prefix_, sequence_, fixes_, batch_.body);
    sequence_ += batch_.records;
    retries_ = 0;
    if (interval_ == Clock::duration::zero()) return send();
    timer_.expires_at(next_send_);
    next_send_ += interval_;
    timer_.async_wait([self = shared_from_this()](boost::system::error_code) { self->send(); });
  }

 private:
  void send() {
    channel_->send(batch_, [self = shared_from_this()](const Outcome& outcome) { self->resolved(outcome); });
  }

  void resolved(const Outcome& outcome) {
    const Verdict verdict = policy_.decide(outcome, retries_);
    report_.record(batch_, outcome, verdict);
    if (verdict != Verdict::retry) return next();
    timer_.expires_after(policy_.backoff(++retries_, random_));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code) { self->send(); });
  }

  asio::steady_timer timer_;
  const LoadPlan& plan_;
  std::unique_ptr<Channel> channel_;
  const RetryPolicy& policy_;
  std::size_t& remaining_;
  RunReport& report_;
  std::mt19937_64 random_;
  Track track_{};
  std::vector<Fix> fixes_;
  Batch batch_;
  std::string msg_id_prefix_;
  std::uint64_t sequence_ = 0;
  std::size_t retries_ = 0;
  Clock::duration interval_;
  Clock::time_point next_send_;
};

}  // namespace

void run_load(asio::io_context& io, const LoadPlan& plan, const ChannelFactory& channels, RunReport& report) {
  const RetryPolicy policy(plan.max_retries);
  std::size_t remaining = plan.records;
  for (std::size_t i = 0; i < plan.connections; ++i) {
    std::make_shared<Lane>(io, plan, i, channels(), policy, remaining, report)->next();
  }
  io.run();
}

}  // namespace telegate::sim
