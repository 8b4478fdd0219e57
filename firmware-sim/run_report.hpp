// What a load run did: counts by outcome, ack latencies, the ack log, and how it is printed
// (the JSON line scripts parse, a human summary, a progress line).
#pragma once

#include <cstdio>
#include <map>
#include <string>

#include "latency_histogram.hpp"
#include "retry_policy.hpp"
#include "transport.hpp"

namespace telegate::sim {

// Filled by the load driver on the io_context thread while the run goes; printed by main
// afterwards (the progress line reads it from the same thread).
class RunReport {
 public:
  RunReport(std::string run_id, std::size_t records, std::FILE* ack_log)
      : run_id_(std::move(run_id)), records_(records), ack_log_(ack_log) {}

  // One send of `batch` ended with `outcome`, which the retry policy judged `verdict`.
  void record(const Batch& batch, const Outcome& outcome, Verdict verdict);

  void finish(double seconds) { seconds_ = seconds; }
  bool all_accepted() const { return accepted_ == records_; }

  // The single JSON line scripts parse (tests/fault, tests/integration/overload_test.cpp,
  // bench/*.sh): fields are only ever added, never renamed.
  std::string json() const;

 private:
  void log_acknowledged(const Outcome& outcome);

  std::string run_id_;
  std::size_t records_;
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
  double seconds_ = 0;
};

}  // namespace telegate::sim
