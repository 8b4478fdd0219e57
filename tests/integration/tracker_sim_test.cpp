// Fleets of simulated trackers (telegate-sim tracker: GT06 over TCP, Teltonika over TCP and UDP)
// against the real telegate binary and the real broker, then audited read_committed: every
// acknowledged GT06 location is in Kafka exactly once, and every Teltonika record the simulator
// was acknowledged for is there, not more. Also proves the GT06 listener reads past a packet
// type it does not know instead of dropping the connection (and every location behind it).
#include <doctest/doctest.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "gateway_process.hpp"
#include "loopback_socket.hpp"
#include "kafka_reader.hpp"
#include "tracker/gt06/gt06_protocol.hpp"

using namespace telegate;
using telegate::testing::GatewayProcess;
using telegate::testing::TempDir;

namespace {

constexpr std::uint64_t kGt06ImeiBase = 356307042440000;
constexpr std::uint64_t kTeltonikaImeiBase = 352093081420000;
constexpr std::uint64_t kTeltonikaUdpImeiBase = 352093081430000;
constexpr std::size_t kDevices = 4;

// The `tenants:` entries telegate-sim provisions for `devices` trackers from `imei_base`,
// without the leading "tenants:" line so that several tenants can be concatenated.
std::string tracker_tenant(const std::string& tenant, const std::string& device_type, std::uint64_t imei_base) {
  const auto result = testing::run_command({TELEGATE_SIM_BINARY, "provision", "--devices", std::to_string(kDevices),
                                            "--tenant", tenant, "--device-type", device_type, "--imei-base",
                                            std::to_string(imei_base)});
  REQUIRE(result.exit_code == 0);
  REQUIRE(result.out.starts_with("tenants:\n"));
  return result.out.substr(std::string("tenants:\n").size());
}

double json_number(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\":");
  REQUIRE_MESSAGE(at != std::string::npos, key << " missing in " << json);
  return std::stod(json.substr(at + key.size() + 3));
}

std::size_t committed(const std::string& topic) {
  return testing::read_committed_to_end(testing::kafka_bootstrap(), topic).size();
}

}  // namespace

TEST_CASE("simulated GT06 and Teltonika fleets into Kafka, audited exactly once") {
  const std::string run = testing::unique_run_id();
  const std::uint16_t gt06_port = testing::free_port();
  const std::uint16_t teltonika_port = testing::free_port();
  const std::uint16_t teltonika_udp_port = testing::free_udp_port();
  TempDir dir;
  GatewayProcess gateway(
      dir.path(),
      "instance_id: it-tracker-sim-" + run + "\n"
      "tracker:\n"
      "  gt06: {enabled: true, bind: 127.0.0.1, tcp_port: " + std::to_string(gt06_port) + "}\n"
      "  teltonika: {enabled: true, bind: 127.0.0.1, tcp_port: " + std::to_string(teltonika_port) +
          ", udp_port: " + std::to_string(teltonika_udp_port) + "}\n" +
          testing::kafka_sink_yaml("it." + run + ".{tenant}.{type}", 100) +
          "device_types:\n"
          "  - name: concox\n"
          "    codec: gt06\n"
          // The raw packet below carries Traccar's 2015 example fix.
          "    validation: {max_age_s: 3153600000}\n"
          "  - name: fmb\n"
          "    codec: teltonika\n"
          "tenants:\n" +
          tracker_tenant("cars", "concox", kGt06ImeiBase) + tracker_tenant("vans", "fmb", kTeltonikaImeiBase) +
          tracker_tenant("bikes", "fmb", kTeltonikaUdpImeiBase));
  gateway.start();
  gateway.wait_ready();

  SUBCASE("GT06 over TCP: every acknowledged location exactly once") {
    const std::string acks = (dir.path() / "gt06.acks").string();
    const auto sim = testing::run_command({TELEGATE_SIM_BINARY, "tracker", "--protocol", "gt06", "--port",
                                           std::to_string(gt06_port), "--devices", std::to_string(kDevices),
                                           "--records", "400", "--imei-base", std::to_string(kGt06ImeiBase),
                                           "--ack-log", acks});
    INFO(sim.out << sim.err);
    REQUIRE(sim.exit_code == 0);
    CHECK(json_number(sim.out, "accepted") == 400);
    const auto audit = testing::run_command({TELEGATE_SIM_BINARY, "audit", "--bootstrap", testing::kafka_bootstrap(),
                                             "--topic", "it." + run + ".cars.location", "--ack-log", acks});
    INFO(audit.out << audit.err);
    CHECK(audit.exit_code == 0);
    CHECK(json_number(audit.out, "acknowledged") == 400);
    CHECK(json_number(audit.out, "lost") == 0);
    CHECK(json_number(audit.out, "duplicated") == 0);
  }

  SUBCASE("Teltonika over TCP and UDP: each acknowledged record once") {
    const auto tcp = testing::run_command({TELEGATE_SIM_BINARY, "tracker", "--protocol", "teltonika", "--port",
                                           std::to_string(teltonika_port), "--devices", std::to_string(kDevices),
                                           "--records", "600", "--batch", "25", "--imei-base",
                                           std::to_string(kTeltonikaImeiBase)});
    INFO(tcp.out << tcp.err);
    REQUIRE(tcp.exit_code == 0);
    const auto udp = testing::run_command({TELEGATE_SIM_BINARY, "tracker", "--protocol", "teltonika", "--udp",
                                           "--port", std::to_string(teltonika_udp_port), "--devices",
                                           std::to_string(kDevices), "--records", "200", "--batch", "10",
                                           "--imei-base", std::to_string(kTeltonikaUdpImeiBase)});
    INFO(udp.out << udp.err);
    REQUIRE(udp.exit_code == 0);
    // Every simulated AVL record has a fix: one location record and one sensor record (its I/O).
    CHECK(committed("it." + run + ".vans.location") == 600);
    CHECK(committed("it." + run + ".vans.sensor") == 600);
    CHECK(committed("it." + run + ".bikes.location") == 200);
  }

  SUBCASE("GT06: a packet type the gateway does not read is skipped, the stream goes on") {
    namespace gt06 = gateway::tracker::gt06;
    testing::LoopbackSocket tracker(SOCK_STREAM, gt06_port);
    // Login with the first provisioned IMEI: BCD, a leading zero nibble before 15 digits.
    const std::array<std::uint8_t, 8> imei = {0x03, 0x56, 0x30, 0x70, 0x42, 0x44, 0x00, 0x00};
    tracker.send(gt06::packet(gt06::kLogin, imei, 1));
    const std::string login_ack = gt06::packet(gt06::kLogin, {}, 1);
    REQUIRE(tracker.receive(login_ack.size()) == login_ack);
    // An information packet (0x94) the listener does not read, then Traccar's 0x12 location
    // example in the same write: the location must still be acknowledged and committed.
    const std::array<std::uint8_t, 3> information = {0x04, 0x00, 0x01};
    const std::array<std::uint8_t, 26> location = {0x0f, 0x0a, 0x14, 0x0e, 0x15, 0x0b, 0xc5, 0x05, 0xe5,
                                                   0x1e, 0x78, 0x02, 0x93, 0xa9, 0xe8, 0x00, 0x54, 0x00,
                                                   0x00, 0xf6, 0x01, 0x00, 0x6e, 0x00, 0x55, 0xda};
    tracker.send(gt06::packet(0x94, information, 2) + gt06::packet(gt06::kLocation, location, 3));
    const std::string location_ack = gt06::packet(gt06::kLocation, {}, 3);
    REQUIRE(tracker.receive(location_ack.size()) == location_ack);
    const auto records = testing::read_committed_to_end(testing::kafka_bootstrap(), "it." + run + ".cars.location");
    CHECK(records.size() == 1);
  }
}
