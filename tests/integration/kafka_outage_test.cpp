// A Kafka outage under load, in the default push-back mode: the broker is stopped while a
// device keeps posting (retrying every batch with the same msg_ids until it is acknowledged),
// then started again. While it is down the gateway must answer 503 and report not ready;
// afterwards every acknowledged record must be in Kafka exactly once. The same for an MQTT
// 3.1.1 device (Paho), which cannot be told "not now" but must never be acked meanwhile.
#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
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

void kafka(const std::string& action) {
  const auto result = testing::run_command({std::string(TELEGATE_SOURCE_DIR) + "/scripts/kafka/kafka.sh", action});
  REQUIRE_MESSAGE(result.exit_code == 0, "kafka.sh " << action << ": " << result.out << result.err);
}

}  // namespace

TEST_CASE("a Kafka outage under load: 503 and not ready while it lasts, then every acknowledged record once") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  GatewayProcess gateway(dir.path(),
                         "instance_id: outage-" + run + "\n" +
                             "sink:\n"
                             "  type: kafka\n"
                             "  topic_template: \"it." + run + ".{tenant}.{type}\"\n" +
                             "  kafka: {bootstrap_servers: \"" + testing::kafka_bootstrap() +
                             "\", transaction_max_interval_ms: 50, delivery_timeout_ms: 5000}\n" +
                             "device_types: [{name: tracker}]\n"
                             "tenants: [{name: acme, devices: [{id: truck-1, device_type: tracker, token_sha256: " +
                             gateway::sha256_hex("truck-1-token") + "}]}]\n");
  gateway.start();
  gateway.wait_ready();

  constexpr int kBatches = 60;
  constexpr int kPerBatch = 10;
  std::atomic<int> progress{0};
  std::atomic<int> refused_while_down{0};
  std::set<std::string> acknowledged;
  std::thread device([&] {
    const std::int64_t ts = testing::unix_ms() - 10'000;
    for (int batch = 0; batch < kBatches; ++batch) {
      std::string body = "[";
      for (int i = 0; i < kPerBatch; ++i) {
        body += std::string(i ? "," : "") + R"({"device_id":"truck-1","type":"location","ts":)" + std::to_string(ts) +
                R"(,"msg_id":"o)" + std::to_string(batch) + "-" + std::to_string(i) + R"(","lat":46,"lon":14})";
      }
      body += "]";
      for (int attempt = 0; attempt < 1200; ++attempt) {
        const auto answer = curl_post(gateway.url("/v1/telemetry"), "truck-1-token", "application/json", body);
        if (answer.status == 200) {
          for (int i = 0; i < kPerBatch; ++i) acknowledged.insert("o" + std::to_string(batch) + "-" + std::to_string(i));
          break;
        }
        if (answer.status == 503) ++refused_while_down;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      progress = batch + 1;
    }
  });

  while (progress < 15) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kafka("stop");
  const auto down_since = std::chrono::steady_clock::now();
  bool reported_not_ready = false;
  while (std::chrono::steady_clock::now() - down_since < std::chrono::seconds(15)) {
    if (testing::curl_get(gateway.url("/readyz")).status == 503) reported_not_ready = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  const int progress_while_down = progress;
  kafka("start");
  device.join();
  gateway.signal(SIGTERM);
  CHECK(gateway.wait() == 0);

  CHECK(reported_not_ready);
  CHECK(refused_while_down > 0);
  CHECK(progress_while_down < kBatches);  // the outage did hold the device back
  REQUIRE(acknowledged.size() == kBatches * kPerBatch);
  const auto messages = testing::read_committed(testing::kafka_bootstrap(), "it." + run + ".acme.location",
                                                acknowledged.size() + 1);
  std::map<std::string, int> seen = testing::msg_id_copies(messages);
  std::size_t missing = 0, duplicated = 0;
  for (const auto& id : acknowledged) {
    if (seen[id] == 0) ++missing;
    if (seen[id] > 1) ++duplicated;
  }
  CHECK(missing == 0);
  CHECK(duplicated == 0);
  MESSAGE("acknowledged " << acknowledged.size() << ", found " << messages.size() << ", 503s while down "
                          << refused_while_down.load() << ", batches done before the broker came back "
                          << progress_while_down);
}

// MQTT 3.1.1 has no negative PUBACK, so a PUBLISH the sink could not make durable must not be
// acknowledged at all (the client would drop the message): the gateway closes the connection,
// and the client resends it (DUP) on its own after reconnecting, until Kafka is back.
TEST_CASE("MQTT 3.1.1: a PUBLISH Kafka cannot take is never acknowledged; Paho's resend commits it once") {
  const char* configured = std::getenv("TELEGATE_PYTHON");
  const std::string python = configured && *configured ? configured : "python3";
  if (testing::run_command({python, "-c", "import paho.mqtt.client"}).exit_code != 0) {
    MESSAGE("skipped: paho-mqtt is not installed (TELEGATE_PYTHON=$(scripts/python-env))");
    return;
  }
  const std::string run = testing::unique_run_id();
  const std::uint16_t port = testing::free_port();
  TempDir dir;
  GatewayProcess gateway(dir.path(),
                         "instance_id: outage-mqtt-" + run + "\n" +
                             "mqtt: {enabled: true, address: 127.0.0.1, port: " + std::to_string(port) + "}\n" +
                             testing::kafka_sink_yaml("it." + run + ".{tenant}.{type}", 50, ", delivery_timeout_ms: 2000") +
                             "device_types: [{name: tracker}]\n"
                             "tenants: [{name: acme, devices: [{id: truck-1, device_type: tracker, token_sha256: " +
                             gateway::sha256_hex("truck-1-token") + "}]}]\n");
  gateway.start();
  gateway.wait_ready();
  const auto payload = dir.path() / "payload.json";
  std::ofstream(payload) << R"({"device_id":"truck-1","type":"location","ts":)" << testing::unix_ms() - 10'000
                         << R"(,"msg_id":"mqtt-outage","lat":46,"lon":14})";

  kafka("stop");
  const auto started = std::chrono::steady_clock::now();
  auto client = std::async(std::launch::async, [&] {
    auto result = testing::run_command({python, std::string(TELEGATE_SOURCE_DIR) + "/tests/integration/mqtt_paho_client.py",
                                        "outage", "127.0.0.1", std::to_string(port), "3", "truck-1", "truck-1-token",
                                        "acme/truck-1/location", "1", payload.string(), "120"});
    result.out += result.err;
    return result;
  });
  // Several delivery timeouts: each attempt fails, and the gateway closes instead of acking.
  std::this_thread::sleep_for(std::chrono::seconds(8));
  const double down_for = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  kafka("start");
  const auto result = client.get();
  MESSAGE("Paho: " << result.out << " (Kafka down for the first " << down_for << " s)");
  CHECK(result.exit_code == 0);  // acknowledged in the end
  const auto field = [&](const std::string& name) {
    const auto at = result.out.find("\"" + name + "\": ");
    return at == std::string::npos ? -1.0 : std::stod(result.out.substr(at + name.size() + 4));
  };
  CHECK(field("seconds") > down_for);  // never while Kafka was down
  CHECK(field("connects") >= 2);       // the gateway closed the connection; Paho resent
  CHECK(testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", 1) ==
        std::map<std::string, int>{{"mqtt-outage", 1}});
}
