// What a load run did: counts by outcome, ack latencies, the ack log, and how it is printed
// (the JSON line scripts parse, a human summary, a progress line).
#pragma once

#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include "latency_histogram.hpp"
#include "retry_policy.hpp"
#include "transport.hpp"

namespace telegate::sim {

// Filled by the load driver on the io_context thread while the run goes; printed by main
// afterwards (the progress line reads it from the same thread).
class RunReport {
 public:
  RunReport(std::string run_id, std::FILE* ack_log) : run_id_(std::move(run_id)), ack_log_(ack_log) {}

  // One send of `batch` ended with `outcome`, which the retry policy judged `verdict`.
  void record(const Batch& batch, const Outcome& outcome, Verdict verdict);

  // What the run was, for the summary: the fleet's shape and what it made.
  struct Fleet {
    std::string profile;
    std::size_t devices = 0;
    std::size_t forwarded = 0;           // records sent after waiting out a coverage gap
    double rss_bytes_per_device = 0;     // VmRSS growth while the fleet was created
  };
  // How long after it was due a report was first sent (0 in closed loop, where it is due when sent).
  void record_send_lag(Clock::duration lag) { send_lag_.record(lag); }
  void finish(double seconds, std::size_t records_made, Fleet fleet);
  bool all_accepted() const { return accepted_ == records_; }

  // A run stopped by a signal before it was done, and where its lanes were: the summary of a
  // run that does not end (an answer that never comes, a device refused again and again).
  struct Interruption {
    int signal = 0;
    std::size_t awaiting_answer = 0;  // lanes with a request out
    std::size_t backing_off = 0;      // lanes waiting to resend after a refusal or an error
    std::size_t waiting_due = 0;      // lanes waiting for their device's next report (open loop)
    Clock::duration longest_wait{};   // the lane waiting longest for an answer: how long,
    std::string longest_waiting_device;  // for which device,
    std::size_t longest_waiting_retries = 0;  // after how many resends of that batch
  };
  void interrupted(Interruption interruption) { interruption_ = std::move(interruption); }
  // 0, or the signal that stopped the run.
  int interrupted_by() const { return interruption_ ? interruption_->signal : 0; }

  // The single JSON line scripts parse (tests/fault, tests/integration/overload_test.cpp,
  // bench/*.sh): fields are only ever added, never renamed.
  std::string json() const;
  // The same for people: rates, latency percentiles, errors by kind, retries.
  std::string human() const;
  // One line while the run goes (stderr, every second).
  std::string progress_line(double seconds, std::size_t made, std::size_t buffered) const;

 private:
  void log_acknowledged(const Outcome& outcome);

  std::string run_id_;
  std::size_t records_ = 0;  // made (all of --records unless --duration-s ended the run first)
  Fleet fleet_;
  std::FILE* ack_log_;  // --ack-log, or null
  std::size_t accepted_ = 0;
  std::size_t rejected_ = 0;
  std::size_t acknowledged_ = 0;  // msg_ids listed by 2xx answers
  std::size_t requests_ = 0;
  std::size_t connection_errors_ = 0;
  std::size_t retries_ = 0;
  std::map<std::string, std::size_t> outcomes_;         // requests by "200", "503", "connect_error", …
  std::map<std::string, std::size_t> refused_records_;  // records given up on, by the last answer
  LatencyHistogram latency_;
  LatencyHistogram send_lag_;
  double seconds_ = 0;
  std::optional<Interruption> interruption_;
};

}  // namespace telegate::sim
