#include "run_report.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace telegate::sim {

std::string outcome_name(const Outcome& outcome) {
  switch (outcome.kind) {
    case OutcomeKind::answered: return std::to_string(outcome.status);
    case OutcomeKind::connect_error: return "connect_error";
    case OutcomeKind::write_error: return "write_error";
    case OutcomeKind::read_error: return "read_error";
    case OutcomeKind::timeout: return "timeout";
  }
  return "unknown";
}

void RunReport::record(const Batch& batch, const Outcome& outcome, Verdict verdict) {
  const std::string name = outcome_name(outcome);
  ++outcomes_[name];
  if (outcome.kind == OutcomeKind::answered) {
    ++requests_;
  } else {
    ++connection_errors_;
  }
  switch (verdict) {
    case Verdict::delivered:
      latency_.record(outcome.latency);
      accepted_ += outcome.accepted;
      rejected_ += outcome.rejected;
      log_acknowledged(outcome);
      break;
    case Verdict::retry: ++retries_; break;
    case Verdict::give_up:
      rejected_ += batch.records;
      refused_records_[name] += batch.records;
      break;
  }
}

// Written once per batch when it is acknowledged, so the log never names a record the gateway
// did not confirm.
void RunReport::log_acknowledged(const Outcome& outcome) {
  acknowledged_ += outcome.acknowledged.size();
  if (!ack_log_) return;
  for (const std::string_view id : outcome.acknowledged) {
    std::fwrite(id.data(), 1, id.size(), ack_log_);
    std::fputc('\n', ack_log_);
  }
}

namespace {

std::string json_counts(const std::map<std::string, std::size_t>& counts) {
  std::string json;
  for (const auto& [name, count] : counts) json += fmt::format("{}\"{}\":{}", json.empty() ? "" : ",", name, count);
  return json;
}

double milliseconds(Clock::duration duration) { return std::chrono::duration<double, std::milli>(duration).count(); }

}  // namespace

void RunReport::finish(double seconds, std::size_t records_made, Fleet fleet) {
  seconds_ = std::max(seconds, 1e-6);  // rates stay finite (valid JSON) for an empty run
  records_ = records_made;
  fleet_ = std::move(fleet);
}

std::string RunReport::json() const {
  const auto ms = [this](double p) { return latency_.percentile_micros(p) / 1000.0; };
  std::string line = fmt::format(
      "{{\"run_id\":\"{}\",\"records\":{},\"accepted\":{},\"rejected\":{},\"acknowledged\":{},"
      "\"requests\":{},\"retries\":{},\"connection_errors\":{},\"seconds\":{:.3f},"
      "\"records_per_second\":{:.0f},\"ack_latency_ms\":{{\"p50\":{:.2f},\"p90\":{:.2f},\"p99\":{:.2f},\"max\":{:.2f},"
      "\"p99_9\":{:.2f}}},\"outcomes\":{{{}}},\"refused_records\":{{{}}},\"profile\":\"{}\",\"devices\":{},"
      "\"store_and_forward_records\":{},\"fleet_rss_bytes_per_device\":{:.0f},"
      "\"send_lag_ms\":{{\"p50\":{:.2f},\"p99\":{:.2f},\"max\":{:.2f}}}}}",
      run_id_, records_, accepted_, rejected_, acknowledged_, requests_, retries_, connection_errors_, seconds_,
      static_cast<double>(accepted_) / seconds_, ms(50), ms(90), ms(99), latency_.max_micros() / 1000.0, ms(99.9),
      json_counts(outcomes_), json_counts(refused_records_), fleet_.profile, fleet_.devices, fleet_.forwarded,
      fleet_.rss_bytes_per_device, send_lag_.percentile_micros(50) / 1000.0, send_lag_.percentile_micros(99) / 1000.0,
      send_lag_.max_micros() / 1000.0);
  if (!interruption_) return line;
  line.pop_back();  // the closing brace: the interruption is one more field
  return line + fmt::format(
                    ",\"interrupted\":{{\"signal\":{},\"awaiting_answer\":{},\"backing_off\":{},\"waiting_due\":{},"
                    "\"longest_wait_ms\":{:.0f},\"longest_waiting_device\":\"{}\",\"longest_waiting_retries\":{}}}}}",
                    interruption_->signal, interruption_->awaiting_answer, interruption_->backing_off,
                    interruption_->waiting_due, milliseconds(interruption_->longest_wait),
                    interruption_->longest_waiting_device, interruption_->longest_waiting_retries);
}

std::string RunReport::human() const {
  std::string text = fmt::format(
      "run {}: {} {} devices, {} records in {:.1f} s\n"
      "  accepted   {} ({:.0f} records/s), rejected {}, acknowledged msg_ids {}\n"
      "  requests   {} ({:.0f}/s), retries {}, connection errors {}\n"
      "  ack latency ms  p50 {:.2f}  p90 {:.2f}  p99 {:.2f}  p99.9 {:.2f}  max {:.2f}\n"
      "  sent late (open loop, all lanes busy) ms  p50 {:.2f}  p99 {:.2f}  max {:.2f}\n"
      "  store-and-forward records {}, fleet memory {:.0f} bytes/device\n",
      run_id_, fleet_.devices, fleet_.profile, records_, seconds_, accepted_, static_cast<double>(accepted_) / seconds_,
      rejected_, acknowledged_, requests_, static_cast<double>(requests_) / seconds_, retries_, connection_errors_,
      latency_.percentile_micros(50) / 1000.0, latency_.percentile_micros(90) / 1000.0,
      latency_.percentile_micros(99) / 1000.0, latency_.percentile_micros(99.9) / 1000.0, latency_.max_micros() / 1000.0,
      send_lag_.percentile_micros(50) / 1000.0, send_lag_.percentile_micros(99) / 1000.0, send_lag_.max_micros() / 1000.0,
      fleet_.forwarded, fleet_.rss_bytes_per_device);
  text += "  outcomes  ";
  for (const auto& [name, count] : outcomes_) text += fmt::format(" {}: {}", name, count);
  text += "\n";
  if (!refused_records_.empty()) {
    text += "  refused records by last answer ";
    for (const auto& [name, count] : refused_records_) text += fmt::format(" {}: {}", name, count);
    text += "\n";
  }
  if (interruption_) {
    text += fmt::format("  INTERRUPTED by signal {}: lanes awaiting an answer {}, backing off {}, waiting for a report {}\n",
                        interruption_->signal, interruption_->awaiting_answer, interruption_->backing_off,
                        interruption_->waiting_due);
    if (interruption_->awaiting_answer > 0) {
      text += fmt::format("  longest wait for an answer: {:.0f} ms, device {}, after {} resends\n",
                          milliseconds(interruption_->longest_wait), interruption_->longest_waiting_device,
                          interruption_->longest_waiting_retries);
    }
  }
  return text;
}

std::string RunReport::progress_line(double seconds, std::size_t made, std::size_t buffered) const {
  return fmt::format("[{:6.1f} s] made {} buffered {} accepted {} ({:.0f}/s) requests {} retries {} errors {} p99 {:.1f} ms",
                     seconds, made, buffered, accepted_, static_cast<double>(accepted_) / seconds, requests_, retries_,
                     connection_errors_, latency_.percentile_micros(99) / 1000.0);
}

}  // namespace telegate::sim
