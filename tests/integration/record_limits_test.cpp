// Records too large for Kafka, end to end against the real broker with real clients (curl,
// mosquitto_pub, coap-client): refused for good (413, PUBACK 0x95, 4.13) and promptly, never
// answered "retry later", and never at the cost of other devices' records in the same
// transaction. Two limits: the gateway's own (sink.kafka.max_record_bytes, checked before
// produce) and a topic's max.message.bytes below it (refused by the broker in the delivery
// report).
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <string>

#include "gateway_process.hpp"
#include "kafka_reader.hpp"
#include "telegate/gateway/auth.hpp"
#include "telegate/sinks/kafka_admin.hpp"

using namespace telegate;
using telegate::testing::curl_post;
using telegate::testing::GatewayProcess;
using telegate::testing::TempDir;

namespace {

using Clock = std::chrono::steady_clock;

std::string config_for(const std::string& run, const std::string& listeners, const std::string& kafka_keys) {
  return "instance_id: it-limits-" + run + "\n" + listeners +
         testing::kafka_sink_yaml("it." + run + ".{tenant}.{device_type}", 500, kafka_keys) +
         "device_types:\n"
         "  - {name: big, codec: json}\n"
         "  - {name: small, codec: json}\n"
         "tenants:\n"
         "  - name: acme\n"
         "    devices:\n"
         "      - {id: big-1, device_type: big, token_sha256: " + gateway::sha256_hex("big-1-token") + "}\n" +
         "      - {id: small-1, device_type: small, token_sha256: " + gateway::sha256_hex("small-1-token") + "}\n";
}

// A sensor record of about `readings` × 130 bytes; random names, so compression cannot hide its size.
std::string sensor(const std::string& device, const std::string& msg_id, int readings) {
  static std::mt19937 random(std::random_device{}());
  std::string body = R"({"device_id":")" + device + R"(","type":"sensor","ts":)" +
                     std::to_string(testing::unix_ms() - 5'000) + R"(,"msg_id":")" + msg_id + R"(","readings":[)";
  for (int i = 0; i < readings; ++i) {
    std::string name(120, 'a');
    for (char& c : name) c = static_cast<char>('a' + random() % 26);
    body += (i ? "," : "") + (R"({"name":")" + name + R"(","value":)" + std::to_string(i) + "}");
  }
  return body + "]}";
}

testing::CommandResult run_merged(const std::vector<std::string>& argv) {
  auto result = testing::run_command(argv);
  result.out += result.err;
  return result;
}

std::string describe(const std::map<std::string, int>& copies) {
  std::string text;
  for (const auto& [msg_id, count] : copies) text += msg_id + "×" + std::to_string(count) + " ";
  return text;
}

// A counter from /metrics, 0 when absent.
double counter(const GatewayProcess& gateway, const std::string& series) {
  const std::string body = testing::curl_get(gateway.url("/metrics")).body;
  const auto at = body.find("\n" + series + " ");
  return at == std::string::npos ? 0 : std::stod(body.substr(at + series.size() + 2));
}

}  // namespace

TEST_CASE("a record over sink.kafka.max_record_bytes is refused for good before produce, over HTTP, MQTT 5 and CoAP") {
  const std::string run = testing::unique_run_id();
  const std::uint16_t mqtt_port = testing::free_port();
  const std::uint16_t coap_port = testing::free_udp_port();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run,
                                                "mqtt: {enabled: true, address: 127.0.0.1, port: " + std::to_string(mqtt_port) +
                                                    "}\ncoap: {enabled: true, address: 127.0.0.1, port: " +
                                                    std::to_string(coap_port) + "}\n",
                                                ", max_record_bytes: 4096"));
  gateway.start();
  gateway.wait_ready();
  const std::string url = gateway.url("/v1/telemetry");

  const auto big = curl_post(url, "big-1-token", "application/json", sensor("big-1", "big-http", 60));
  CHECK(big.status == 413);
  CHECK_MESSAGE(big.body.find("record_too_large") != std::string::npos, big.body);
  CHECK_MESSAGE(big.body.find("4096") != std::string::npos, big.body);  // names the limit
  // Permanent: the same request is refused the same way, not "busy, retry".
  CHECK(curl_post(url, "big-1-token", "application/json", sensor("big-1", "big-http", 60)).status == 413);
  // One record over the limit refuses its whole request; below it, the same device is served.
  const std::string mixed = "[" + sensor("big-1", "mixed-small", 2) + "," + sensor("big-1", "mixed-big", 60) + "]";
  CHECK(curl_post(url, "big-1-token", "application/json", mixed).status == 413);
  CHECK(curl_post(url, "big-1-token", "application/json", sensor("big-1", "fits", 2)).status == 200);

  const auto mosquitto_pub = [&](const std::string& version, const std::string& msg_id) {
    return run_merged({"timeout", "20", "mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(mqtt_port), "-V", version,
                       "-q", "1", "-u", "big-1", "-P", "big-1-token", "-t", "acme/big-1/sensor", "-m",
                       sensor("big-1", msg_id, 60), "-d"});
  };
  // 0x83 Implementation specific error (0x95 Packet too large is not a PUBACK reason).
  const auto mqtt5 = mosquitto_pub("mqttv5", "big-mqtt5");
  CHECK_MESSAGE(mqtt5.out.find("RC:131") != std::string::npos, mqtt5.out);
  // 3.1.1 has no negative ack: acknowledged as dropped (a resend could never succeed), counted.
  const auto mqtt3 = mosquitto_pub("mqttv311", "big-mqtt3");
  CHECK_MESSAGE(mqtt3.exit_code == 0, mqtt3.out);
  CHECK_MESSAGE(mqtt3.out.find("received PUBACK") != std::string::npos, mqtt3.out);
  CHECK(counter(gateway, R"(telegate_mqtt_dropped_total{reason="Implementation specific error"})") == 1);

  const auto file = dir.path() / "big.json";
  std::ofstream(file, std::ios::binary) << sensor("big-1", "big-coap", 60);
  const auto coap = run_merged({"coap-client-openssl", "-B", "10", "-m", "post", "-t", "50", "-f", file.string(),
                                "coap://127.0.0.1:" + std::to_string(coap_port) + "/v1/telemetry?t=big-1-token"});
  CHECK_MESSAGE(coap.out.find("4.13") != std::string::npos, coap.out);

  // Nothing of the refused requests reached Kafka; the record that fits did, once.
  const auto copies = testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.big", 1);
  CHECK_MESSAGE(copies == (std::map<std::string, int>{{"fits", 1}}), describe(copies));
  CHECK(counter(gateway, R"(telegate_kafka_transactions_total{result="aborted"})") == 0);
}

TEST_CASE("a record a topic's max.message.bytes refuses fails alone and for good; its transaction commits the rest") {
  const std::string run = testing::unique_run_id();
  sinks::KafkaSinkConfig cluster;
  cluster.bootstrap_servers = testing::kafka_bootstrap();
  // The topic takes less than the gateway's limit (librdkafka's default message.max.bytes).
  sinks::ensure_topic(cluster, "it." + run + ".acme.big", 1, 1, {{"max.message.bytes", "2048"}});
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run, "", ", delivery_timeout_ms: 20000, librdkafka: {compression.type: none}"));
  gateway.start();
  gateway.wait_ready();
  // Start-up names the destination topics that do not exist yet (the small one), not the others.
  const std::string startup = gateway.log_tail();
  CHECK_MESSAGE(startup.find("1 of 2 destination topics") != std::string::npos, startup);
  CHECK(startup.find("it." + run + ".acme.small") != std::string::npos);
  const std::string url = gateway.url("/v1/telemetry");

  // Both in one transaction (500 ms): the small device's record must not pay for the big one.
  const auto started = Clock::now();
  auto small = std::async(std::launch::async, [&] {
    return curl_post(url, "small-1-token", "application/json", sensor("small-1", "innocent", 2));
  });
  const auto big = curl_post(url, "big-1-token", "application/json", sensor("big-1", "refused", 60));
  const auto answered = Clock::now() - started;
  CHECK(big.status == 413);
  CHECK_MESSAGE(big.body.find("record_too_large") != std::string::npos, big.body);
  CHECK(answered < std::chrono::seconds(10));  // not after the 20 s delivery timeout
  CHECK(small.get().status == 200);
  CHECK(counter(gateway, R"(telegate_kafka_transactions_total{result="aborted"})") >= 1);

  // Its retry is refused the same way, and the gateway keeps serving.
  CHECK(curl_post(url, "big-1-token", "application/json", sensor("big-1", "refused", 60)).status == 413);
  CHECK(curl_post(url, "big-1-token", "application/json", sensor("big-1", "fits", 2)).status == 200);

  const auto innocent = testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.small", 1);
  CHECK_MESSAGE(innocent == (std::map<std::string, int>{{"innocent", 1}}), describe(innocent));
  const auto big_topic = testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.big", 1);
  CHECK_MESSAGE(big_topic == (std::map<std::string, int>{{"fits", 1}}), describe(big_topic));
}
