// The ingest pipeline every listener feeds: auth'd request → codec → validate → envelope →
// admission → sink → outcome back to the listener. Listeners own the protocol; this owns the
// data. Ack rule: a positive outcome is produced only from the sink's completion.
#pragma once

#include <array>
#include <chrono>
#include <expected>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "telegate/codecs/codec.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/admission.hpp"
#include "telegate/gateway/auth.hpp"
#include "telegate/gateway/config.hpp"
#include "telegate/gateway/dedup.hpp"
#include "telegate/gateway/metrics.hpp"
#include "telegate/gateway/quotas.hpp"
#include "telegate/sinks/sink.hpp"

namespace telegate::gateway {

class Catalog;
struct DeviceTypeVersion;

struct IngestRequest {
  const Catalog& catalog;  // the snapshot the listener authenticated against; held by it for the call
  const DeviceIdentity& device;
  std::string_view content_type;  // as sent; parameters and case are normalised here
  std::string_view body;
  envelope::SourceProtocol protocol;
};

enum class IngestStatus : std::uint8_t {
  accepted,                // every record durable
  partially_accepted,      // the valid records durable, the others listed in `errors`
  all_rejected,            // no record valid; nothing written
  malformed,               // the body could not be decoded at all
  too_large,               // more records than decode.max_records
  record_too_large,        // a record larger than the sink takes (sink.kafka.max_record_bytes, the topic's
                           // max.message.bytes): permanent, nothing of the request written
  unsupported_media_type,  // the device type's codec does not read this content type
  forbidden,               // a record names another device
  overloaded,              // the in-flight budget, the tenant's fair share or the device cap: retry later
  quota_exceeded,          // a rate quota: too many requests, retry after `retry_after`
  sink_failed,             // not durable: retry later with the same msg_ids
};

// The msg_ids of a request's accepted records, in request order, packed into one string: two
// allocations per request instead of one heap string per msg_id (a UUID is longer than the
// small-string buffer). Lifecycle: filled by the pipeline on the request's thread, moved with the
// outcome to the listener that writes the reply, read there.
class MsgIdList {
 public:
  void reserve(std::size_t count, std::size_t bytes) {
    ends_.reserve(count);
    text_.reserve(bytes);
  }
  void push_back(std::string_view msg_id) {
    text_ += msg_id;
    ends_.push_back(text_.size());
  }
  void clear() noexcept {
    text_.clear();
    ends_.clear();
  }
  std::size_t size() const noexcept { return ends_.size(); }
  bool empty() const noexcept { return ends_.empty(); }
  std::string_view operator[](std::size_t i) const noexcept {
    const std::size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(text_).substr(begin, ends_[i] - begin);
  }

 private:
  std::string text_;
  std::vector<std::size_t> ends_;  // one past each msg_id's last byte in text_
};

struct IngestOutcome {
  IngestStatus status = IngestStatus::accepted;
  std::size_t accepted = 0;               // durable, including `duplicates`
  std::size_t duplicates = 0;             // retries of records already committed: not written again
  std::vector<codecs::FieldError> errors;  // per-record problems, by request index
  MsgIdList msg_ids;                       // of the accepted records, in request order
  std::string message;                     // for request-level failures
  std::optional<std::size_t> offset;       // byte offset of a malformed body's problem
  // quota_exceeded: when the rate quota will let the records through (whole seconds, ≥ 1).
  std::optional<std::chrono::seconds> retry_after;
  // The reply the device's own app expects on success (static storage), if its codec has one.
  std::optional<codecs::NativeReply> native_reply;
};

// What a "retry later" refusal advertises (HTTP Retry-After, CoAP Max-Age): the rate quota's
// own wait, or admission.retry_after for load.
inline std::chrono::seconds retry_after(const IngestOutcome& outcome, const AdmissionConfig& admission) noexcept {
  return outcome.retry_after.value_or(admission.retry_after);
}

// The per-device-type stages: codec → device check → validation → envelope. Shared by the
// pipeline, the admin dry run and the sample checks, so all three see exactly what traffic sees.
// Lifecycle: built from one DeviceTypeVersion (kept alive here) by one thread, used only there.
class DeviceTypeStages {
 public:
  explicit DeviceTypeStages(std::shared_ptr<const DeviceTypeVersion> type);
  ~DeviceTypeStages();

  struct Input {
    const DeviceIdentity& device;
    std::string_view content_type;  // as sent
    std::string_view body;
    envelope::SourceProtocol protocol;
    std::string_view gateway_id;
    bool enforce_device = true;  // samples and dry runs have no real device to enforce
    // Stored samples must keep passing as they age, so their times are not judged against the
    // gateway clock (max_age, max_future_skew); everything else is.
    bool judge_time = true;
  };
  // Fills `outcome.errors` and `sealed`; returns a refusal when the request as a whole fails.
  // `sealed` may come in holding a recycled batch's records: they are overwritten, so that
  // their strings' capacity is reused (after a refusal they are left as they were).
  // `batch` holds the decoded records afterwards (for dry runs).
  std::optional<IngestOutcome> run(const Input& input, codecs::DecodedBatch& batch, IngestOutcome& outcome,
                                   std::vector<envelope::SealedRecord>& sealed);
  const DeviceTypeVersion& type() const noexcept { return *type_; }
  const std::shared_ptr<const DeviceTypeVersion>& shared_type() const noexcept { return type_; }
  const codecs::Codec& codec() const noexcept { return *codec_; }

 private:
  std::shared_ptr<const DeviceTypeVersion> type_;
  std::unique_ptr<codecs::Codec> codec_;
  envelope::EnvelopeBuilder builder_;
  std::string content_type_;
};

using IngestCallback = std::function<void(IngestOutcome)>;

class PipelineWorker;

// Shared by every listener thread; immutable after construction (start-up, main thread).
class IngestPipeline {
 public:
  // `budget` and `quotas` must outlive the sink: the permits of batches it still holds point
  // into them.
  IngestPipeline(const GatewayConfig& config, sinks::Sink& sink, InflightBudget& budget, Quotas& quotas,
                 Metrics& metrics);
  ~IngestPipeline();
  // One worker per listener thread: workers own codec and envelope state.
  std::unique_ptr<PipelineWorker> make_worker() const;
  DedupWindow& dedup() const noexcept { return *dedup_; }
  // The journal's placement (value empty), or nullptr when batches carry no journal.
  const sinks::ControlRecord* journal() const noexcept { return journal_.topic.empty() ? nullptr : &journal_; }

 private:
  friend class PipelineWorker;
  const GatewayConfig& config_;
  sinks::Sink& sink_;
  InflightBudget& budget_;
  std::unique_ptr<DedupWindow> dedup_;  // shared by every worker; thread-safe
  // Where each batch's de-duplication journal goes (Kafka: a control record committed with the
  // batch); an empty topic when the sink keeps no journal.
  sinks::ControlRecord journal_;
  // Sealed-record vectors of finished batches, reused by every worker. Bound: about 60 000
  // location records of ~500 bytes (record and strings), four times what the benchmark load
  // (64 connections × 250 records) keeps in flight.
  static constexpr std::size_t kRecycledBytes = 32u << 20;
  std::shared_ptr<sinks::RecordRecycler> recycler_;
  Quotas& quotas_;                      // shared by every worker; thread-safe
  Metrics& metrics_;
};

// Lifecycle: created by IngestPipeline::make_worker() for one listener thread and used only on
// that thread. Completions run on sink threads and touch none of the worker's state. Stages are
// rebuilt lazily when a request's catalog snapshot carries a new version of its device type.
class PipelineWorker {
 public:
  explicit PipelineWorker(const IngestPipeline& pipeline);
  ~PipelineWorker();

  // Runs the request through the pipeline. Returns the outcome right away when nothing goes to
  // the sink (refusals); otherwise returns nullopt and calls `done` exactly once, from a sink
  // thread, when the records are durable or have failed.
  std::optional<IngestOutcome> ingest(const IngestRequest& request, IngestCallback done);

 private:
  // Removes from `records` the retries of committed records (counted in outcome.duplicates) and
  // reserves the others; a refusal when one is still in flight from an earlier request. `now`
  // is the request's arrival, read once for the window, the quotas and the ack latency.
  std::optional<IngestOutcome> drop_duplicates(const DeviceIdentity& device, std::vector<envelope::SealedRecord>& records,
                                               std::chrono::steady_clock::time_point now,
                                               DedupWindow::Reservation& reserved, IngestOutcome& outcome);

  // What this worker looked up once per tenant: its quota layers and its counters.
  struct TenantSlot {
    Quotas::Layer layer;
    std::array<const TenantMetrics*, 4> metrics{};  // by protocol, built on first use
    std::unordered_map<std::string, Quotas::Layer> device_types;
  };
  TenantSlot& tenant_slot(const DeviceIdentity& device);
  const TenantMetrics& tenant_metrics(TenantSlot& slot, const DeviceIdentity& device, envelope::SourceProtocol protocol);
  // Rate quotas, then the in-flight shares; a refusal (counted) or the permit.
  std::expected<InflightBudget::Permit, IngestOutcome> admit(const IngestRequest& request, TenantSlot& slot,
                                                             std::size_t records, std::size_t bytes,
                                                             std::chrono::steady_clock::time_point now);

  const IngestPipeline& pipeline_;
  std::unordered_map<std::string, std::unique_ptr<DeviceTypeStages>> types_;
  std::unordered_map<std::string, TenantSlot> tenants_;
  std::string device_key_;  // scratch for Quotas::device()
  // Scratch for drop_duplicates(): one request's keys and what the window held for each.
  std::vector<std::string_view> dedup_msg_ids_;  // the records' device-supplied msg_ids, hashed together
  std::vector<DedupWindow::Key> dedup_keys_;
  std::vector<DedupWindow::Seen> dedup_seen_;
  codecs::DecodedBatch batch_;
};

}  // namespace telegate::gateway
