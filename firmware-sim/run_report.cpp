#include "run_report.hpp"

#include <fmt/format.h>

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

}  // namespace

std::string RunReport::json() const {
  const auto ms = [this](double p) { return latency_.percentile_micros(p) / 1000.0; };
  return fmt::format(
      "{{\"run_id\":\"{}\",\"records\":{},\"accepted\":{},\"rejected\":{},\"acknowledged\":{},"
      "\"requests\":{},\"retries\":{},\"connection_errors\":{},\"seconds\":{:.3f},"
      "\"records_per_second\":{:.0f},\"ack_latency_ms\":{{\"p50\":{:.2f},\"p90\":{:.2f},\"p99\":{:.2f},\"max\":{:.2f}}},"
      "\"outcomes\":{{{}}},\"refused_records\":{{{}}}}}",
      run_id_, records_, accepted_, rejected_, acknowledged_, requests_, retries_, connection_errors_, seconds_,
      static_cast<double>(accepted_) / seconds_, ms(50), ms(90), ms(99), latency_.max_micros() / 1000.0,
      json_counts(outcomes_), json_counts(refused_records_));
}

}  // namespace telegate::sim
