// End to end against the real broker: curl → telegate (real binary) → Kafka, read back with a
// read_committed consumer. Proves: every accepted record exactly once with the right key, header
// and envelope; rejected records never; nothing acknowledged lost across gateway restarts.
#include <doctest/doctest.h>
#include <signal.h>

#include <future>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "gateway_process.hpp"
#include "kafka_reader.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using telegate::testing::curl_post;
using telegate::testing::GatewayProcess;
using telegate::testing::TempDir;

namespace {

std::string config_for(const std::string& run_id, std::size_t max_body_bytes = 1u << 20,
                       const std::string& extra = "") {
  return "instance_id: it-" + run_id + "\n" + extra +
         "http: {max_body_bytes: " + std::to_string(max_body_bytes) + "}\n" +
         testing::kafka_sink_yaml("it." + run_id + ".{tenant}.{type}", extra.empty() ? 50 : 1000) +
         "device_types:\n"
         "  - {name: tracker, codec: json}\n"
         "  - {name: probe, codec: json, envelope_format: json}\n"
         "tenants:\n"
         "  - name: acme\n"
         "    devices:\n"
         "      - {id: truck-1, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-1-token") + "}\n" +
         "      - {id: probe-1, device_type: probe, token_sha256: " + gateway::sha256_hex("probe-1-token") + "}\n";
}

std::string location(const std::string& msg_id, double lat, double lon, std::int64_t ts) {
  return R"({"device_id":"truck-1","type":"location","ts":)" + std::to_string(ts) + R"(,"msg_id":")" + msg_id +
         R"(","lat":)" + std::to_string(lat) + R"(,"lon":)" + std::to_string(lon) + "}";
}

std::string header_value(const testing::KafkaMessage& message, std::string_view name) {
  for (const auto& [key, value] : message.headers) {
    if (key == name) return value;
  }
  return {};
}

}  // namespace

TEST_CASE("records posted over HTTP in every shape land in Kafka exactly once; rejected ones never") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run, 64 * 1024));
  gateway.start();
  gateway.wait_ready();
  const std::string url = gateway.url("/v1/telemetry");
  const std::int64_t ts = testing::unix_ms() - 10'000;
  std::set<std::string> accepted_ids;

  // One object.
  auto single = curl_post(url, "truck-1-token", "application/json", location("one-0", 46.05, 14.51, ts));
  CHECK(single.status == 200);
  CHECK(single.body.find("\"accepted\":1") != std::string::npos);
  accepted_ids.insert("one-0");

  // An array.
  std::string array = "[";
  for (int i = 0; i < 5; ++i) {
    array += (i ? "," : "") + location("arr-" + std::to_string(i), 46.0 + i * 0.01, 14.5, ts + i);
    accepted_ids.insert("arr-" + std::to_string(i));
  }
  array += "]";
  CHECK(curl_post(url, "truck-1-token", "application/json", array).status == 200);

  // NDJSON, with a charset parameter on the content type.
  std::string ndjson;
  for (int i = 0; i < 4; ++i) {
    ndjson += location("nd-" + std::to_string(i), 45.0, 13.0 + i * 0.1, ts + i) + "\n";
    accepted_ids.insert("nd-" + std::to_string(i));
  }
  CHECK(curl_post(url, "truck-1-token", "application/x-ndjson; charset=utf-8", ndjson).status == 200);

  // Good and bad records mixed: the good ones commit, the bad ones are named.
  const std::string mixed = "[" + location("mix-0", 46.0, 14.0, ts) + "," + location("bad-lat", 91.5, 14.0, ts) + "," +
                            location("mix-2", 46.1, 14.1, ts) +
                            R"(,{"device_id":"truck-1","type":"location","msg_id":"bad-ts","lat":1,"lon":2},)" +
                            location("mix-4", 46.2, 14.2, ts) + "]";
  accepted_ids.insert({"mix-0", "mix-2", "mix-4"});
  const auto partial = curl_post(url, "truck-1-token", "application/json", mixed);
  CHECK(partial.status == 207);
  CHECK(partial.body.find("\"accepted\":3") != std::string::npos);
  CHECK(partial.body.find("\"rejected\":2") != std::string::npos);
  CHECK(partial.body.find(R"("index":1)") != std::string::npos);
  CHECK(partial.body.find(R"("field":"lat")") != std::string::npos);
  CHECK(partial.body.find(R"("index":3)") != std::string::npos);
  CHECK(partial.body.find(R"("field":"ts")") != std::string::npos);

  // Nothing valid: 422 and nothing committed.
  CHECK(curl_post(url, "truck-1-token", "application/json", location("bad-all", 46.0, 181.0, ts)).status == 422);

  // Request-level refusals.
  const auto malformed = curl_post(url, "truck-1-token", "application/json", R"([{"device_id":"truck-1",)");
  CHECK(malformed.status == 400);
  CHECK(malformed.body.find("offset") != std::string::npos);
  CHECK(curl_post(url, "", "application/json", location("bad-noauth", 1, 1, ts)).status == 401);
  CHECK(curl_post(url, "wrong-token", "application/json", location("bad-token", 1, 1, ts)).status == 401);
  CHECK(curl_post(url, "probe-1-token", "application/json", location("bad-other-device", 1, 1, ts)).status == 403);
  CHECK(curl_post(url, "truck-1-token", "text/plain", location("bad-type", 1, 1, ts)).status == 415);
  CHECK(curl_post(url, "truck-1-token", "application/json", std::string(100 * 1024, ' ')).status == 413);

  // A sensor device whose device type renders the envelope as JSON.
  const std::string sensor = R"({"device_id":"probe-1","type":"sensor","ts":)" + std::to_string(ts) +
                             R"(,"msg_id":"sensor-0","readings":[{"name":"temperature","value":21.5,"unit":"Cel"}]})";
  CHECK(curl_post(url, "probe-1-token", "application/json", sensor).status == 200);

  // Read everything back. Ask for one more than expected so the reader waits out its idle
  // period: a duplicate or a leaked rejected record would show up as an extra message.
  const auto locations =
      testing::read_committed(testing::kafka_bootstrap(), "it." + run + ".acme.location", accepted_ids.size() + 1);
  CHECK(locations.size() == accepted_ids.size());
  std::map<std::string, int> seen;
  for (const auto& message : locations) {
    CHECK(message.key == "truck-1");
    const auto route = envelope::decode_route_header(header_value(message, envelope::kRouteHeader));
    REQUIRE(route.has_value());
    CHECK(route->tenant == "acme");
    CHECK(route->device_type == "tracker");
    CHECK(route->message_type == codecs::MessageType::location);
    CHECK(route->format == envelope::Format::protobuf);
    const auto decoded = envelope::decode_envelope(message.value, envelope::Format::protobuf);
    REQUIRE(decoded.has_value());
    CHECK(decoded->tenant == "acme");
    CHECK(decoded->record.device_id == "truck-1");
    CHECK(decoded->record.msg_id == route->msg_id);
    CHECK(decoded->record.event_time_ms >= ts);
    CHECK(decoded->ingest_time_ms >= decoded->record.event_time_ms);
    CHECK(decoded->protocol == envelope::SourceProtocol::http);
    CHECK(decoded->record.location.lat < 90.0);
    ++seen[decoded->record.msg_id];
  }
  for (const auto& id : accepted_ids) CHECK_MESSAGE(seen[id] == 1, "msg_id " << id);
  for (const auto& [id, count] : seen) CHECK_MESSAGE(!id.starts_with("bad"), "rejected record in Kafka: " << id);

  const auto sensors = testing::read_committed(testing::kafka_bootstrap(), "it." + run + ".acme.sensor", 2);
  REQUIRE(sensors.size() == 1);
  CHECK(sensors[0].key == "probe-1");
  const auto sensor_route = envelope::decode_route_header(header_value(sensors[0], envelope::kRouteHeader));
  REQUIRE(sensor_route.has_value());
  CHECK(sensor_route->format == envelope::Format::json);
  CHECK(sensors[0].value.find(R"("temperature")") != std::string::npos);
  const auto sensor_envelope = envelope::decode_envelope(sensors[0].value, envelope::Format::json);
  REQUIRE(sensor_envelope.has_value());
  REQUIRE(sensor_envelope->record.readings.size() == 1);
  CHECK(sensor_envelope->record.readings[0].value == doctest::Approx(21.5));
}

TEST_CASE("gateway restarts lose nothing acknowledged: SIGKILL mid-load and graceful SIGTERM") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run));
  gateway.start();
  gateway.wait_ready();

  constexpr int kBatches = 90;
  constexpr int kPerBatch = 20;
  std::atomic<int> progress{0};
  std::set<std::string> acknowledged;
  std::set<int> retried_after_connection_loss;

  // The device: posts batches one after another, retrying each (same msg_ids) until acked.
  std::thread device([&] {
    const std::int64_t ts = testing::unix_ms() - 10'000;
    for (int batch = 0; batch < kBatches; ++batch) {
      std::string body = "[";
      for (int i = 0; i < kPerBatch; ++i) {
        body += (i ? "," : "") + location("r" + std::to_string(batch) + "-" + std::to_string(i), 46.0, 14.0, ts);
      }
      body += "]";
      for (int attempt = 0; attempt < 600; ++attempt) {
        const auto answer = curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json", body);
        if (answer.status == 200) {
          for (int i = 0; i < kPerBatch; ++i) acknowledged.insert("r" + std::to_string(batch) + "-" + std::to_string(i));
          break;
        }
        if (answer.status == 0) retried_after_connection_loss.insert(batch);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      progress = batch + 1;
    }
  });

  auto wait_for_progress = [&](int batches) {
    while (progress < batches) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  wait_for_progress(30);
  gateway.signal(SIGKILL);
  CHECK(gateway.wait() == 128 + SIGKILL);
  gateway.start();
  gateway.wait_ready();

  wait_for_progress(60);
  gateway.signal(SIGTERM);
  CHECK(gateway.wait() == 0);  // a graceful stop drains and exits cleanly
  gateway.start();
  gateway.wait_ready();
  device.join();

  REQUIRE(acknowledged.size() == kBatches * kPerBatch);
  const auto messages = testing::read_committed(testing::kafka_bootstrap(), "it." + run + ".acme.location",
                                                kBatches * kPerBatch + kPerBatch + 1);
  std::map<std::string, int> seen = testing::msg_id_copies(messages);
  std::size_t missing = 0;
  std::set<int> duplicated_batches;
  for (const auto& id : acknowledged) {
    if (seen[id] == 0) ++missing;
    if (seen[id] > 1) duplicated_batches.insert(std::stoi(id.substr(1, id.find('-') - 1)));
  }
  CHECK(missing == 0);
  // A SIGKILL between commit and response leaves a committed-but-unanswered batch that the
  // device retries against the restarted gateway; the de-duplication journal, committed with
  // the records, makes that retry an acknowledgement instead of a second copy.
  CHECK(duplicated_batches.empty());
  MESSAGE("acknowledged " << acknowledged.size() << ", found " << messages.size() << ", duplicated batches "
                          << duplicated_batches.size() << ", batches retried after a lost connection "
                          << retried_after_connection_loss.size());
}

TEST_CASE("operational endpoints, unknown paths and methods, and push-back when the budget is spent") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  // A budget of 10 records and a slow commit interval: the first request holds the budget while
  // its transaction waits to commit, and requests that arrive meanwhile must be pushed back.
  GatewayProcess gateway(dir.path(),
                         config_for(run, 1u << 20, "admission: {max_inflight_records: 10, retry_after_s: 2}\n"));
  gateway.start();
  gateway.wait_ready();

  CHECK(testing::curl_get(gateway.url("/healthz")).status == 200);
  const auto ready = testing::curl_get(gateway.url("/readyz"));
  CHECK(ready.status == 200);
  CHECK(testing::curl_get(gateway.url("/nope")).status == 404);
  const auto wrong_method = testing::curl_get(gateway.url("/v1/telemetry"));
  CHECK(wrong_method.status == 405);
  CHECK(wrong_method.headers.find("Allow: POST") != std::string::npos);

  const std::int64_t ts = testing::unix_ms() - 1000;
  // Distinct msg_ids per request: identical ones would be held back as retries, not by the budget.
  auto ten = [&](int request) {
    std::string body = "[";
    for (int i = 0; i < 10; ++i) {
      body += (i ? "," : "") + location("bp-" + std::to_string(request) + "-" + std::to_string(i), 46.0, 14.0, ts);
    }
    return body + "]";
  };
  std::vector<std::future<testing::HttpResult>> posts;
  for (int i = 0; i < 4; ++i) {
    posts.push_back(std::async(std::launch::async, [&, i] {
      return curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json", ten(i));
    }));
  }
  int accepted = 0, pushed_back = 0;
  for (auto& post : posts) {
    const auto answer = post.get();
    INFO("status " << answer.status << ": " << answer.body);
    CHECK((answer.status == 200 || answer.status == 503));
    if (answer.status == 200) ++accepted;
    if (answer.status == 503) {
      ++pushed_back;
      CHECK(answer.headers.find("Retry-After: 2") != std::string::npos);
      CHECK(answer.body.find("overloaded") != std::string::npos);
    }
  }
  CHECK(accepted >= 1);
  CHECK(pushed_back >= 1);
  CHECK(accepted + pushed_back == 4);

  const auto metrics = testing::curl_get(gateway.url("/metrics"));
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find(R"(telegate_records_accepted_total{protocol="http"} )" + std::to_string(accepted * 10)) !=
        std::string::npos);
  CHECK(metrics.body.find(R"(telegate_requests_total{protocol="http",status="503"} )" + std::to_string(pushed_back)) !=
        std::string::npos);
  CHECK(metrics.body.find("telegate_kafka_transactions_total") != std::string::npos);
  CHECK(metrics.body.find("telegate_ack_latency_seconds_bucket") != std::string::npos);
}

TEST_CASE("a device's retries with the same msg_ids are acknowledged and written once") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run));
  gateway.start();
  gateway.wait_ready();
  const std::string url = gateway.url("/v1/telemetry");
  const std::int64_t ts = testing::unix_ms() - 5'000;
  const std::string batch = "[" + location("retry-1", 46.1, 14.5, ts) + "," + location("retry-2", 46.2, 14.5, ts + 1) + "]";

  const auto first = curl_post(url, "truck-1-token", "application/json", batch);
  REQUIRE_MESSAGE(first.status == 200, first.body);
  // As if the ack was lost: the same batch twice more, then once with a new record added.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto again = curl_post(url, "truck-1-token", "application/json", batch);
    CHECK(again.status == 200);
    CHECK(again.body.find(R"("duplicates":2)") != std::string::npos);
    CHECK(again.body.find(R"("retry-1")") != std::string::npos);
  }
  const auto extended = curl_post(url, "truck-1-token", "application/json",
                                  "[" + location("retry-1", 46.1, 14.5, ts) + "," + location("retry-3", 46.3, 14.5, ts + 2) + "]");
  CHECK(extended.status == 200);
  CHECK(extended.body.find(R"("accepted":2,"rejected":0,"duplicates":1)") != std::string::npos);

  const auto metrics = testing::curl_get(gateway.url("/metrics"));
  CHECK(metrics.body.find("telegate_records_deduplicated_total{protocol=\"http\"} 5") != std::string::npos);

  // Killed and restarted: the window comes back from the journal committed with the records,
  // so a retry that reaches the new process is still not written twice.
  gateway.signal(SIGKILL);
  gateway.wait();
  gateway.start();
  gateway.wait_ready();
  const auto after_restart = curl_post(url, "truck-1-token", "application/json", batch);
  CHECK(after_restart.status == 200);
  CHECK_MESSAGE(after_restart.body.find(R"("duplicates":2)") != std::string::npos, after_restart.body);
  gateway.signal(SIGTERM);
  CHECK(gateway.wait() == 0);

  const auto messages = testing::read_committed(testing::kafka_bootstrap(), "it." + run + ".acme.location", 4);
  CHECK(testing::msg_id_copies(messages) == std::map<std::string, int>{{"retry-1", 1}, {"retry-2", 1}, {"retry-3", 1}});
}

TEST_CASE("a retry sent to another replica is caught when replicas follow each other's journals, and only then") {
  for (const bool across_replicas : {true, false}) {
    CAPTURE(across_replicas);
    const std::string run = testing::unique_run_id();
    const std::string dedup = "dedup: {journal_topic: it-dedup-" + run + ", journal_partitions: 3, across_replicas: " +
                              (across_replicas ? "true" : "false") + "}\n";
    std::string config_b = config_for(run, 1u << 20, dedup);
    config_b.replace(0, std::string("instance_id: it-").size(), "instance_id: it-b-");
    TempDir dir_a, dir_b;
    GatewayProcess replica_a(dir_a.path(), config_for(run, 1u << 20, dedup));
    GatewayProcess replica_b(dir_b.path(), config_b);
    replica_a.start();
    replica_b.start();
    replica_a.wait_ready();
    replica_b.wait_ready();
    const std::int64_t ts = testing::unix_ms() - 5'000;
    const std::string batch = "[" + location("lb-1", 46.1, 14.5, ts) + "," + location("lb-2", 46.2, 14.5, ts + 1) + "]";

    const auto first = curl_post(replica_a.url("/v1/telemetry"), "truck-1-token", "application/json", batch);
    REQUIRE_MESSAGE(first.status == 200, first.body);
    // Replica B hears of A's commit through A's journal, a moment after A acknowledged. Without
    // following, it is given as long, so that only the setting differs.
    const std::string learned = "telegate_dedup_replica_keys_total 2";
    for (int waited = 0; waited < 100; ++waited) {
      if (!across_replicas && waited == 20) break;
      if (testing::curl_get(replica_b.url("/metrics")).body.find(learned) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    // The load balancer sends the device's retry to replica B.
    const auto retry = curl_post(replica_b.url("/v1/telemetry"), "truck-1-token", "application/json", batch);
    CHECK(retry.status == 200);
    CHECK_MESSAGE((retry.body.find(R"("duplicates":2)") != std::string::npos) == across_replicas, retry.body);
    replica_a.signal(SIGTERM);
    replica_b.signal(SIGTERM);
    CHECK(replica_a.wait() == 0);
    CHECK(replica_b.wait() == 0);

    const int copies = across_replicas ? 1 : 2;
    CHECK(testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", 2 * copies) ==
          std::map<std::string, int>{{"lb-1", copies}, {"lb-2", copies}});
  }
}
