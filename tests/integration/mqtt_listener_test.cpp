// End to end over MQTT against the real broker: mosquitto_pub (3.1.1 and 5.0) and Paho → telegate
// (real binary) → Kafka, read back read_committed. Proves: QoS 0/1/2 records land exactly once;
// a device that loses its connection before the ack and resends (Paho, persistent session)
// does not duplicate; wrong credentials get the CONNACK refusal; a device publishing on another
// device's topic is refused and nothing reaches Kafka; oversized and malformed packets are
// refused clearly and the gateway keeps running; the QoS 1 ack waits for the commit.
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gateway_process.hpp"
#include "kafka_reader.hpp"
#include "mqtt/mqtt_packet.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using telegate::testing::GatewayProcess;
using telegate::testing::TempDir;
namespace mqtt = telegate::gateway::mqtt;

namespace {

const testing::ExpectedOrigin kFromMqtt{"acme", envelope::SourceProtocol::mqtt};

std::string config_for(const std::string& run, std::uint16_t port, int transaction_interval_ms,
                       const std::string& mqtt_extra = "") {
  return "instance_id: it-mqtt-" + run + "\n" +
         "mqtt: {enabled: true, address: 127.0.0.1, port: " + std::to_string(port) + mqtt_extra + "}\n" +
         testing::kafka_sink_yaml("it." + run + ".{tenant}.{type}", transaction_interval_ms) +
         "device_types:\n"
         "  - {name: tracker, codec: json}\n"
         "  - {name: phone, codec: json, mqtt: {topic: \"owntracks/+/{device_id}\"}}\n"
         "tenants:\n"
         "  - name: acme\n"
         "    devices:\n"
         "      - {id: truck-1, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-1-token") + "}\n" +
         "      - {id: truck-2, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-2-token") + "}\n" +
         "      - {id: phone-1, device_type: phone, token_sha256: " + gateway::sha256_hex("phone-1-token") + "}\n";
}

std::string location(const std::string& device, const std::string& msg_id, std::int64_t ts) {
  return R"({"device_id":")" + device + R"(","type":"location","ts":)" + std::to_string(ts) + R"(,"msg_id":")" +
         msg_id + R"(","lat":46.05,"lon":14.51})";
}

testing::CommandResult mosquitto_pub(std::uint16_t port, const std::string& version, int qos, const std::string& user,
                                     const std::string& password, const std::string& topic, const std::string& message,
                                     std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"timeout", "20", "mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(port),
                                   "-V", version, "-q", std::to_string(qos), "-u", user, "-P", password,
                                   "-t", topic, "-m", message, "-d"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto result = testing::run_command(argv);
  result.out += result.err;
  return result;
}

std::string python() {
  const char* configured = std::getenv("TELEGATE_PYTHON");
  return configured && *configured ? configured : "python3";
}

bool have_paho() { return testing::run_command({python(), "-c", "import paho.mqtt.client"}).exit_code == 0; }

testing::CommandResult paho(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {python(), std::string(TELEGATE_SOURCE_DIR) + "/tests/integration/mqtt_paho_client.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = testing::run_command(argv);
  result.out += result.err;
  return result;
}

std::string write_file(const TempDir& dir, const std::string& name, const std::string& content) {
  const auto path = dir.path() / name;
  std::ofstream(path, std::ios::binary) << content;
  return path.string();
}

// A raw TCP client for the packets no well-behaved client sends.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in target{};
    target.sin_family = AF_INET;
    target.sin_port = htons(port);
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&target), sizeof target) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  void send(const std::vector<std::uint8_t>& bytes) { (void)::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  // Everything received until the gateway closes the connection (closed = true) or `quiet` passes.
  std::vector<std::uint8_t> receive(bool& closed, std::chrono::milliseconds quiet = std::chrono::milliseconds(3000)) {
    std::vector<std::uint8_t> bytes;
    closed = false;
    while (true) {
      pollfd fds{fd_, POLLIN, 0};
      if (::poll(&fds, 1, static_cast<int>(quiet.count())) <= 0) return bytes;
      std::uint8_t buffer[4096];
      const auto length = ::recv(fd_, buffer, sizeof buffer, 0);
      if (length <= 0) {
        closed = true;
        return bytes;
      }
      bytes.insert(bytes.end(), buffer, buffer + length);
    }
  }

 private:
  int fd_;
  bool connected_ = false;
};

std::vector<std::uint8_t> connect_packet(mqtt::ProtocolVersion version, const std::string& user, const std::string& token,
                                         const std::string& client_id = "raw-client") {
  mqtt::Connect connect;
  connect.version = version;
  connect.clean_start = true;
  connect.keep_alive = 30;
  connect.client_id = client_id;
  connect.username = user;
  connect.password = token;
  std::vector<std::uint8_t> out;
  REQUIRE(mqtt::encode(connect, out).has_value());
  return out;
}

// The packets in `bytes`, decoded as a client would see them: (type, first reason byte).
std::vector<std::pair<int, int>> packets(const std::vector<std::uint8_t>& bytes) {
  std::vector<std::pair<int, int>> out;
  std::size_t at = 0;
  while (at + 2 <= bytes.size()) {
    const int type = bytes[at] >> 4;
    std::size_t length = 0;
    std::size_t shift = 0;
    std::size_t i = at + 1;
    while (i < bytes.size()) {
      length |= static_cast<std::size_t>(bytes[i] & 0x7f) << shift;
      shift += 7;
      if (!(bytes[i++] & 0x80)) break;
    }
    if (i + length > bytes.size()) break;
    // CONNACK: flags, reason; DISCONNECT: reason first (absent = 0).
    int reason = 0;
    if (type == 2 && length >= 2) reason = bytes[i + 1];
    if (type == 14 && length >= 1) reason = bytes[i];
    out.emplace_back(type, reason);
    at = i + length;
  }
  return out;
}

bool healthy(const GatewayProcess& gateway) { return testing::curl_get(gateway.url("/healthz")).status == 200; }

}  // namespace

TEST_CASE("MQTT: QoS 0/1/2 over 3.1.1 and 5.0 land in Kafka exactly once; refusals never") {
  const std::string run = testing::unique_run_id();
  const std::uint16_t port = testing::free_port();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run, port, 50));
  gateway.start();
  gateway.wait_ready();
  const std::int64_t ts = testing::unix_ms() - 10'000;
  std::vector<std::string> ids;

  for (const std::string version : {"mqttv311", "mqttv5"}) {
    for (int qos = 0; qos <= 2; ++qos) {
      const std::string id = version + "-q" + std::to_string(qos);
      const auto result = mosquitto_pub(port, version, qos, "truck-1", "truck-1-token", "acme/truck-1/location",
                                        location("truck-1", id, ts));
      CHECK_MESSAGE(result.exit_code == 0, result.out);
      if (qos == 1) CHECK_MESSAGE(result.out.find("received PUBACK") != std::string::npos, result.out);
      if (qos == 2) CHECK_MESSAGE(result.out.find("received PUBCOMP") != std::string::npos, result.out);
      ids.push_back(id);
    }
  }
  // A device type's own topic scheme (OwnTracks style: owntracks/<user>/<device>).
  auto own = mosquitto_pub(port, "mqttv311", 1, "phone-1", "phone-1-token", "owntracks/alice/phone-1",
                           location("phone-1", "phone-q1", ts));
  CHECK_MESSAGE(own.exit_code == 0, own.out);
  ids.push_back("phone-q1");

  // Wrong credentials: CONNACK 0x86 (v5) / return code 4 (3.1.1); mosquitto_pub exits with it.
  auto wrong5 = mosquitto_pub(port, "mqttv5", 1, "truck-1", "nope", "acme/truck-1/location", location("truck-1", "x1", ts));
  CHECK(wrong5.exit_code == 0x86);
  CHECK_MESSAGE(wrong5.out.find("Bad User Name or Password") != std::string::npos, wrong5.out);
  auto wrong3 = mosquitto_pub(port, "mqttv311", 1, "truck-1", "nope", "acme/truck-1/location", location("truck-1", "x2", ts));
  CHECK(wrong3.exit_code == 4);
  // The right token under another device's name is as wrong.
  auto other_name = mosquitto_pub(port, "mqttv5", 1, "truck-2", "truck-1-token", "acme/truck-2/location",
                                  location("truck-2", "x3", ts));
  CHECK(other_name.exit_code == 0x86);

  // Topic spoofing: truck-1 publishing as truck-2. v5: PUBACK 0x87 with a reason string;
  // 3.1.1: acknowledged as dropped (it has no negative ack), counted — nothing in Kafka either way.
  auto spoof5 = mosquitto_pub(port, "mqttv5", 1, "truck-1", "truck-1-token", "acme/truck-2/location",
                              location("truck-2", "spoof5", ts));
  CHECK_MESSAGE(spoof5.out.find("RC:135") != std::string::npos, spoof5.out);
  CHECK_MESSAGE(spoof5.out.find("not device truck-1's") != std::string::npos, spoof5.out);
  auto spoof3 = mosquitto_pub(port, "mqttv311", 1, "truck-1", "truck-1-token", "acme/truck-2/location",
                              location("truck-2", "spoof3", ts));
  CHECK_MESSAGE(spoof3.exit_code == 0, spoof3.out);
  // A payload naming another device on the right topic: the pipeline refuses it (0x87 too).
  auto spoof_body = mosquitto_pub(port, "mqttv5", 1, "truck-1", "truck-1-token", "acme/truck-1/location",
                                  location("truck-2", "spoof-body", ts));
  CHECK_MESSAGE(spoof_body.out.find("RC:135") != std::string::npos, spoof_body.out);
  // Not a record: PUBACK 0x99 Payload format invalid with the reason.
  auto invalid = mosquitto_pub(port, "mqttv5", 1, "truck-1", "truck-1-token", "acme/truck-1/location", "{\"lat\":");
  CHECK_MESSAGE(invalid.out.find("RC:153") != std::string::npos, invalid.out);

  // No downlink: SUBSCRIBE is refused (SUBACK 0x87), the client is told why.
  auto sub = testing::run_command({"timeout", "10", "mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(port), "-V",
                                   "mqttv5", "-u", "truck-1", "-P", "truck-1-token", "-t", "acme/truck-1/#", "-C", "1",
                                   "-W", "3"});
  const std::string sub_output = sub.out + sub.err;
  CHECK_MESSAGE(sub_output.find("ubscription") != std::string::npos, sub_output);

  const auto seen =
      testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", ids.size(), kFromMqtt);
  CHECK(seen.size() == ids.size());
  for (const auto& id : ids) CHECK_MESSAGE(seen.count(id) == 1, id);
  for (const auto& [id, count] : seen) CHECK_MESSAGE(count == 1, id, " committed ", count, " times");
  for (const std::string refused : {"x1", "x2", "x3", "spoof5", "spoof3", "spoof-body"}) CHECK(seen.count(refused) == 0);

  const auto metrics = testing::curl_get(gateway.url("/metrics")).body;
  CHECK(metrics.find("telegate_mqtt_dropped_total{reason=\"topic\"}") != std::string::npos);
  CHECK(metrics.find("telegate_mqtt_connects_total{reason=\"Bad User Name or Password\"}") != std::string::npos);
}

TEST_CASE("MQTT: a device that resends after losing its connection before the ack does not duplicate") {
  if (!have_paho()) {
    MESSAGE("paho-mqtt is not installed (scripts/python-env): skipped");
    return;
  }
  const std::string run = testing::unique_run_id();
  const std::uint16_t port = testing::free_port();
  TempDir dir;
  // A slow commit: the ack cannot arrive before Paho's connection is cut.
  GatewayProcess gateway(dir.path(), config_for(run, port, 2500));
  gateway.start();
  gateway.wait_ready();
  const std::int64_t ts = testing::unix_ms() - 10'000;
  std::vector<std::string> ids;
  for (const std::string version : {"3", "5"}) {
    for (const std::string qos : {"1", "2"}) {
      const std::string id = "resend-v" + version + "-q" + qos;
      const std::string file = write_file(dir, id + ".json", location("truck-1", id, ts));
      const auto result = paho({"resend", "127.0.0.1", std::to_string(port), version, "truck-1", "truck-1-token",
                                "acme/truck-1/location", qos, file, "paho-" + id + "-" + run});
      CHECK_MESSAGE(result.exit_code == 0, result.out);
      // Reconnected, with the session continued (session present), and acked only then.
      CHECK_MESSAGE(result.out.find("[\"Success\", true]") != std::string::npos, result.out);
      ids.push_back(id);
    }
  }
  const auto seen =
      testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", ids.size(), kFromMqtt);
  for (const auto& id : ids) CHECK_MESSAGE(seen.count(id) == 1, id);
  for (const auto& [id, count] : seen) CHECK_MESSAGE(count == 1, id, " committed ", count, " times");
}

TEST_CASE("MQTT: the QoS 1 ack waits for the Kafka commit") {
  if (!have_paho()) {
    MESSAGE("paho-mqtt is not installed (scripts/python-env): skipped");
    return;
  }
  const std::string run = testing::unique_run_id();
  const std::uint16_t port = testing::free_port();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run, port, 1000));
  gateway.start();
  gateway.wait_ready();
  const std::string file = write_file(dir, "one.json", R"({"device_id":"truck-1","type":"location","ts":)" +
                                                            std::to_string(testing::unix_ms() - 1000) + R"(,"lat":46.05,"lon":14.51})");
  const int count = 4;
  const auto result = paho({"latency", "127.0.0.1", std::to_string(port), "5", "truck-1", "truck-1-token",
                            "acme/truck-1/location", "1", file, std::to_string(count)});
  REQUIRE_MESSAGE(result.exit_code == 0, result.out);
  // Each ack comes with a transaction commit, which happens once per transaction_max_interval_ms:
  // one after the other, the acks are about that far apart.
  std::vector<double> latencies;
  const char* at = result.out.c_str() + result.out.find('[') + 1;
  while (*at != ']' && *at != '\0') {
    char* end = nullptr;
    latencies.push_back(std::strtod(at, &end));
    if (end == at) break;
    at = *end == ',' ? end + 1 : end;
  }
  REQUIRE(latencies.size() == static_cast<std::size_t>(count));
  double total = 0;
  for (double latency : latencies) total += latency;
  MESSAGE("QoS 1 ack latencies with a 1000 ms commit interval: ", result.out);
  CHECK(total >= 0.8 * (count - 1));
  for (std::size_t i = 1; i < latencies.size(); ++i) CHECK(latencies[i] >= 0.5);
}

TEST_CASE("MQTT: oversized and malformed packets are refused clearly and the gateway keeps running") {
  const std::string run = testing::unique_run_id();
  const std::uint16_t port = testing::free_port();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run, port, 50, ", max_packet_size: 1024"));
  gateway.start();
  gateway.wait_ready();
  bool closed = false;

  SUBCASE("oversized PUBLISH, v5: DISCONNECT 0x95 then close") {
    RawClient client(port);
    REQUIRE(client.connected());
    client.send(connect_packet(mqtt::ProtocolVersion::v5, "truck-1", "truck-1-token"));
    mqtt::Publish publish;
    publish.topic = "acme/truck-1/location";
    const std::string payload(4000, 'x');
    publish.payload = payload;
    std::vector<std::uint8_t> bytes;
    REQUIRE(mqtt::encode(publish, mqtt::ProtocolVersion::v5, bytes).has_value());
    client.send(bytes);
    const auto got = packets(client.receive(closed));
    CHECK(closed);
    REQUIRE(got.size() == 2);
    CHECK(got[0] == std::pair{2, 0x00});   // CONNACK success
    CHECK(got[1] == std::pair{14, 0x95});  // DISCONNECT Packet too large
  }
  SUBCASE("oversized PUBLISH, 3.1.1: closed") {
    RawClient client(port);
    client.send(connect_packet(mqtt::ProtocolVersion::v311, "truck-1", "truck-1-token"));
    // Only the fixed header: the Remaining Length alone is enough to refuse.
    client.send({0x30, 0xff, 0xff, 0x03});
    const auto got = packets(client.receive(closed));
    CHECK(closed);
    REQUIRE(got.size() == 1);
    CHECK(got[0].first == 2);
  }
  SUBCASE("malformed CONNECT, v5: CONNACK 0x81 Malformed Packet") {
    RawClient client(port);
    auto bytes = connect_packet(mqtt::ProtocolVersion::v5, "truck-1", "truck-1-token");
    bytes[9] |= 0x01;  // the reserved bit of the Connect Flags
    client.send(bytes);
    const auto got = packets(client.receive(closed));
    CHECK(closed);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == std::pair{2, 0x81});
  }
  SUBCASE("a PUBLISH before CONNECT, garbage, a truncated stream: closed without an answer") {
    for (const std::vector<std::uint8_t>& bytes :
         {std::vector<std::uint8_t>{0x30, 0x05, 0x00, 0x01, 'a', 'b', 'c'}, std::vector<std::uint8_t>{0x00, 0x00},
          std::vector<std::uint8_t>{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, std::vector<std::uint8_t>{'G', 'E', 'T', ' ', '/'}}) {
      RawClient client(port);
      client.send(bytes);
      const auto got = client.receive(closed);
      CHECK(closed);
      CHECK(got.size() <= 4);  // at most a CONNACK refusal
    }
  }
  SUBCASE("a second CONNECT and a topic alias never set, v5: DISCONNECT 0x82 / 0x94") {
    {
      RawClient client(port);
      const auto connect = connect_packet(mqtt::ProtocolVersion::v5, "truck-1", "truck-1-token");
      client.send(connect);
      client.send(connect);
      const auto got = packets(client.receive(closed));
      CHECK(closed);
      REQUIRE(got.size() == 2);
      CHECK(got[1] == std::pair{14, 0x82});
    }
    {
      RawClient client(port);
      client.send(connect_packet(mqtt::ProtocolVersion::v5, "truck-1", "truck-1-token"));
      mqtt::Publish publish;
      publish.properties.topic_alias = 3;
      publish.payload = "{}";
      std::vector<std::uint8_t> bytes;
      REQUIRE(mqtt::encode(publish, mqtt::ProtocolVersion::v5, bytes).has_value());
      client.send(bytes);
      const auto got = packets(client.receive(closed));
      CHECK(closed);
      REQUIRE(got.size() == 2);
      CHECK(got[1] == std::pair{14, 0x94});
    }
  }
  CHECK(healthy(gateway));
  // And devices still get through.
  auto after = mosquitto_pub(port, "mqttv5", 1, "truck-1", "truck-1-token", "acme/truck-1/location",
                             location("truck-1", "after-" + run, testing::unix_ms() - 1000));
  CHECK_MESSAGE(after.out.find("RC:0") != std::string::npos, after.out);
}

TEST_CASE("MQTT 5: over a rate quota, PUBACK 0x97 Quota exceeded") {
  const std::string run = testing::unique_run_id();
  const std::uint16_t port = testing::free_port();
  TempDir dir;
  // One record saved up, then one every 10 s: the second PUBLISH is over the quota.
  GatewayProcess gateway(dir.path(), config_for(run, port, 50, "}\nquotas: {device: {records_per_second: 0.1, burst: 1}"));
  gateway.start();
  gateway.wait_ready();
  const std::int64_t ts = testing::unix_ms() - 10'000;
  const auto within = mosquitto_pub(port, "mqttv5", 1, "truck-1", "truck-1-token", "acme/truck-1/location",
                                    location("truck-1", "quota-1", ts));
  CHECK_MESSAGE(within.exit_code == 0, within.out);
  const auto over = mosquitto_pub(port, "mqttv5", 1, "truck-1", "truck-1-token", "acme/truck-1/location",
                                  location("truck-1", "quota-2", ts));
  CHECK_MESSAGE(over.out.find("RC:151") != std::string::npos, over.out);
  CHECK_MESSAGE(over.out.find("rate quota") != std::string::npos, over.out);  // the reason string
}

TEST_CASE("MQTT: at the high watermark the listener stops reading every connection; at the low it resumes") {
  const std::string run = testing::unique_run_id();
  const std::uint16_t port = testing::free_port();
  TempDir dir;
  // A budget of 10 records and commits every 2 s: what is admitted stays in flight that long.
  GatewayProcess gateway(dir.path(), config_for(run, port, 2000, "}\nadmission: {max_inflight_records: 10"));
  gateway.start();
  gateway.wait_ready();
  const std::int64_t ts = testing::unix_ms() - 10'000;
  bool closed = false;
  const auto connected = [&](const std::string& device, const std::string& client_id) {  // CONNACK success
    auto client = std::make_unique<RawClient>(port);
    REQUIRE(client->connected());
    client->send(connect_packet(mqtt::ProtocolVersion::v311, device, device + "-token", client_id));
    REQUIRE(packets(client->receive(closed, std::chrono::milliseconds(500))) == std::vector<std::pair<int, int>>{{2, 0}});
    return client;
  };
  const auto idle_client = connected("truck-2", "raw-idle");  // connected before the pause, then only pings
  const auto busy_client = connected("truck-1", "raw-busy");
  RawClient& idle = *idle_client;
  RawClient& busy = *busy_client;
  // 10 records in one PUBLISH fill the budget; one more is over it: the high watermark.
  std::string ten = "[";
  for (int i = 0; i < 10; ++i) ten += (i ? "," : "") + location("truck-1", "wm-" + run + "-" + std::to_string(i), ts + i);
  std::vector<std::uint8_t> bytes;
  for (const auto& [id, payload] : {std::pair<std::uint16_t, std::string>{1, ten + "]"},
                                    {2, location("truck-1", "wm-" + run + "-10", ts + 10)}}) {
    mqtt::Publish publish;
    publish.qos = mqtt::QoS::at_least_once;
    publish.packet_id = id;
    publish.topic = "acme/truck-1/location";
    publish.payload = payload;
    REQUIRE(mqtt::encode(publish, mqtt::ProtocolVersion::v311, bytes).has_value());
  }
  busy.send(bytes);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  // Paused: the idle connection's PINGREQ stays in the kernel, unanswered...
  const auto pinged = std::chrono::steady_clock::now();
  idle.send({0xC0, 0x00});
  CHECK(idle.receive(closed, std::chrono::milliseconds(1000)).empty());
  // ...until the commit empties the budget below the low watermark and reading resumes.
  const auto answered = packets(idle.receive(closed, std::chrono::milliseconds(4000)));
  CHECK(answered == std::vector<std::pair<int, int>>{{13, 0}});  // PINGRESP
  CHECK(std::chrono::steady_clock::now() - pinged < std::chrono::seconds(12));
  // Both PUBLISHes acknowledged in the end: the one over the limit was held, not refused.
  const auto acks = packets(busy.receive(closed, std::chrono::milliseconds(3000)));
  CHECK(std::count(acks.begin(), acks.end(), std::pair{4, 0}) == 2);
  CHECK(testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", 11, kFromMqtt).size() ==
        11);
}
