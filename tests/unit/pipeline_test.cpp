// The ingest pipeline with a fake sink: which outcome each kind of request gets, and that a
// positive outcome comes only from the sink's completion.
#include <doctest/doctest.h>

#include <optional>
#include <thread>

#include "telegate/gateway/catalog.hpp"
#include "telegate/gateway/pipeline.hpp"

using namespace telegate;
using namespace telegate::gateway;

namespace {

// Holds submitted batches until the test completes them, as a real sink would later.
class FakeSink final : public sinks::Sink {
 public:
  std::string_view name() const noexcept override { return "fake"; }
  void start() override {}
  void submit(sinks::SinkBatch batch) override { batches.push_back(std::move(batch)); }
  bool ready() const noexcept override { return true; }
  void stop() override {}
  std::vector<sinks::SinkBatch> batches;
};

const std::string kDevices = "device_types: [{name: tracker}]\n"
                             "tenants: [{name: acme, devices: [{id: truck-1, device_type: tracker, token_sha256: " +
                             sha256_hex("t") + "}]}]\n";
const std::string kYaml = kDevices + "admission: {max_inflight_records: 5}\n";

std::vector<std::string> ids(const MsgIdList& list) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < list.size(); ++i) out.emplace_back(list[i]);
  return out;
}

std::string record(const std::string& device, double lat, const std::string& msg_id = "") {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return R"({"device_id":")" + device + R"(","type":"location","ts":)" + std::to_string(now) +
         (msg_id.empty() ? "" : R"(,"msg_id":")" + msg_id + "\"") + R"(,"lat":)" + std::to_string(lat) +
         R"(,"lon":14})";
}

struct Fixture {
  explicit Fixture(const std::string& yaml = kYaml) : config(parse_config(yaml)) { start(); }
  GatewayConfig config;
  codecs::CodecRegistry codecs;
  // Before the sink: the permits of batches it still holds at the end release into them.
  InflightBudget budget{config.admission.max_inflight_records, config.admission.max_inflight_bytes, 0.8,
                        config.admission.device_max_inflight_records};
  Quotas quotas{config.quotas, budget};
  FakeSink sink;
  Metrics metrics;
  DeviceIdentity device{"acme", "truck-1", "tracker"};
  std::unique_ptr<CatalogManager> catalog;
  std::unique_ptr<IngestPipeline> pipeline;
  std::unique_ptr<PipelineWorker> worker;
  std::optional<IngestOutcome> completed;

  void start() {
    codecs::register_builtin_codecs(codecs);
    catalog = std::make_unique<CatalogManager>(config, codecs, nullptr);
    pipeline = std::make_unique<IngestPipeline>(config, sink, budget, quotas, metrics);
    worker = pipeline->make_worker();
  }

  std::optional<IngestOutcome> ingest(const std::string& body, const std::string& content_type = "application/json") {
    return worker->ingest(IngestRequest{*catalog->current(), device, content_type, body, envelope::SourceProtocol::http},
                          [this](IngestOutcome outcome) { completed = std::move(outcome); });
  }
};

}  // namespace

TEST_CASE("accepted only when the sink completes; the budget is held until then") {
  Fixture f;
  const auto immediate = f.ingest("[" + record("truck-1", 1, "a") + "," + record("truck-1", 2) + "]");
  CHECK_FALSE(immediate.has_value());
  CHECK_FALSE(f.completed.has_value());  // nothing said to the device yet
  REQUIRE(f.sink.batches.size() == 1);
  CHECK(f.sink.batches[0].records.size() == 2);
  CHECK(f.budget.records() == 2);

  f.sink.batches[0].on_complete({});
  REQUIRE(f.completed.has_value());
  CHECK(f.completed->status == IngestStatus::accepted);
  CHECK(f.completed->accepted == 2);
  REQUIRE(f.completed->msg_ids.size() == 2);
  CHECK(f.completed->msg_ids[0] == "a");
  CHECK(f.completed->msg_ids[1].size() == 36);  // generated UUIDv7
  CHECK(f.budget.records() == 0);
}

TEST_CASE("MsgIdList: packed msg_ids read back in order, an empty one included; clear empties it") {
  MsgIdList list;
  list.reserve(3, 8);
  list.push_back("m-1");
  list.push_back("");
  list.push_back("0197c6a2-0000-7000-8000-000000000001");
  CHECK(ids(list) == std::vector<std::string>{"m-1", "", "0197c6a2-0000-7000-8000-000000000001"});
  list.clear();
  CHECK(list.empty());
  list.push_back("x");
  CHECK(ids(list) == std::vector<std::string>{"x"});
}

TEST_CASE("a sink failure becomes a retryable outcome that promises nothing") {
  Fixture f;
  CHECK_FALSE(f.ingest(record("truck-1", 1, "a")).has_value());
  f.sink.batches[0].on_complete(std::unexpected(sinks::SinkError{sinks::SinkErrc::unavailable, "broker down"}));
  REQUIRE(f.completed.has_value());
  CHECK(f.completed->status == IngestStatus::sink_failed);
  CHECK(f.completed->accepted == 0);
  CHECK(f.completed->msg_ids.empty());
  CHECK(f.completed->message.find("broker down") != std::string::npos);
  CHECK(f.budget.records() == 0);
}

TEST_CASE("a record the sink refuses for its size is a permanent refusal that promises nothing") {
  Fixture f;
  CHECK_FALSE(f.ingest(record("truck-1", 1, "a")).has_value());
  f.sink.batches[0].on_complete(
      std::unexpected(sinks::SinkError{sinks::SinkErrc::too_large, "the broker refused a record of 5000 bytes"}));
  REQUIRE(f.completed.has_value());
  CHECK(f.completed->status == IngestStatus::record_too_large);
  CHECK(f.completed->accepted == 0);
  CHECK(f.completed->msg_ids.empty());
  CHECK(f.completed->message.find("5000 bytes") != std::string::npos);
  CHECK(f.budget.records() == 0);
  // Not remembered as written: the same msg_id is judged afresh.
  CHECK_FALSE(f.ingest(record("truck-1", 1, "a")).has_value());
  CHECK(f.sink.batches.size() == 2);
}

TEST_CASE("partial batches: the valid records go to the sink, the others are listed by index") {
  Fixture f;
  CHECK_FALSE(f.ingest("[" + record("truck-1", 91) + "," + record("truck-1", 1) + "]").has_value());
  REQUIRE(f.sink.batches.size() == 1);
  CHECK(f.sink.batches[0].records.size() == 1);
  f.sink.batches[0].on_complete({});
  REQUIRE(f.completed.has_value());
  CHECK(f.completed->status == IngestStatus::partially_accepted);
  REQUIRE(f.completed->errors.size() == 1);
  CHECK(f.completed->errors[0].index == 0);
  CHECK(f.completed->errors[0].field == "lat");
}

TEST_CASE("refusals are immediate and reach no sink") {
  Fixture f;
  auto all_bad = f.ingest(record("truck-1", 95));
  REQUIRE(all_bad.has_value());
  CHECK(all_bad->status == IngestStatus::all_rejected);

  auto other_device = f.ingest(record("truck-2", 1));
  REQUIRE(other_device.has_value());
  CHECK(other_device->status == IngestStatus::forbidden);
  CHECK(other_device->message.find("truck-2") != std::string::npos);

  auto malformed = f.ingest("[{");
  REQUIRE(malformed.has_value());
  CHECK(malformed->status == IngestStatus::malformed);

  auto media = f.ingest(record("truck-1", 1), "text/csv");
  REQUIRE(media.has_value());
  CHECK(media->status == IngestStatus::unsupported_media_type);

  auto charset = f.ingest(record("truck-1", 1), "Application/JSON; charset=utf-8");
  CHECK_FALSE(charset.has_value());  // parameters and case do not matter
  CHECK(f.sink.batches.size() == 1);
}

TEST_CASE("over the in-flight budget: overloaded, and nothing submitted") {
  Fixture f;
  std::string five = "[";  // the whole budget: above its low watermark (4), so a refusal pauses
  for (int i = 0; i < 5; ++i) five += (i ? "," : "") + record("truck-1", 1);
  five += "]";
  CHECK_FALSE(f.ingest(five).has_value());
  auto refused = f.ingest("[" + record("truck-1", 1) + "," + record("truck-1", 2) + "]");
  REQUIRE(refused.has_value());
  CHECK(refused->status == IngestStatus::overloaded);
  CHECK(f.sink.batches.size() == 1);
  CHECK(f.budget.above_high_watermark());
  f.sink.batches[0].on_complete({});
  CHECK_FALSE(f.budget.above_high_watermark());
  CHECK_FALSE(f.ingest(record("truck-1", 1)).has_value());
}

TEST_CASE("a retry of committed records is acknowledged again without being written again") {
  Fixture f;
  const std::string body = "[" + record("truck-1", 1, "m-1") + "," + record("truck-1", 2, "m-2") + "]";
  CHECK_FALSE(f.ingest(body).has_value());
  f.sink.batches[0].on_complete({});
  REQUIRE(f.completed.has_value());
  CHECK(f.completed->duplicates == 0);

  // The device did not hear the ack and sends the same two records plus a new one.
  const auto retry = f.ingest("[" + record("truck-1", 1, "m-1") + "," + record("truck-1", 2, "m-2") + "," +
                              record("truck-1", 3, "m-3") + "]");
  CHECK_FALSE(retry.has_value());
  REQUIRE(f.sink.batches.size() == 2);
  REQUIRE(f.sink.batches[1].records.size() == 1);  // only the new one is written
  CHECK(f.sink.batches[1].records[0].msg_id == "m-3");
  f.sink.batches[1].on_complete({});
  CHECK(f.completed->status == IngestStatus::accepted);
  CHECK(f.completed->accepted == 3);
  CHECK(f.completed->duplicates == 2);
  CHECK(ids(f.completed->msg_ids) == std::vector<std::string>{"m-1", "m-2", "m-3"});

  // A retry of nothing but committed records is answered at once.
  const auto all_duplicates = f.ingest(record("truck-1", 1, "m-1"));
  REQUIRE(all_duplicates.has_value());
  CHECK(all_duplicates->status == IngestStatus::accepted);
  CHECK(all_duplicates->duplicates == 1);
  CHECK(f.sink.batches.size() == 2);
}

TEST_CASE("a finished batch's records are overwritten by the next request, sealed as if fresh") {
  Fixture f;
  CHECK_FALSE(f.ingest("[" + record("truck-1", 1, "a-1") + "," + record("truck-1", 2, "a-2") + "," +
                       record("truck-1", 3, "a-3") + "]")
                  .has_value());
  REQUIRE(f.sink.batches.size() == 1);
  const char* first_value = f.sink.batches[0].records[0].value.data();
  const std::size_t value_capacity = f.sink.batches[0].records[0].value.capacity();
  f.sink.batches[0].on_complete({});
  f.sink.batches.clear();  // the sink lets go of the batch: its records go back to the pipeline
  // Take what malloc would hand out again for that size, so that the same buffer below means reuse.
  std::vector<std::string> holders(8);
  for (std::string& holder : holders) holder.reserve(value_capacity);

  // Fewer records, one without msg_id: nothing of the three earlier ones may show through.
  CHECK_FALSE(f.ingest("[" + record("truck-1", 7, "b-1") + "," + record("truck-1", 8) + "]").has_value());
  REQUIRE(f.sink.batches.size() == 1);
  const auto& records = f.sink.batches[0].records;
  REQUIRE(records.size() == 2);
  CHECK(records[0].value.data() == first_value);  // the same buffer, not a new allocation
  CHECK(records[0].msg_id == "b-1");
  CHECK_FALSE(records[0].msg_id_generated);
  CHECK(records[1].msg_id_generated);
  CHECK(records[1].msg_id.size() == 36);
  for (std::size_t i = 0; i < records.size(); ++i) {
    CHECK(records[i].key == "truck-1");
    CHECK(records[i].route_header.find("&id=" + records[i].msg_id) != std::string::npos);
    const auto decoded = envelope::decode_envelope(records[i].value, envelope::Format::protobuf);
    REQUIRE(decoded.has_value());
    CHECK(decoded->record.msg_id == records[i].msg_id);
    CHECK(decoded->record.location.lat == doctest::Approx(7.0 + static_cast<double>(i)));
  }
  f.sink.batches[0].on_complete({});
  CHECK(ids(f.completed->msg_ids) == std::vector<std::string>{"b-1", records[1].msg_id});
}

TEST_CASE("a retry racing its first copy waits; a failed first copy lets the retry through") {
  Fixture f;
  CHECK_FALSE(f.ingest(record("truck-1", 1, "race")).has_value());
  const auto racing = f.ingest(record("truck-1", 1, "race"));
  REQUIRE(racing.has_value());
  CHECK(racing->status == IngestStatus::sink_failed);  // 503: retry later, same msg_id
  CHECK(racing->message.find("still being written") != std::string::npos);

  f.sink.batches[0].on_complete(std::unexpected(sinks::SinkError{sinks::SinkErrc::unavailable, "broker down"}));
  CHECK_FALSE(f.ingest(record("truck-1", 1, "race")).has_value());  // not durable before: written now
  CHECK(f.sink.batches.size() == 2);
}

TEST_CASE("the same msg_id twice in one request is written once; generated ids are never de-duplicated") {
  Fixture f;
  CHECK_FALSE(f.ingest("[" + record("truck-1", 1, "twice") + "," + record("truck-1", 1, "twice") + "]").has_value());
  REQUIRE(f.sink.batches.size() == 1);
  CHECK(f.sink.batches[0].records.size() == 1);
  f.sink.batches[0].on_complete({});
  CHECK(f.completed->duplicates == 1);

  CHECK_FALSE(f.ingest(record("truck-1", 1)).has_value());
  f.sink.batches[1].on_complete({});
  CHECK_FALSE(f.ingest(record("truck-1", 1)).has_value());  // same content, new generated id: a new record
  CHECK(f.sink.batches.size() == 3);
}

TEST_CASE("the de-duplication window forgets by age and by size, and can be turned off") {
  DedupWindow window(32, std::chrono::seconds(3600));
  const auto key = [](int i) { return DedupWindow::key("acme", "truck-1", "m-" + std::to_string(i)); };
  for (int i = 0; i < 1000; ++i) {
    DedupWindow::Reservation reserved;
    REQUIRE(window.reserve(key(i), reserved) == DedupWindow::Seen::no);
    window.settle(reserved, true);
  }
  CHECK(window.size() <= 2 * (32 + 16));  // up to twice max_entries, and per-shard rounding
  DedupWindow::Reservation again;
  CHECK(window.reserve(key(999), again) == DedupWindow::Seen::committed);
  CHECK(window.reserve(key(0), again) == DedupWindow::Seen::no);  // evicted long ago

  CHECK(DedupWindow::key("acme", "truck-1", "m-1") != DedupWindow::key("acme", "truck-11", "m-"));
  CHECK(DedupWindow::key("a", "b", "c") != DedupWindow::key("b", "a", "c"));

  DedupWindow off(0, std::chrono::seconds(1));
  DedupWindow::Reservation none;
  CHECK(off.reserve(key(1), none) == DedupWindow::Seen::no);
  CHECK(off.reserve(key(1), none) == DedupWindow::Seen::no);
  CHECK(none.generation == 0);  // nothing to settle
}

TEST_CASE("forgetting failed keys leaves every other key of the window findable") {
  // Enough keys that probe runs in the open-addressing table overlap and wrap, so that
  // deleting from the middle of a run must move later entries up to keep them reachable.
  DedupWindow window(100'000, std::chrono::seconds(3600));
  const auto key = [](int i) { return DedupWindow::key("acme", "truck-1", "k-" + std::to_string(i)); };
  constexpr int kKeys = 20'000;
  std::vector<DedupWindow::Key> failing, committing;
  for (int i = 0; i < kKeys; ++i) (i % 3 == 0 ? failing : committing).push_back(key(i));
  const auto now = DedupWindow::Clock::now();
  DedupWindow::Reservation failed, committed;
  std::vector<DedupWindow::Seen> seen(committing.size());
  window.reserve_all(committing, now, seen, committed);
  window.reserve_all(failing, now, std::span(seen).first(failing.size()), failed);
  REQUIRE(committed.keys.size() == committing.size());
  REQUIRE(failed.keys.size() == failing.size());
  window.settle(failed, false);
  window.settle(committed, true);
  CHECK(window.size() == committing.size());
  int wrong = 0;
  for (int i = 0; i < kKeys; ++i) {
    const auto expected = i % 3 == 0 ? DedupWindow::Seen::no : DedupWindow::Seen::committed;
    DedupWindow::Reservation again;
    if (window.reserve(key(i), again) != expected) ++wrong;
  }
  CHECK(wrong == 0);
}

TEST_CASE("entries older than the window are forgotten") {
  DedupWindow window(1000, std::chrono::seconds(1));
  const auto key = DedupWindow::key("acme", "truck-1", "old");
  DedupWindow::Reservation reserved;
  REQUIRE(window.reserve(key, reserved) == DedupWindow::Seen::no);
  window.settle(reserved, true);
  DedupWindow::Reservation again;
  CHECK(window.reserve(key, again) == DedupWindow::Seen::committed);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK(window.reserve(key, again) == DedupWindow::Seen::no);
}

TEST_CASE("over a rate quota: quota_exceeded with the wait, and the tokens of a refusal for load come back") {
  Fixture f(kYaml + "quotas: {device: {records_per_second: 1, burst: 3}}\n");
  CHECK_FALSE(f.ingest("[" + record("truck-1", 1) + "," + record("truck-1", 2) + "]").has_value());
  const auto refused = f.ingest("[" + record("truck-1", 1) + "," + record("truck-1", 2) + "]");
  REQUIRE(refused.has_value());
  CHECK(refused->status == IngestStatus::quota_exceeded);
  REQUIRE(refused->retry_after.has_value());
  CHECK(*refused->retry_after == std::chrono::seconds(1));  // one token short at 1/s
  CHECK(retry_after(*refused, f.config.admission) == std::chrono::seconds(1));
  CHECK(f.sink.batches.size() == 1);
  IngestOutcome overloaded;
  overloaded.status = IngestStatus::overloaded;
  CHECK(retry_after(overloaded, f.config.admission) == f.config.admission.retry_after);
}

TEST_CASE("the device cap refuses as overloaded while the budget has room") {
  Fixture f(kDevices + "admission: {max_inflight_records: 100, device_max_inflight_records: 2}\n");
  CHECK_FALSE(f.ingest("[" + record("truck-1", 1) + "," + record("truck-1", 2) + "]").has_value());
  const auto refused = f.ingest(record("truck-1", 3));
  REQUIRE(refused.has_value());
  CHECK(refused->status == IngestStatus::overloaded);
  CHECK(refused->message.find("this device") != std::string::npos);
  CHECK_FALSE(f.budget.above_high_watermark());  // not the gateway's limit: nobody else pauses
}

TEST_CASE("per-tenant counters add up: received = acknowledged + rejected + failed") {
  Fixture f;
  const TenantMetrics& tenant = f.metrics.tenant(envelope::SourceProtocol::http, "acme");
  const auto value = [](const prometheus::Counter* counter) { return static_cast<std::size_t>(counter->Value()); };
  const auto rejected = [&] {
    std::size_t sum = 0;
    for (const prometheus::Counter* counter : tenant.rejected) sum += value(counter);
    return sum;
  };
  CHECK_FALSE(f.ingest("[" + record("truck-1", 1, "k-1") + "," + record("truck-1", 95) + "]").has_value());
  f.sink.batches[0].on_complete({});
  CHECK_FALSE(f.ingest(record("truck-1", 2, "k-2")).has_value());
  f.sink.batches[1].on_complete(std::unexpected(sinks::SinkError{sinks::SinkErrc::unavailable, "down"}));
  CHECK(f.ingest("[{").has_value());                          // malformed
  CHECK(f.ingest(record("truck-1", 1, "k-1")).has_value());  // all duplicates: answered at once
  std::string six = "[";
  for (int i = 0; i < 6; ++i) six += (i ? "," : "") + record("truck-1", 1);
  CHECK_FALSE(f.ingest(six + "]").has_value());  // larger than the budget, nothing in flight: passes
  CHECK(f.ingest(record("truck-1", 1)).has_value());  // overloaded
  f.sink.batches[2].on_complete({});

  CHECK(value(tenant.received) == 2 + 1 + 1 + 1 + 6 + 1);
  CHECK(value(tenant.acknowledged) == 1 + 1 + 6);
  CHECK(value(tenant.deduplicated) == 1);
  CHECK(value(tenant.failed) == 1);
  CHECK(value(tenant.admitted) == 1 + 1 + 6);
  CHECK(value(tenant.rejected[static_cast<std::size_t>(RejectReason::validation)]) == 1);
  CHECK(value(tenant.rejected[static_cast<std::size_t>(RejectReason::decode)]) == 1);
  CHECK(value(tenant.rejected[static_cast<std::size_t>(RejectReason::overloaded)]) == 1);
  CHECK(value(tenant.received) == value(tenant.acknowledged) + rejected() + value(tenant.failed));
  CHECK(value(tenant.acknowledged) - value(tenant.deduplicated) == 1 + 6);  // what the sink committed
  const std::string stats = f.metrics.tenant_stats_json();
  CHECK(stats.find(R"("tenant":"acme","protocol":"http","received":12,"admitted":8,"acknowledged":8)") !=
        std::string::npos);
}

TEST_CASE("telegate_inflight_records and _bytes show what the budget holds when /metrics is rendered") {
  Fixture f;
  f.metrics.report_inflight(f.budget);
  const auto gauge = [&](std::string_view name) {
    const std::string text = f.metrics.render();
    const std::size_t at = text.find("\n" + std::string(name) + " ");
    REQUIRE(at != std::string::npos);
    return std::stod(text.substr(at + name.size() + 2));
  };
  CHECK_FALSE(f.ingest("[" + record("truck-1", 1) + "," + record("truck-1", 2) + "]").has_value());
  CHECK(gauge("telegate_inflight_records") == 2);
  CHECK(gauge("telegate_inflight_bytes") == static_cast<double>(f.budget.bytes()));
  CHECK(f.budget.bytes() > 0);
  f.sink.batches[0].on_complete({});
  CHECK(gauge("telegate_inflight_records") == 0);
  CHECK(gauge("telegate_inflight_bytes") == 0);
}

TEST_CASE("requests by status: each status counts into its own child, cached or not, from any thread") {
  Metrics metrics;
  const ProtocolMetrics& http = metrics.protocol(envelope::SourceProtocol::http);
  const ProtocolMetrics& coap = metrics.protocol(envelope::SourceProtocol::coap);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        http.requests_with_status(200).Increment();
        if (i % 4 == 0) http.requests_with_status(503).Increment();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  coap.requests_with_status(205).Increment();
  http.requests_with_status(900).Increment();  // beyond the cache: the family every time
  http.requests_with_status(900).Increment();
  CHECK(&http.requests_with_status(200) != &coap.requests_with_status(200));
  CHECK(&http.requests_with_status(200) != &http.requests_with_status(503));
  const std::string text = metrics.render();
  CHECK(text.find(R"(telegate_requests_total{protocol="http",status="200"} 400)") != std::string::npos);
  CHECK(text.find(R"(telegate_requests_total{protocol="http",status="503"} 100)") != std::string::npos);
  CHECK(text.find(R"(telegate_requests_total{protocol="coap",status="205"} 1)") != std::string::npos);
  CHECK(text.find(R"(telegate_requests_total{protocol="http",status="900"} 2)") != std::string::npos);
  CHECK(text.find(R"(telegate_requests_total{protocol="coap",status="200"} 0)") != std::string::npos);
}
