// telegate-sim as fleet operators use it: each device profile against the real gateway and the
// real Kafka broker, devices and device types from `telegate-sim provision`, then the topic
// audited with `telegate-sim audit` (read_committed): every acknowledged msg_id exactly once.
// OsmAnd and OwnTracks devices cannot send a msg_id: OsmAnd's are the ones the gateway
// generated and listed in its answers (audited the same way, without a run prefix); OwnTracks'
// reply (`[]`) lists none, so there the topic's count must equal the records accepted.
#include <doctest/doctest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "gateway_process.hpp"
#include "kafka_reader.hpp"

using namespace telegate;
using telegate::testing::CommandResult;
using telegate::testing::GatewayProcess;
using telegate::testing::TempDir;

namespace {

struct SimProfile {
  std::string name;
  std::string id_prefix;
  std::string device_type;
  std::size_t records;
};

const std::vector<SimProfile> kProfiles = {
    {"telegate-json", "tj", "tracker", 2000},
    {"telegate-protobuf", "tp", "compact-tracker", 2000},
    {"osmand", "os", "traccar-phone", 300},  // one fix per request, as the apps send
    {"owntracks", "ot", "owntracks-phone", 300},
};
constexpr std::size_t kDevices = 40;

CommandResult sim(std::vector<std::string> args) {
  args.insert(args.begin(), TELEGATE_SIM_BINARY);
  return testing::run_command(args);
}

// A number from telegate-sim's or its audit's one-line JSON summary.
double json_number(const std::string& json, const std::string& field) {
  const std::size_t at = json.find("\"" + field + "\":");
  REQUIRE_MESSAGE(at != std::string::npos, field, " in ", json);
  return std::strtod(json.c_str() + at + field.size() + 3, nullptr);
}

// The gateway config: every profile's device type and devices exactly as `provision` prints them.
std::string config_for(const std::string& run) {
  std::string types, devices;
  for (const SimProfile& profile : kProfiles) {
    const CommandResult provision = sim({"provision", "--profile", profile.name, "--id-prefix", profile.id_prefix,
                                         "--devices", std::to_string(kDevices)});
    REQUIRE_MESSAGE(provision.exit_code == 0, provision.err);
    std::istringstream lines(provision.out);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.starts_with("  - {name: ")) types += line + "\n";
      if (line.starts_with("      - {id: ")) devices += line + "\n";
    }
  }
  return "instance_id: simprofiles-" + run + "\n" + testing::kafka_sink_yaml("it." + run + ".sim.{device_type}", 50) +
         "catalog: {store: file}\n"
         "device_types:\n" + types + "tenants:\n  - name: sim\n    devices:\n" + devices;
}

// Runs `telegate-sim http` and checks that every record was accepted; returns its summary.
std::string run_load(const GatewayProcess& gateway, const SimProfile& profile, const std::string& run_id,
                     const std::string& ack_log, std::vector<std::string> more) {
  std::vector<std::string> args = {"http", "--url", gateway.url("/v1/telemetry"), "--profile", profile.name,
                                   "--id-prefix", profile.id_prefix, "--devices", std::to_string(kDevices),
                                   "--connections", "4", "--records", std::to_string(profile.records), "--run-id",
                                   run_id, "--ack-log", ack_log, "--no-progress"};
  args.insert(args.end(), more.begin(), more.end());
  const CommandResult load = sim(args);
  INFO(profile.name, ": ", load.out, load.err, gateway.log_tail());
  CHECK(load.exit_code == 0);
  CHECK(json_number(load.out, "accepted") == static_cast<double>(profile.records));
  CHECK(json_number(load.out, "rejected") == 0);
  return load.out;
}

// `telegate-sim audit`: each acknowledged msg_id (those starting with `prefix`) exactly once.
void audit(const std::string& topic, const std::string& ack_log, const std::string& prefix, std::size_t expected) {
  std::vector<std::string> args = {"audit", "--bootstrap", testing::kafka_bootstrap(), "--topic", topic, "--ack-log",
                                   ack_log};
  if (!prefix.empty()) args.insert(args.end(), {"--prefix", prefix});
  const CommandResult result = sim(args);
  INFO(topic, ": ", result.out, result.err);
  CHECK(result.exit_code == 0);
  CHECK(json_number(result.out, "acknowledged") == static_cast<double>(expected));
  CHECK(json_number(result.out, "found") == static_cast<double>(expected));
  CHECK(json_number(result.out, "lost") == 0);
  CHECK(json_number(result.out, "duplicated") == 0);
}

}  // namespace

TEST_CASE("every telegate-sim profile is delivered exactly once, through the real gateway into Kafka") {
  const std::string run = testing::unique_run_id();
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run));
  gateway.start();
  gateway.wait_ready();
  const auto topic = [&](const SimProfile& profile) { return "it." + run + ".sim." + profile.device_type; };
  const auto acks = [&](const std::string& name) { return (dir.path() / ("acks-" + name)).string(); };

  for (const SimProfile& profile : kProfiles) {
    const std::string run_id = run + "-" + profile.id_prefix;
    run_load(gateway, profile, run_id, acks(profile.name), {"--batch", "25"});
    if (profile.name == "owntracks") {
      // No msg_ids to audit: the topic must hold exactly the records the devices were told of.
      CHECK(testing::read_committed_to_end(testing::kafka_bootstrap(), topic(profile)).size() == profile.records);
    } else if (profile.name == "osmand") {
      audit(topic(profile), acks(profile.name), "", profile.records);  // gateway-generated msg_ids
    } else {
      audit(topic(profile), acks(profile.name), run_id + "-", profile.records);
    }
  }

  // A fleet on a schedule whose devices lose coverage: the backlog a device sends when it comes
  // back (original event times, same msg_ids scheme) is audited like everything else.
  const SimProfile fleet{"telegate-json", "tj", "tracker", 400};
  const std::string fleet_run = run + "-fleet";
  const std::string summary = run_load(gateway, fleet, fleet_run, acks("fleet"),
                                       {"--batch", "2", "--report-interval-s", "1", "--gap-every-s", "2",
                                        "--gap-min-s", "1", "--gap-max-s", "3"});
  CHECK(json_number(summary, "store_and_forward_records") > 0);
  audit(topic(fleet), acks("fleet"), fleet_run + "-", fleet.records);
}
