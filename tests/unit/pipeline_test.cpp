// The ingest pipeline with a fake sink: which outcome each kind of request gets, and that a
// positive outcome comes only from the sink's completion.
#include <doctest/doctest.h>

#include <optional>

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

const std::string kYaml = "device_types: [{name: tracker}]\n"
                          "tenants: [{name: acme, devices: [{id: truck-1, device_type: tracker, token_sha256: " +
                          sha256_hex("t") + "}]}]\n"
                          "admission: {max_inflight_records: 5}\n";

std::string record(const std::string& device, double lat, const std::string& msg_id = "") {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return R"({"device_id":")" + device + R"(","type":"location","ts":)" + std::to_string(now) +
         (msg_id.empty() ? "" : R"(,"msg_id":")" + msg_id + "\"") + R"(,"lat":)" + std::to_string(lat) +
         R"(,"lon":14})";
}

struct Fixture {
  GatewayConfig config = parse_config(kYaml);
  codecs::CodecRegistry codecs;
  FakeSink sink;
  InflightBudget budget{config.admission.max_inflight_records, config.admission.max_inflight_bytes};
  Metrics metrics;
  DeviceIdentity device{"acme", "truck-1", "tracker"};
  std::unique_ptr<CatalogManager> catalog;
  std::unique_ptr<IngestPipeline> pipeline;
  std::unique_ptr<PipelineWorker> worker;
  std::optional<IngestOutcome> completed;

  Fixture() {
    codecs::register_builtin_codecs(codecs);
    catalog = std::make_unique<CatalogManager>(config, codecs, nullptr);
    pipeline = std::make_unique<IngestPipeline>(config, sink, budget, metrics);
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
  std::string four = "[";
  for (int i = 0; i < 4; ++i) four += (i ? "," : "") + record("truck-1", 1);
  four += "]";
  CHECK_FALSE(f.ingest(four).has_value());
  auto refused = f.ingest("[" + record("truck-1", 1) + "," + record("truck-1", 2) + "]");
  REQUIRE(refused.has_value());
  CHECK(refused->status == IngestStatus::overloaded);
  CHECK(f.sink.batches.size() == 1);
  CHECK(f.budget.paused());
  f.sink.batches[0].on_complete({});
  CHECK_FALSE(f.budget.paused());
  CHECK_FALSE(f.ingest(record("truck-1", 1)).has_value());
}
