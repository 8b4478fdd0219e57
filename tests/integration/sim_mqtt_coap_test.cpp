// telegate-sim's field sensors against the real gateway's MQTT and CoAP listeners and the real
// broker: MQTT 3.1.1 and 5 at QoS 1 (Paho), CoAP over UDP with Block1 and over DTLS-PSK
// (libcoap), then `telegate-sim audit` reads the topics read_committed: every msg_id the
// simulator was acknowledged is there exactly once, nothing else of the run is. Also: a rate
// quota's 0x97 and 4.29 are retried until everything lands, a SenML fleet is read by the senml
// codec, and a gateway killed and restarted mid-run (MQTT, CoAP, DTLS) loses and duplicates
// nothing.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway_process.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using namespace std::chrono_literals;
using telegate::testing::GatewayProcess;
using telegate::testing::TempDir;

namespace {

constexpr std::size_t kSensors = 50;

struct Ports {
  std::uint16_t mqtt = testing::free_port();
  std::uint16_t coap = testing::free_udp_port();
  std::uint16_t coaps = testing::free_udp_port();
};

// Devices as `telegate-sim provision --id-prefix P` names them: P-<i>, token P-token-<i>.
std::string devices_yaml(const std::string& prefix, std::size_t count, const std::string& type) {
  std::string yaml;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string id = prefix + "-" + std::to_string(i);
    yaml += "      - {id: " + id + ", device_type: " + type + ", token_sha256: " +
            gateway::sha256_hex(prefix + "-token-" + std::to_string(i)) + "}\n";
  }
  return yaml;
}

std::string config_for(const std::string& run, const Ports& ports) {
  return "instance_id: it-sim-" + run + "\n" +
         "mqtt: {enabled: true, address: 127.0.0.1, port: " + std::to_string(ports.mqtt) + "}\n" +
         "coap: {enabled: true, address: 127.0.0.1, port: " + std::to_string(ports.coap) +
         ", dtls: true, dtls_port: " + std::to_string(ports.coaps) + "}\n" +
         // 100 records/s after a burst of 50: a few thousand records are refused and retried.
         "quotas: {tenants: {limited: {records_per_second: 100, burst: 50}}}\n" +
         testing::kafka_sink_yaml("sim." + run + ".{tenant}.{device_type}", 50) +
         "device_types:\n"
         "  - {name: sim-sensor, codec: json}\n"
         "  - {name: sim-senml, codec: senml}\n"
         "tenants:\n"
         "  - name: sim\n"
         "    devices:\n" +
         devices_yaml("sim", kSensors, "sim-sensor") + devices_yaml("senml", 10, "sim-senml") +
         "  - name: limited\n"
         "    devices:\n" +
         devices_yaml("lim", 5, "sim-sensor");
}

// A count from the simulator's or the audit's JSON line; the test fails when it is missing.
std::size_t count_of(const std::string& json, const std::string& key) {
  std::smatch match;
  const std::regex field("\"" + key + "\":([0-9]+)");
  REQUIRE_MESSAGE(std::regex_search(json, match, field), key << " missing in " << json);
  return std::stoull(match[1].str());
}

// What the gateway holds when a run fails: records in flight and queued for the sink, Kafka
// transactions by outcome, answers by protocol and status. Tells a sink that stopped committing
// from a listener that stopped answering.
std::string gateway_state(const GatewayProcess& gateway) {
  std::istringstream lines(testing::curl_get(gateway.url("/metrics")).body);
  std::string state;
  for (std::string line; std::getline(lines, line);) {
    for (const std::string_view family : {"telegate_inflight_", "telegate_sink_", "telegate_kafka_transactions_total",
                                          "telegate_requests_total", "telegate_coap_", "telegate_mqtt_"}) {
      if (line.starts_with(family)) {
        state += line + "\n";
        break;
      }
    }
  }
  return state;
}

// Runs telegate-sim for one run id; its acknowledged msg_ids go to <dir>/<run id>.acks. A run
// normally takes seconds: one stopped at the harness's limit prints where its lanes were stuck,
// and the gateway's metrics and log show what it held and saw meanwhile.
testing::CommandResult sim(const TempDir& dir, const GatewayProcess& gateway, const std::string& run_id,
                           std::vector<std::string> args) {
  args.insert(args.begin(), TELEGATE_SIM_BINARY);
  args.insert(args.end(), {"--run-id", run_id, "--ack-log", (dir.path() / (run_id + ".acks")).string(), "--routes",
                           "none", "--no-progress"});
  auto result = testing::run_command(args, std::chrono::seconds(75));
  MESSAGE(run_id << ": " << result.out << result.err);
  if (result.exit_code != 0) {
    MESSAGE("gateway metrics:\n" << gateway_state(gateway) << "gateway log, last lines:\n" << gateway.log_tail());
  }
  return result;
}

// Every acknowledged msg_id of the runs starting with `prefix`, exactly once, and nothing
// of theirs unacknowledged.
std::string audit(const TempDir& dir, const std::string& topic, const std::vector<std::string>& run_ids,
                  const std::string& prefix) {
  const auto all = dir.path() / (prefix + "-all.acks");
  std::ofstream out(all);
  for (const std::string& run_id : run_ids) out << std::ifstream(dir.path() / (run_id + ".acks")).rdbuf();
  out.close();
  const auto result = testing::run_command({TELEGATE_SIM_BINARY, "audit", "--bootstrap", testing::kafka_bootstrap(),
                                            "--topic", topic, "--ack-log", all.string(), "--prefix", prefix});
  MESSAGE("audit " << topic << ": " << result.out << result.err);
  CHECK(result.exit_code == 0);
  CHECK(count_of(result.out, "lost") == 0);
  CHECK(count_of(result.out, "duplicated") == 0);
  CHECK(count_of(result.out, "unacknowledged_found") == 0);
  return result.out;
}

// A gateway with the MQTT, CoAP and DTLS listeners on free ports, ready; one per test case.
struct SimGateway {
  SimGateway() {
    gateway.start();
    gateway.wait_ready();
  }
  const std::string run = testing::unique_run_id();
  TempDir dir;
  const Ports ports;
  GatewayProcess gateway{dir.path(), config_for(run, ports)};
};

}  // namespace

TEST_CASE("telegate-sim mqtt and coap: every acknowledged record in Kafka exactly once") {
  SimGateway sim_gateway;
  const std::string& run = sim_gateway.run;
  const TempDir& dir = sim_gateway.dir;
  const Ports& ports = sim_gateway.ports;
  const GatewayProcess& gateway = sim_gateway.gateway;
  const std::string broker = "tcp://127.0.0.1:" + std::to_string(ports.mqtt);
  const std::string coap = "coap://127.0.0.1:" + std::to_string(ports.coap) + "/v1/telemetry";
  const std::string coaps = "coaps://127.0.0.1:" + std::to_string(ports.coaps) + "/v1/telemetry";
  const std::vector<std::string> fleet = {"--devices", std::to_string(kSensors), "--profile", "sensor-json"};
  const auto with = [](std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };

  struct Load {
    std::string run_id;
    std::vector<std::string> args;
    std::size_t records;
  };
  // 20 records a CoAP request are about 4.5 KB: libcoap sends them as Block1 transfers.
  const std::vector<Load> loads = {
      {run + "-mqtt311", with({"mqtt", "--broker", broker, "--mqtt-version", "3.1.1", "--batch", "10"}, fleet), 2000},
      {run + "-mqtt5", with({"mqtt", "--broker", broker, "--mqtt-version", "5", "--inflight", "4", "--batch", "10"}, fleet),
       2000},
      {run + "-coap", with({"coap", "--uri", coap, "--connections", "8", "--batch", "20"}, fleet), 2000},
      {run + "-coaps", with({"coap", "--uri", coaps, "--psk", "--connections", "8", "--batch", "5"}, fleet), 500},
  };
  std::vector<std::string> run_ids;
  for (const Load& load : loads) {
    const auto result = sim(dir, gateway, load.run_id, with(load.args, {"--records", std::to_string(load.records)}));
    REQUIRE(result.exit_code == 0);
    CHECK(count_of(result.out, "accepted") == load.records);
    CHECK(count_of(result.out, "acknowledged") == load.records);
    CHECK(count_of(result.out, "retries") == 0);
    run_ids.push_back(load.run_id);
  }
  const std::string sensors = audit(dir, "sim." + run + ".sim.sim-sensor", run_ids, run + "-");
  CHECK(count_of(sensors, "acknowledged") == 6500);

  // Over the tenant's quota: MQTT 5 answers 0x97, CoAP 4.29 with Max-Age; both are retried
  // with the same msg_ids until every record is in.
  for (const std::string mode : {"mqtt", "coap"}) {
    const std::string run_id = run + "-limited-" + mode;
    std::vector<std::string> args = {mode, "--devices", "5", "--id-prefix", "lim", "--tenant", "limited", "--profile",
                                     "sensor-json", "--batch", "20", "--records", "400"};
    if (std::string(mode) == "mqtt") args = with(args, {"--broker", broker, "--mqtt-version", "5"});
    if (std::string(mode) == "coap") args = with(args, {"--uri", coap, "--connections", "5"});
    const auto result = sim(dir, gateway, run_id, args);
    REQUIRE(result.exit_code == 0);
    CHECK(count_of(result.out, "acknowledged") == 400);
    CHECK(count_of(result.out, "429") > 0);
    CHECK(count_of(result.out, "retries") == count_of(result.out, "429"));
    audit(dir, "sim." + run + ".limited.sim-sensor", {run_id}, run_id);
  }

  // SenML packs carry no msg_ids (the gateway makes them): every fix is one sensor record.
  const auto senml = sim(dir, gateway, run + "-senml", {"mqtt", "--broker", broker, "--mqtt-version", "5", "--devices", "10",
                                               "--id-prefix", "senml", "--profile", "sensor-senml", "--batch", "4",
                                               "--records", "200"});
  CHECK(senml.exit_code == 0);
  CHECK(count_of(senml.out, "accepted") == 200);
  CHECK(count_of(senml.out, "acknowledged") == 0);
}

TEST_CASE("telegate-sim mqtt and coap: a gateway killed and restarted mid-run loses and duplicates nothing") {
  SimGateway sim_gateway;
  const std::string& run = sim_gateway.run;
  const TempDir& dir = sim_gateway.dir;
  const Ports& ports = sim_gateway.ports;
  GatewayProcess& gateway = sim_gateway.gateway;
  const std::vector<std::string> open_loop = {"--devices", std::to_string(kSensors), "--profile", "sensor-json",
                                              "--batch", "10", "--records", "12000", "--rate", "2000",
                                              "--timeout-ms", "5000"};
  auto with = [&open_loop](std::vector<std::string> args) {
    args.insert(args.end(), open_loop.begin(), open_loop.end());
    return args;
  };
  auto mqtt = std::async(std::launch::async, [&] {
    return sim(dir, gateway, run + "-mqtt",
               with({"mqtt", "--broker", "tcp://127.0.0.1:" + std::to_string(ports.mqtt), "--mqtt-version", "5"}));
  });
  auto coap = std::async(std::launch::async, [&] {
    return sim(dir, gateway, run + "-coap",
               with({"coap", "--uri", "coap://127.0.0.1:" + std::to_string(ports.coap) + "/v1/telemetry",
                     "--connections", "32"}));
  });
  // Over DTLS the restarted gateway has forgotten every session: each device finds out by a
  // request timing out and handshakes again, so this fleet is smaller and waits less.
  auto coaps = std::async(std::launch::async, [&] {
    return sim(dir, gateway, run + "-coaps",
               {"coap", "--uri", "coaps://127.0.0.1:" + std::to_string(ports.coaps) + "/v1/telemetry", "--psk",
                "--connections", "32", "--devices", "20", "--profile", "sensor-json", "--batch", "10", "--records",
                "3000", "--rate", "500", "--timeout-ms", "2000"});
  });
  std::this_thread::sleep_for(2s);
  gateway.signal(SIGKILL);
  gateway.wait();
  std::this_thread::sleep_for(1s);
  gateway.start();
  gateway.wait_ready();
  for (auto [load, records] : {std::pair{&mqtt, 12000}, {&coap, 12000}, {&coaps, 3000}}) {
    const auto result = load->get();
    CHECK(result.exit_code == 0);
    CHECK(count_of(result.out, "acknowledged") == records);
    CHECK(count_of(result.out, "retries") > 0);  // the kill was felt: what was in flight was resent
  }
  const std::string found =
      audit(dir, "sim." + run + ".sim.sim-sensor", {run + "-mqtt", run + "-coap", run + "-coaps"}, run + "-");
  CHECK(count_of(found, "acknowledged") == 27000);
}

TEST_CASE("telegate-sim: a run stopped by SIGTERM prints where its lanes were") {
  // A bound UDP socket nobody reads: requests are neither answered nor refused (no ICMP).
  const int silent = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(::bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const std::string uri = "coap://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/v1/telemetry";
  const auto result = testing::run_command({TELEGATE_SIM_BINARY, "coap", "--uri", uri, "--connections", "3", "--devices",
                                            "5", "--profile", "sensor-json", "--batch", "10", "--records", "100", "--no-progress"},
                                           std::chrono::seconds(2));
  ::close(silent);
  MESSAGE(result.out << result.err);
  CHECK(result.exit_code == 128 + SIGTERM);
  CHECK(result.err.find("still running after 2 s") != std::string::npos);
  CHECK(result.out.find("\"interrupted\":{\"signal\":15,\"awaiting_answer\":3,") != std::string::npos);
  CHECK(count_of(result.out, "longest_wait_ms") >= 1000);
}

TEST_CASE("telegate-sim coap: a lane whose request timed out resends from a new session") {
  // The server never answers the lane's first session. On that session libcoap retransmits the
  // lost request for up to 93 s and queues the retry behind it (NSTART = 1): the run would stall
  // until the harness stops it. From a new session the retry is answered at once.
  TempDir dir;
  const auto port_file = dir.path() / "port";
  const char* python = std::getenv("TELEGATE_PYTHON");
  auto server = std::async(std::launch::async, [&] {
    return testing::run_command({python && *python ? python : "python3",
                                 std::string(TELEGATE_SOURCE_DIR) + "/tests/integration/coap_blackhole_server.py",
                                 port_file.string()},
                                std::chrono::seconds(60));
  });
  for (int i = 0; i < 100 && !std::filesystem::exists(port_file); ++i) std::this_thread::sleep_for(100ms);
  REQUIRE(std::filesystem::exists(port_file));
  std::string port;
  std::ifstream(port_file) >> port;
  const auto result = testing::run_command({TELEGATE_SIM_BINARY, "coap", "--uri", "coap://127.0.0.1:" + port + "/v1/telemetry",
                                            "--connections", "1", "--devices", "1", "--profile", "sensor-json", "--batch",
                                            "1", "--records", "3", "--timeout-ms", "1000", "--no-progress"},
                                           std::chrono::seconds(30));
  MESSAGE(result.out << result.err);
  CHECK(result.exit_code == 0);
  CHECK(count_of(result.out, "accepted") == 3);
  CHECK(count_of(result.out, "timeout") == 1);
  CHECK(server.get().exit_code == 0);
}
