#include "telegate/gateway/pipeline.hpp"

#include "telegate/codecs/clock.hpp"
#include "telegate/gateway/catalog.hpp"
#include "telegate/sinks/kafka_admin.hpp"

#include <algorithm>
#include <stdexcept>

namespace telegate::gateway {

namespace {

using Clock = std::chrono::steady_clock;

// "Application/JSON; charset=utf-8" → "application/json"
void normalise_media_type(std::string_view raw, std::string& out) {
  raw = raw.substr(0, raw.find(';'));
  while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) raw.remove_suffix(1);
  while (!raw.empty() && (raw.front() == ' ' || raw.front() == '\t')) raw.remove_prefix(1);
  out.assign(raw);
  // ASCII only, as media types are: std::tolower is a call through the locale per character.
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

IngestOutcome refusal(IngestStatus status, std::string message) {
  IngestOutcome outcome;
  outcome.status = status;
  outcome.message = std::move(message);
  return outcome;
}

IngestOutcome overloaded(InflightBudget::Refusal why, const DeviceIdentity& device) {
  switch (why) {
    case InflightBudget::Refusal::budget:
      return refusal(IngestStatus::overloaded, "the gateway is at its in-flight limit; retry later");
    case InflightBudget::Refusal::fair_share:
      return refusal(IngestStatus::overloaded, "the gateway is busy and tenant '" + device.tenant +
                                                   "' (or its device type '" + device.device_type +
                                                   "') holds its fair share of it; retry later");
    case InflightBudget::Refusal::device_cap: break;
  }
  return refusal(IngestStatus::overloaded, "this device has too many records in flight; retry once they are acknowledged");
}

// A record's size as the Kafka producer measures it against message.max.bytes (librdkafka's
// rd_kafka_msg_max_wire_size: key, value, serialised headers and at most 36 bytes of a v2
// record's varint framing), rounded up so that whatever passes here passes there.
std::size_t kafka_record_bytes(const envelope::SealedRecord& record) {
  constexpr std::size_t kFraming = 40;
  constexpr std::size_t kPerHeader = 10;  // two varint lengths
  std::size_t bytes = kFraming + record.key.size() + record.value.size() + kPerHeader + envelope::kRouteHeader.size() +
                      record.route_header.size();
  for (const auto& [name, value] : record.headers) bytes += kPerHeader + name.size() + value.size();
  return bytes;
}

// The first record of the request that Kafka would refuse for its size: a refusal for the whole
// request, before anything is produced (produced, it would abort the transaction it shares with
// other devices' records).
std::optional<IngestOutcome> oversized_record(const std::vector<envelope::SealedRecord>& records, std::size_t limit) {
  for (const envelope::SealedRecord& record : records) {
    if (const std::size_t bytes = kafka_record_bytes(record); bytes > limit) {
      return refusal(IngestStatus::record_too_large,
                     "record with msg_id '" + record.msg_id.substr(0, 64) + "' is " + std::to_string(bytes) +
                         " bytes as a Kafka record; the limit is " + std::to_string(limit) +
                         " (sink.kafka.max_record_bytes)");
    }
  }
  return std::nullopt;
}

}  // namespace

DeviceTypeStages::DeviceTypeStages(std::shared_ptr<const DeviceTypeVersion> type)
    : type_(std::move(type)), codec_(type_->codec->instantiate()), builder_(type_->definition.envelope_format, type_->topic) {}

DeviceTypeStages::~DeviceTypeStages() = default;

std::optional<IngestOutcome> DeviceTypeStages::run(const Input& input, codecs::DecodedBatch& batch,
                                                   IngestOutcome& outcome, std::vector<envelope::SealedRecord>& sealed) {
  // codec
  normalise_media_type(input.content_type, content_type_);
  const auto& readable = codec_->content_types();
  if (std::find(readable.begin(), readable.end(), content_type_) == readable.end()) {
    std::string accepted;
    for (const auto& name : readable) accepted += (accepted.empty() ? "" : ", ") + std::string(name);
    return refusal(IngestStatus::unsupported_media_type,
                   "content type '" + content_type_ + "' is not read by codec " + std::string(codec_->name()) +
                       " (accepted: " + accepted + ")");
  }
  batch.clear();
  const codecs::DecodeContext context{input.device.tenant, input.device.device_id, envelope::to_string(input.protocol),
                                      content_type_};
  if (auto decoded = codec_->decode(input.body, context, batch); !decoded) {
    IngestOutcome failed = refusal(decoded.error().code == codecs::CodecErrc::too_many_records ? IngestStatus::too_large
                                                                                                : IngestStatus::malformed,
                                   decoded.error().message);
    failed.offset = decoded.error().offset;
    return failed;
  }

  // auth: a device writes only as itself, whatever its payload says
  if (input.enforce_device) {
    for (const codecs::CanonicalRecord& record : batch.records()) {
      if (record.device_id != input.device.device_id) {
        return refusal(IngestStatus::forbidden, "record " + std::to_string(record.index) + " names device '" +
                                                    record.device_id.substr(0, 64) + "', but the credentials are for '" +
                                                    input.device.device_id + "'");
      }
    }
  }

  // validate → envelope
  outcome.errors.assign(batch.errors().begin(), batch.errors().end());
  // `sealed` may hold a recycled batch's records: overwrite them (their strings keep their
  // capacity), append past them, and drop what is left over.
  std::size_t used = 0;
  sealed.reserve(batch.records().size());
  const envelope::EnvelopeContext envelope_context{input.device.tenant, type_->definition.name, input.gateway_id,
                                                   content_type_, input.protocol, codecs::unix_ms_now()};
  const auto& allowed_types = type_->definition.message_types;
  for (const codecs::CanonicalRecord& record : batch.records()) {
    const std::int64_t now_ms = input.judge_time ? envelope_context.ingest_time_ms : record.event_time_ms;
    if (auto problem = codecs::validate(record, type_->validation, now_ms)) {
      outcome.errors.push_back(std::move(*problem));
      continue;
    }
    if (!allowed_types.empty() && std::find(allowed_types.begin(), allowed_types.end(), record.type) == allowed_types.end()) {
      outcome.errors.push_back({record.index, "type",
                                "device type " + type_->definition.name + " does not produce " +
                                    std::string(codecs::to_string(record.type)) + " records"});
      continue;
    }
    builder_.seal(record, envelope_context, used < sealed.size() ? sealed[used] : sealed.emplace_back());
    ++used;
  }
  sealed.resize(used);
  std::sort(outcome.errors.begin(), outcome.errors.end(),
            [](const codecs::FieldError& a, const codecs::FieldError& b) { return a.index < b.index; });
  outcome.native_reply = codec_->native_reply();
  return std::nullopt;
}

IngestPipeline::IngestPipeline(const GatewayConfig& config, sinks::Sink& sink, InflightBudget& budget, Quotas& quotas,
                               Metrics& metrics)
    : config_(config),
      sink_(sink),
      budget_(budget),
      dedup_(std::make_unique<DedupWindow>(config.dedup.max_entries, config.dedup.window)),
      journal_(config.sink.kind == SinkKind::kafka && config.dedup.max_entries > 0
                   ? sinks::ControlRecord{config.dedup.journal_topic,
                                          sinks::instance_partition(config.instance_id, config.dedup.journal_partitions),
                                          config.instance_id, {}}
                   : sinks::ControlRecord{}),
      recycler_(std::make_shared<sinks::RecordRecycler>(kRecycledBytes)),
      quotas_(quotas),
      metrics_(metrics) {}

IngestPipeline::~IngestPipeline() = default;

std::unique_ptr<PipelineWorker> IngestPipeline::make_worker() const { return std::make_unique<PipelineWorker>(*this); }

PipelineWorker::PipelineWorker(const IngestPipeline& pipeline) : pipeline_(pipeline) {}

PipelineWorker::~PipelineWorker() = default;

std::optional<IngestOutcome> PipelineWorker::drop_duplicates(const DeviceIdentity& device,
                                                             std::vector<envelope::SealedRecord>& records,
                                                             Clock::time_point now,
                                                             DedupWindow::Reservation& reserved,
                                                             IngestOutcome& outcome) {
  DedupWindow& dedup = *pipeline_.dedup_;
  if (!dedup.enabled()) return std::nullopt;
  dedup_msg_ids_.clear();
  for (const envelope::SealedRecord& record : records) {
    if (!record.msg_id_generated) dedup_msg_ids_.push_back(record.msg_id);
  }
  if (dedup_msg_ids_.empty()) return std::nullopt;  // generated msg_ids are new by construction
  dedup_keys_.resize(dedup_msg_ids_.size());
  DedupWindow::KeyHasher(device.tenant, device.device_id)(dedup_msg_ids_, dedup_keys_);
  dedup_seen_.resize(dedup_keys_.size());
  reserved.keys.reserve(dedup_keys_.size());
  dedup.reserve_all(dedup_keys_, now, dedup_seen_, reserved);
  std::size_t kept = 0;
  std::size_t k = 0;  // index into dedup_keys_: the records with device-supplied msg_ids, in order
  for (std::size_t i = 0; i < records.size(); ++i) {
    envelope::SealedRecord& record = records[i];
    bool keep = true;
    if (!record.msg_id_generated) {
      const DedupWindow::Key& key = dedup_keys_[k];
      switch (dedup_seen_[k++]) {
        case DedupWindow::Seen::no:
          break;
        case DedupWindow::Seen::committed:
          keep = false;
          ++outcome.duplicates;
          break;
        case DedupWindow::Seen::in_flight:
          // Reserved by this request (an earlier record with the same msg_id: written once), or
          // by an earlier request, whose copy may yet fail.
          if (std::find(reserved.keys.begin(), reserved.keys.end(), key) != reserved.keys.end()) {
            keep = false;
            ++outcome.duplicates;
            break;
          }
          dedup.settle(reserved, false);
          return refusal(IngestStatus::sink_failed, "record with msg_id '" + record.msg_id.substr(0, 64) +
                                                        "' is still being written by an earlier request; retry later "
                                                        "with the same msg_ids");
      }
    }
    if (keep) {
      if (kept != i) std::swap(records[kept], record);
      ++kept;
    }
  }
  records.resize(kept);
  return std::nullopt;
}

PipelineWorker::TenantSlot& PipelineWorker::tenant_slot(const DeviceIdentity& device) {
  auto found = tenants_.find(device.tenant);
  if (found == tenants_.end()) {
    found = tenants_.emplace(device.tenant, TenantSlot{pipeline_.quotas_.tenant(device.tenant), {}, {}}).first;
  }
  return found->second;
}

const TenantMetrics& PipelineWorker::tenant_metrics(TenantSlot& slot, const DeviceIdentity& device,
                                                    envelope::SourceProtocol protocol) {
  const TenantMetrics*& metrics = slot.metrics[static_cast<std::size_t>(protocol) - 1];
  if (metrics == nullptr) metrics = &pipeline_.metrics_.tenant(protocol, device.tenant);
  return *metrics;
}

std::expected<InflightBudget::Permit, IngestOutcome> PipelineWorker::admit(const IngestRequest& request,
                                                                           TenantSlot& slot, std::size_t records,
                                                                           std::size_t bytes, Clock::time_point now) {
  const DeviceIdentity& device = request.device;
  auto type = slot.device_types.find(device.device_type);
  if (type == slot.device_types.end()) {
    type = slot.device_types.emplace(device.device_type, pipeline_.quotas_.device_type(device.tenant, device.device_type))
               .first;
  }
  Quotas::Device& device_state = pipeline_.quotas_.device(device.tenant, device.device_id, device_key_);
  const std::array<TokenBucket*, 3> rates{device_state.rate.get(), type->second.rate, slot.layer.rate};
  const auto count = static_cast<double>(records);
  if (const auto wait = Quotas::take(rates, count, now)) {
    IngestOutcome refused = refusal(IngestStatus::quota_exceeded, "over the rate quota; retry later");
    refused.retry_after = std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(*wait));
    return std::unexpected(std::move(refused));
  }
  auto permit = pipeline_.budget_.try_acquire(records, bytes, {slot.layer.share, type->second.share, &device_state.inflight});
  if (permit) return std::move(*permit);
  Quotas::give_back(rates, count);  // refused for load, not for rate: the device did not spend its quota
  return std::unexpected(overloaded(permit.error(), device));
}

std::optional<IngestOutcome> PipelineWorker::ingest(const IngestRequest& request, IngestCallback done) {
  const auto started = Clock::now();
  const ProtocolMetrics& metrics = pipeline_.metrics_.protocol(request.protocol);
  TenantSlot& slot = tenant_slot(request.device);
  const TenantMetrics& tenant = tenant_metrics(slot, request.device, request.protocol);
  // Every record that reaches here ends in exactly one of acknowledged, rejected or failed.
  const auto refuse_all = [&](RejectReason reason, std::size_t records, IngestOutcome refused) {
    metrics.reject(reason, records);
    tenant.reject(reason, records);
    return std::optional<IngestOutcome>(std::move(refused));
  };
  const DeviceTypeVersion* type = request.catalog.device_type(request.device.device_type);
  if (type == nullptr) {
    tenant.received->Increment();
    return refuse_all(RejectReason::decode, 1,
                      refusal(IngestStatus::unsupported_media_type,
                              "device type '" + request.device.device_type + "' is not defined (deleted?)"));
  }
  if (const auto early = pipeline_.budget_.refuses_one({slot.layer.share, nullptr, nullptr})) {
    tenant.received->Increment();  // not decoded: counted as one record, like a malformed body
    return refuse_all(RejectReason::overloaded, 1, overloaded(*early, request.device));
  }
  std::unique_ptr<DeviceTypeStages>& stages = types_[request.device.device_type];
  if (!stages || &stages->type() != type) {
    stages = std::make_unique<DeviceTypeStages>(request.catalog.device_type_shared(request.device.device_type));
  }

  IngestOutcome outcome;
  sinks::SinkBatch sink_batch;
  sink_batch.records = pipeline_.recycler_->take();
  sink_batch.recycler = pipeline_.recycler_;
  const DeviceTypeStages::Input input{request.device, request.content_type, request.body, request.protocol,
                                      pipeline_.config_.instance_id};
  std::optional<IngestOutcome> rejected = stages->run(input, batch_, outcome, sink_batch.records);
  if (!rejected && pipeline_.config_.sink.kind == SinkKind::kafka) {
    rejected = oversized_record(sink_batch.records, pipeline_.config_.sink.max_record_bytes);
  }
  if (rejected) {
    const std::size_t records = std::max<std::size_t>(batch_.total(), 1);
    tenant.received->Increment(static_cast<double>(records));
    return refuse_all(rejected->status == IngestStatus::forbidden ? RejectReason::forbidden : RejectReason::decode,
                      records, std::move(*rejected));
  }
  metrics.received->Increment(static_cast<double>(batch_.total()));
  tenant.received->Increment(static_cast<double>(batch_.total()));
  metrics.request_records->Observe(static_cast<double>(batch_.total()));
  metrics.reject(RejectReason::validation, outcome.errors.size());
  tenant.reject(RejectReason::validation, outcome.errors.size());
  if (sink_batch.records.empty()) {
    if (outcome.errors.empty()) {  // nothing to write (e.g. an app's status message): accepted
      tenant.acknowledged->Increment(static_cast<double>(batch_.total()));
      return outcome;
    }
    outcome.status = IngestStatus::all_rejected;
    outcome.message = "no record in the request is valid";
    return outcome;
  }
  // de-duplicate: every record is acknowledged (its msg_id listed) but a retry of a committed
  // one is not written again, and one whose first copy is still in flight must come back later.
  std::size_t msg_id_bytes = 0;
  for (const envelope::SealedRecord& sealed : sink_batch.records) msg_id_bytes += sealed.msg_id.size();
  outcome.msg_ids.reserve(sink_batch.records.size(), msg_id_bytes);
  for (const envelope::SealedRecord& sealed : sink_batch.records) outcome.msg_ids.push_back(sealed.msg_id);
  const std::size_t valid = sink_batch.records.size();
  DedupWindow::Reservation reserved;
  if (auto refused = drop_duplicates(request.device, sink_batch.records, started, reserved, outcome)) {
    return refuse_all(RejectReason::overloaded, valid, std::move(*refused));
  }
  if (sink_batch.records.empty()) {  // a retry of records all committed already
    metrics.deduplicated->Increment(static_cast<double>(outcome.duplicates));
    tenant.deduplicated->Increment(static_cast<double>(outcome.duplicates));
    tenant.acknowledged->Increment(static_cast<double>(outcome.duplicates));
    outcome.accepted = outcome.duplicates;
    outcome.status = outcome.errors.empty() ? IngestStatus::accepted : IngestStatus::partially_accepted;
    return outcome;
  }
  std::size_t bytes = 0;
  sink_batch.recycle_bytes = sink_batch.records.capacity() * sizeof(envelope::SealedRecord);
  for (const envelope::SealedRecord& sealed : sink_batch.records) {
    bytes += sealed.topic.size() + sealed.key.size() + sealed.route_header.size() + sealed.value.size();
    sink_batch.recycle_bytes += sinks::RecordRecycler::record_bytes(sealed);
  }

  // admission: rate quotas, then the in-flight budget and its fair shares
  auto permit = admit(request, slot, sink_batch.records.size(), bytes, started);
  if (!permit) {
    pipeline_.dedup_->settle(reserved, false);
    const RejectReason reason =
        permit.error().status == IngestStatus::quota_exceeded ? RejectReason::quota_exceeded : RejectReason::overloaded;
    return refuse_all(reason, valid, std::move(permit.error()));
  }
  add_records(*metrics.deduplicated, outcome.duplicates);
  tenant.admitted->Increment(static_cast<double>(sink_batch.records.size()));

  // sink → ack
  outcome.accepted = sink_batch.records.size() + outcome.duplicates;
  outcome.status = outcome.errors.empty() ? IngestStatus::accepted : IngestStatus::partially_accepted;
  if (pipeline_.journal() && !reserved.keys.empty()) {
    DedupWindow::append_journal(reserved.keys, sink_batch.control.emplace_back(pipeline_.journal_).value);
  }
  // std::function needs a copyable callable; the permit and outcome move into shared state.
  auto state = std::make_shared<std::tuple<InflightBudget::Permit, IngestOutcome, IngestCallback, DedupWindow::Reservation>>(
      std::move(*permit), std::move(outcome), std::move(done), std::move(reserved));
  const std::size_t written = sink_batch.records.size();
  DedupWindow& dedup = *pipeline_.dedup_;
  sink_batch.on_complete = [state, &metrics, &tenant, &dedup, written, started](
                               sinks::SinkResult result) {
    auto& [held_permit, final_outcome, callback, reservation] = *state;
    dedup.settle(reservation, result.has_value());
    if (result) {
      metrics.accepted->Increment(static_cast<double>(written));
      metrics.ack_latency->Observe(std::chrono::duration<double>(Clock::now() - started).count());
      tenant.acknowledged->Increment(static_cast<double>(final_outcome.accepted));
      add_records(*tenant.deduplicated, final_outcome.duplicates);
      if (*result == sinks::Durable::spooled) tenant.spooled->Increment(static_cast<double>(written));
    } else if (result.error().code == sinks::SinkErrc::too_large) {
      // The broker's own limit (the topic's max.message.bytes) is below the gateway's: as
      // permanent as the refusal before produce, and counted the same way.
      metrics.reject(RejectReason::decode, written);
      tenant.reject(RejectReason::decode, final_outcome.accepted);
      final_outcome = refusal(IngestStatus::record_too_large, "refused by Kafka: " + result.error().message);
    } else {
      metrics.reject(RejectReason::sink_error, written);
      tenant.failed->Increment(static_cast<double>(final_outcome.accepted));
      final_outcome.status = IngestStatus::sink_failed;
      final_outcome.message = "not durable: " + result.error().message + "; retry with the same msg_ids";
      final_outcome.accepted = 0;
      final_outcome.duplicates = 0;
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
