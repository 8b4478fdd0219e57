// End to end through the MQTT bridge: mosquitto_pub (real clients, MQTT 3.1.1 and 5, QoS 0/1/2)
// → a private Mosquitto → telegate (real binary, Paho) → Kafka, read back read_committed.
// Proves: each message lands exactly once; two replicas in one shared group split the stream
// and still deliver each message once; a SIGKILLed replica loses nothing the broker queued for
// its persistent session; unknown devices and malformed payloads are acknowledged, counted and
// kept out of Kafka while the bridge goes on.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "gateway_process.hpp"
#include "kafka_reader.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using telegate::testing::GatewayProcess;
using telegate::testing::MosquittoProcess;
using telegate::testing::TempDir;

namespace {

const testing::ExpectedOrigin kFromMqtt{"acme", envelope::SourceProtocol::mqtt};

struct BridgeSetup {
  std::string run;
  std::string broker_uri;
  std::string instance_id;
  int clients = 2;
  std::string protocol_version = "5";
};

std::string config_for(const BridgeSetup& setup) {
  return "instance_id: " + setup.instance_id + "\n" +
         "mqtt_bridge:\n"
         "  enabled: true\n"
         "  broker: " + setup.broker_uri + "\n" +
         "  clients: " + std::to_string(setup.clients) + "\n" +
         "  protocol_version: \"" + setup.protocol_version + "\"\n" +
         "  subscriptions:\n"
         "    - {filter: \"fleet/+/+/telemetry\", qos: 2, shared_group: \"g" + setup.run + "\"}\n" +
         "  mappings:\n"
         "    - topic: \"fleet/{tenant}/{device_id}/telemetry\"\n" +
         testing::kafka_sink_yaml("it." + setup.run + ".{tenant}.{type}", 5) +
         "device_types:\n"
         "  - {name: tracker, codec: json}\n"
         "tenants:\n"
         "  - name: acme\n"
         "    devices:\n"
         "      - {id: truck-1, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-1-token") + "}\n" +
         "      - {id: truck-2, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-2-token") + "}\n";
}

std::string location(const std::string& device, const std::string& msg_id, std::int64_t ts) {
  return R"({"device_id":")" + device + R"(","type":"location","ts":)" + std::to_string(ts) + R"(,"msg_id":")" + msg_id +
         R"(","lat":46.05,"lon":14.51})";
}

double metric(const GatewayProcess& gateway, const std::string& series) {
  const auto body = testing::curl_get(gateway.url("/metrics")).body;
  const std::size_t at = body.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(body.c_str() + at + series.size() + 2, nullptr);
}

const std::string kCommitted = R"(telegate_mqtt_bridge_messages_total{outcome="committed"})";

// Messages published before the bridge has subscribed would not be kept for it, so tests wait
// for every connection and a moment for the SUBACKs.
void wait_connected(const GatewayProcess& gateway, int clients) {
  REQUIRE_MESSAGE(testing::eventually([&] { return metric(gateway, "telegate_mqtt_bridge_connected_clients") >= clients; },
                                      std::chrono::seconds(20), std::chrono::milliseconds(50)),
                  gateway.log_tail());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
}

testing::CommandResult publish(const MosquittoProcess& broker, const std::string& topic, int qos, const std::string& version,
                               const std::string& payload, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()), "-V", version,
                                   "-q", std::to_string(qos), "-t", topic, "-m", payload};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return testing::run_command(argv);
}

// Publishes every line of `lines` as one message from a single mosquitto_pub connection (-l).
void publish_lines(const MosquittoProcess& broker, const TempDir& dir, const std::string& topic, int qos,
                   const std::vector<std::string>& lines) {
  const auto file = dir.path() / ("lines-" + std::to_string(testing::unix_ms()) + ".txt");
  {
    std::ofstream out(file);
    for (const auto& line : lines) out << line << "\n";
  }
  const auto result = testing::run_command({"sh", "-c", "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(broker.port()) +
                                                            " -V mqttv5 -q " + std::to_string(qos) + " -t " + topic +
                                                            " -l < " + file.string()});
  REQUIRE_MESSAGE(result.exit_code == 0, result.err);
}

int times(const std::map<std::string, int>& seen, const std::string& id) {
  const auto found = seen.find(id);
  return found == seen.end() ? 0 : found->second;
}

}  // namespace

TEST_CASE("MQTT bridge: QoS 0/1/2 over MQTT 3.1.1 and 5 land exactly once; unknown devices and bad payloads never") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  MosquittoProcess broker(dir.path());
  GatewayProcess gateway(dir.path(), config_for({run, broker.uri(), "it-bridge-" + run}));
  gateway.start();
  gateway.wait_ready();
  wait_connected(gateway, 2);

  const std::int64_t ts = testing::unix_ms() - 10'000;
  std::set<std::string> ids;
  int n = 0;
  for (const std::string version : {"mqttv311", "mqttv5"}) {
    for (int qos = 0; qos <= 2; ++qos) {
      const std::string id = "q" + std::to_string(qos) + "-" + version;
      const auto result = publish(broker, "fleet/acme/truck-1/telemetry", qos, version, location("truck-1", id, ts + n++));
      REQUIRE_MESSAGE(result.exit_code == 0, result.err);
      ids.insert(id);
    }
  }
  // MQTT 5 Content Type wins over the mapping's: a JSON body labelled CBOR is refused as such.
  publish(broker, "fleet/acme/truck-2/telemetry", 1, "mqttv5", location("truck-2", "ct-json", ts + n++),
          {"-D", "publish", "content-type", "application/json"});
  ids.insert("ct-json");
  publish(broker, "fleet/acme/truck-2/telemetry", 1, "mqttv5", location("truck-2", "ct-cbor", ts + n++),
          {"-D", "publish", "content-type", "application/cbor"});
  // Dropped, acknowledged and counted: a device the catalog does not know, another tenant's
  // topic for a known id, a body that is not JSON, a record naming another device.
  publish(broker, "fleet/acme/ghost/telemetry", 1, "mqttv5", location("ghost", "ghost", ts));
  publish(broker, "fleet/other/truck-1/telemetry", 1, "mqttv5", location("truck-1", "other-tenant", ts));
  publish(broker, "fleet/acme/truck-1/telemetry", 2, "mqttv5", R"([{"device_id":)");
  publish(broker, "fleet/acme/truck-1/telemetry", 1, "mqttv311", location("truck-2", "impostor", ts));
  // …and the bridge goes on.
  publish(broker, "fleet/acme/truck-1/telemetry", 1, "mqttv311", location("truck-1", "after-bad", ts + n++));
  ids.insert("after-bad");

  const auto seen =
      testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", ids.size(), kFromMqtt);
  for (const auto& id : ids) CHECK_MESSAGE(times(seen, id) == 1, "msg_id " << id);
  CHECK(seen.size() == ids.size());
  CHECK(metric(gateway, kCommitted) == static_cast<double>(ids.size()));
  CHECK(metric(gateway, R"(telegate_mqtt_bridge_messages_total{outcome="unknown_device"})") == 2);
  CHECK(metric(gateway, R"(telegate_mqtt_bridge_messages_total{outcome="invalid_payload"})") == 3);
  CHECK(metric(gateway, R"(telegate_records_rejected_total{protocol="mqtt",reason="unauthenticated"})") == 2);
  CHECK(gateway.log_tail().find("acknowledged and dropped a message on 'fleet/acme/ghost/telemetry'") != std::string::npos);
}

TEST_CASE("MQTT bridge: two replicas in one shared group split the stream and deliver each message once") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  TempDir dir_a;
  TempDir dir_b;
  MosquittoProcess broker(dir.path());
  GatewayProcess replica_a(dir_a.path(), config_for({run, broker.uri(), "it-bridge-a-" + run, 1}));
  GatewayProcess replica_b(dir_b.path(), config_for({run, broker.uri(), "it-bridge-b-" + run, 1}));
  replica_a.start();
  replica_b.start();
  replica_a.wait_ready();
  replica_b.wait_ready();
  wait_connected(replica_a, 1);
  wait_connected(replica_b, 1);

  const std::int64_t ts = testing::unix_ms() - 60'000;
  std::vector<std::string> lines;
  std::set<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    const std::string id = "split-" + std::to_string(i);
    lines.push_back(location("truck-1", id, ts + i));
    ids.insert(id);
  }
  publish_lines(broker, dir, "fleet/acme/truck-1/telemetry", 1, lines);

  const auto seen =
      testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", ids.size(), kFromMqtt);
  for (const auto& id : ids) CHECK_MESSAGE(times(seen, id) == 1, "msg_id " << id);
  CHECK(seen.size() == ids.size());
  const double by_a = metric(replica_a, kCommitted);
  const double by_b = metric(replica_b, kCommitted);
  MESSAGE("replica a committed " << by_a << ", replica b " << by_b);
  CHECK(by_a > 0);
  CHECK(by_b > 0);
  const double together = by_a + by_b;
  CHECK(together == 200);
}

// Stops a replica mid-stream with `stop_signal`, publishes more while it is down, restarts it:
// every message must reach Kafka.
static void restart_mid_stream_loses_nothing(int stop_signal) {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  MosquittoProcess broker(dir.path());
  const std::string config = config_for({run, broker.uri(), "it-bridge-kill-" + run, 1});
  GatewayProcess gateway(dir.path(), config);
  gateway.start();
  gateway.wait_ready();
  wait_connected(gateway, 1);

  const std::int64_t ts = testing::unix_ms() - 60'000;
  std::set<std::string> ids;
  auto batch = [&](const std::string& prefix, int count) {
    std::vector<std::string> lines;
    for (int i = 0; i < count; ++i) {
      const std::string id = prefix + std::to_string(i);
      lines.push_back(location("truck-1", id, ts + static_cast<std::int64_t>(ids.size())));
      ids.insert(id);
    }
    return lines;
  };
  // Killed in the middle of a stream: some messages committed, the rest queued at the broker.
  publish_lines(broker, dir, "fleet/acme/truck-1/telemetry", 1, batch("before-", 300));
  testing::eventually([&] { return metric(gateway, kCommitted) >= 20; });
  const double committed_before_kill = metric(gateway, kCommitted);
  gateway.signal(stop_signal);
  CHECK(gateway.wait() == (stop_signal == SIGKILL ? 128 + SIGKILL : 0));
  REQUIRE(committed_before_kill < 300);  // the kill really came mid-stream
  // While it is down, the broker keeps queueing for its session.
  publish_lines(broker, dir, "fleet/acme/truck-1/telemetry", 1, batch("while-down-", 100));

  gateway.start();
  gateway.wait_ready();
  const auto seen =
      testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", ids.size(), kFromMqtt);
  std::size_t duplicates = 0;
  for (const auto& id : ids) {
    CHECK_MESSAGE(times(seen, id) >= 1, "lost msg_id " << id);
    if (times(seen, id) > 1) duplicates += static_cast<std::size_t>(times(seen, id) - 1);
  }
  MESSAGE("signal " << stop_signal << ": committed before it: " << committed_before_kill
                     << "; duplicates after redelivery: " << duplicates);
  // At most the one message that was between its Kafka commit and its PUBACK at the kill.
  CHECK(duplicates <= 1);
  CHECK(seen.size() == ids.size());
}

TEST_CASE("MQTT bridge: a SIGKILLed replica loses nothing its persistent session queued at the broker") {
  restart_mid_stream_loses_nothing(SIGKILL);
}

TEST_CASE("MQTT bridge: a replica stopped with SIGTERM mid-stream exits promptly and loses nothing") {
  const auto started = std::chrono::steady_clock::now();
  restart_mid_stream_loses_nothing(SIGTERM);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(120));
}
