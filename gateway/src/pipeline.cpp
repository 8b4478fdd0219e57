#include "telegate/gateway/pipeline.hpp"

#include <algorithm>
#include <stdexcept>

namespace telegate::gateway {

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "Application/JSON; charset=utf-8" → "application/json"
void normalise_media_type(std::string_view raw, std::string& out) {
  raw = raw.substr(0, raw.find(';'));
  while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) raw.remove_suffix(1);
  while (!raw.empty() && (raw.front() == ' ' || raw.front() == '\t')) raw.remove_prefix(1);
  out.assign(raw);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
}

IngestOutcome refusal(IngestStatus status, std::string message) {
  IngestOutcome outcome;
  outcome.status = status;
  outcome.message = std::move(message);
  return outcome;
}

}  // namespace

struct PipelineWorker::DeviceTypeState {
  std::unique_ptr<codecs::Codec> codec;
  envelope::EnvelopeBuilder builder;
};

IngestPipeline::IngestPipeline(const GatewayConfig& config, const codecs::CodecRegistry& codecs, sinks::Sink& sink,
                               InflightBudget& budget, Metrics& metrics)
    : config_(config), codecs_(codecs), sink_(sink), budget_(budget), metrics_(metrics) {}

std::unique_ptr<PipelineWorker> IngestPipeline::make_worker() const { return std::make_unique<PipelineWorker>(*this); }

PipelineWorker::PipelineWorker(const IngestPipeline& pipeline) : pipeline_(pipeline) {
  const GatewayConfig& config = pipeline.config_;
  for (const DeviceTypeConfig& type : config.device_types) {
    auto codec = pipeline.codecs_.create(type.codec, config.decode);
    if (!codec) throw std::invalid_argument("device type " + type.name + ": unknown codec " + type.codec);
    auto topic = envelope::TopicTemplate::compile(type.topic_template.empty() ? config.sink.topic_template
                                                                              : type.topic_template);
    if (!topic) throw std::invalid_argument("device type " + type.name + ": " + topic.error().message);
    types_.emplace(type.name, std::make_unique<DeviceTypeState>(
                                  DeviceTypeState{std::move(codec), envelope::EnvelopeBuilder(type.envelope_format,
                                                                                              std::move(*topic))}));
  }
}

PipelineWorker::~PipelineWorker() = default;

std::optional<IngestOutcome> PipelineWorker::ingest(const IngestRequest& request, IngestCallback done) {
  const auto started = Clock::now();
  const ProtocolMetrics& metrics = pipeline_.metrics_.protocol(request.protocol);
  const auto found = types_.find(request.device.device_type);
  if (found == types_.end()) {
    return refusal(IngestStatus::unsupported_media_type, "device type '" + request.device.device_type + "' is unknown");
  }
  DeviceTypeState& type = *found->second;

  // codec
  normalise_media_type(request.content_type, content_type_);
  const auto& readable = type.codec->content_types();
  if (std::find(readable.begin(), readable.end(), content_type_) == readable.end()) {
    std::string accepted;
    for (const auto& name : readable) accepted += (accepted.empty() ? "" : ", ") + std::string(name);
    return refusal(IngestStatus::unsupported_media_type,
                   "content type '" + content_type_ + "' is not read by codec " + std::string(type.codec->name()) +
                       " (accepted: " + accepted + ")");
  }
  batch_.clear();
  const codecs::DecodeContext context{request.device.tenant, request.device.device_id,
                                      envelope::to_string(request.protocol), content_type_};
  if (auto decoded = type.codec->decode(request.body, context, batch_); !decoded) {
    metrics.reject(RejectReason::decode, 1);
    IngestOutcome outcome = refusal(decoded.error().code == codecs::CodecErrc::too_many_records
                                        ? IngestStatus::too_large
                                        : IngestStatus::malformed,
                                    decoded.error().message);
    outcome.offset = decoded.error().offset;
    return outcome;
  }
  metrics.received->Increment(static_cast<double>(batch_.total()));
  metrics.request_records->Observe(static_cast<double>(batch_.total()));

  // auth: a device writes only as itself, whatever its payload says
  for (const codecs::CanonicalRecord& record : batch_.records()) {
    if (record.device_id != request.device.device_id) {
      metrics.reject(RejectReason::forbidden, batch_.total());
      return refusal(IngestStatus::forbidden, "record " + std::to_string(record.index) + " names device '" +
                                                  record.device_id.substr(0, 64) + "', but the credentials are for '" +
                                                  request.device.device_id + "'");
    }
  }

  // validate → envelope
  IngestOutcome outcome;
  outcome.errors.assign(batch_.errors().begin(), batch_.errors().end());
  sinks::SinkBatch sink_batch;
  sink_batch.records.reserve(batch_.records().size());
  const envelope::EnvelopeContext envelope_context{request.device.tenant, request.device.device_type,
                                                   pipeline_.config_.instance_id, content_type_, request.protocol,
                                                   unix_ms()};
  std::size_t bytes = 0;
  for (const codecs::CanonicalRecord& record : batch_.records()) {
    if (auto problem = codecs::validate(record, pipeline_.config_.validation, envelope_context.ingest_time_ms)) {
      outcome.errors.push_back(std::move(*problem));
      continue;
    }
    envelope::SealedRecord& sealed = sink_batch.records.emplace_back();
    type.builder.seal(record, envelope_context, sealed);
    bytes += sealed.topic.size() + sealed.key.size() + sealed.route_header.size() + sealed.value.size();
  }
  std::sort(outcome.errors.begin(), outcome.errors.end(),
            [](const codecs::FieldError& a, const codecs::FieldError& b) { return a.index < b.index; });
  metrics.reject(RejectReason::validation, outcome.errors.size());
  if (sink_batch.records.empty()) {
    outcome.status = IngestStatus::all_rejected;
    outcome.message = "no record in the request is valid";
    return outcome;
  }

  // admission
  auto permit = pipeline_.budget_.try_acquire(sink_batch.records.size(), bytes);
  if (!permit) {
    metrics.reject(RejectReason::overloaded, sink_batch.records.size());
    return refusal(IngestStatus::overloaded, "the gateway is at its in-flight limit; retry later");
  }
  Metrics& all_metrics = pipeline_.metrics_;
  all_metrics.inflight_records().Increment(static_cast<double>(sink_batch.records.size()));
  all_metrics.inflight_bytes().Increment(static_cast<double>(bytes));

  // sink → ack
  outcome.accepted = sink_batch.records.size();
  outcome.msg_ids.reserve(outcome.accepted);
  for (const envelope::SealedRecord& sealed : sink_batch.records) outcome.msg_ids.push_back(sealed.msg_id);
  outcome.status = outcome.errors.empty() ? IngestStatus::accepted : IngestStatus::partially_accepted;
  // std::function needs a copyable callable; the permit and outcome move into shared state.
  auto state = std::make_shared<std::tuple<InflightBudget::Permit, IngestOutcome, IngestCallback>>(
      std::move(*permit), std::move(outcome), std::move(done));
  sink_batch.on_complete = [state, &metrics, &all_metrics, bytes, started](std::expected<void, sinks::SinkError> result) {
    auto& [held_permit, final_outcome, callback] = *state;
    all_metrics.inflight_records().Decrement(static_cast<double>(final_outcome.accepted));
    all_metrics.inflight_bytes().Decrement(static_cast<double>(bytes));
    if (result) {
      metrics.accepted->Increment(static_cast<double>(final_outcome.accepted));
      metrics.ack_latency->Observe(std::chrono::duration<double>(Clock::now() - started).count());
    } else {
      metrics.reject(RejectReason::sink_error, final_outcome.accepted);
      final_outcome.status = IngestStatus::sink_failed;
      final_outcome.message = "not durable: " + result.error().message + "; retry with the same msg_ids";
      final_outcome.accepted = 0;
      final_outcome.msg_ids.clear();
    }
    {
      const InflightBudget::Permit released = std::move(held_permit);  // the budget returns before the ack
    }
    callback(std::move(final_outcome));
  };
  pipeline_.sink_.submit(std::move(sink_batch));
  return std::nullopt;
}

}  // namespace telegate::gateway
