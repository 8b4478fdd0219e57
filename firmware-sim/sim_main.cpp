// telegate-sim: simulated devices posting telemetry to telegate, and the load generator for
// tests and benchmarks. This file is the command line only; the pieces:
//   load_driver   devices, pacing (open/closed loop), lanes     retry_policy  408/429/503/lost → resend
//   motion        where devices are                            payloads      device profiles → bodies
//   transport     Batch → Outcome seam                         run_report    summary, latency histogram
//   http_, mqtt_, coap_transport: the channels, shared_channel: one client behind many lanes
//   sensors       field-sensor readings                        batch_acks    msg_ids of a batch acked whole
//   sim_audit     the Kafka audit and partition leaders
//
//   telegate-sim provision --devices N [--profile P] [--id-prefix sim] [--tenant T] [--device-type D]
//       prints the YAML `tenants:` block for N simulated devices (<prefix>-<i>, tokens
//       <prefix>-token-<i>); with --profile, the `device_types:` entry that reads it first
//   telegate-sim http --url URL --devices N --connections C --batch B --records R
//                     [--profile P] [--rate RPS | --report-interval-s S] [--duration-s S]
//                     [--routes DIR|none] [--stop-every-s S] [--gap-every-s S …]
//                     [--ack-log FILE] [--run-id ID] [--timeout-ms MS] [--max-retries N]
//                     [--output json|human|both] [--progress | --no-progress]
//       closed loop (as fast as acknowledged) or open loop (--rate records/s, or each device
//       every --report-interval-s), prints a summary: counts by outcome, records/s and ack
//       latency percentiles. --ack-log writes every acknowledged msg_id, one per line.
//   telegate-sim mqtt --broker tcp://H:P [--mqtt-version 3.1.1|5] [--qos 0|1] [--inflight K]
//                     [--mqtt-topic T] [--tenant T] and the http options but --url, --connections
//       one MQTT connection per device (mqtt_transport.hpp), publishes acknowledged by PUBACK.
//   telegate-sim coap --uri coap[s]://H:P/path [--psk] and the http options but --url
//       confirmable POSTs (coap_transport.hpp), acknowledged by 2.04.
//   telegate-sim tracker --protocol teltonika|gt06 --host H --port P [--udp] [--imei-base N] …
//       vehicle trackers over raw TCP/UDP (tracker_replay.hpp): IMEI login, frames acked per frame.
//   telegate-sim audit --bootstrap B --topic T --ack-log FILE [--prefix P]
//       reads T with read_committed and compares it with the ack log (sim_audit.hpp).
//   telegate-sim leaders --bootstrap B --topic T
//       prints each partition's leader node id.
#include <boost/asio/io_context.hpp>
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <string>

#include "coap_transport.hpp"
#include "http_transport.hpp"
#include "load_driver.hpp"
#include "mqtt_transport.hpp"
#include "run_report.hpp"
#include "sim_audit.hpp"
#include "tracker_replay.hpp"
#include "telegate/gateway/auth.hpp"

namespace po = boost::program_options;
using namespace telegate::sim;

namespace {

int provision(const po::variables_map& options) {
  const auto devices = options["devices"].as<std::size_t>();
  const ProfileInfo& profile = profile_info(parse_profile(options["profile"].as<std::string>()));
  const std::string type =
      options["device-type"].defaulted() ? std::string(profile.device_type) : options["device-type"].as<std::string>();
  // The device type only when a profile is asked for: scripts that append the tenants block to
  // a config declaring its own device types keep working.
  if (!options["profile"].defaulted()) {
    std::printf("device_types:\n  - ");
    std::printf(std::string(profile.device_type_yaml).c_str(), type.c_str());
    std::printf("\n");
  }
  const std::string prefix = options["id-prefix"].as<std::string>();
  std::printf("tenants:\n  - name: %s\n    devices:\n", options["tenant"].as<std::string>().c_str());
  for (std::size_t i = 0; i < devices; ++i) {
    std::printf("      - {id: %s, device_type: %s, token_sha256: %s}\n", device_id(prefix, i).c_str(), type.c_str(),
                telegate::gateway::sha256_hex(device_token(prefix, i)).c_str());
  }
  return 0;
}

// Random per process, in hex: the run id when --run-id is not given.
std::string random_run_id() {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx",
                static_cast<unsigned long long>(std::random_device{}()) << 32 | std::random_device{}());
  return text;
}

// Resident memory of this process (VmRSS), for the fleet's bytes per device.
double rss_bytes() {
  std::FILE* status = std::fopen("/proc/self/status", "r");
  if (!status) return 0;
  char line[256];
  double kilobytes = 0;
  while (std::fgets(line, sizeof line, status)) {
    if (std::sscanf(line, "VmRSS: %lf kB", &kilobytes) == 1) break;
  }
  std::fclose(status);
  return kilobytes * 1024.0;
}

MotionModel motion_model(const po::variables_map& options, bool scheduled) {
  MotionSettings settings;
  settings.stop_every_s = options["stop-every-s"].as<double>();
  // Gaps need a device clock that means something: only devices reporting on a schedule have them.
  settings.gap_every_s = scheduled ? options["gap-every-s"].as<double>() : 0.0;
  settings.gap_min_s = options["gap-min-s"].as<double>();
  settings.gap_max_s = options["gap-max-s"].as<double>();
  if (settings.gap_min_s > settings.gap_max_s) throw std::invalid_argument("--gap-min-s must not exceed --gap-max-s");
  const std::string routes = options["routes"].as<std::string>();
  if (routes == "none" || (options["routes"].defaulted() && !std::filesystem::is_directory(routes))) {
    return MotionModel(synthetic_routes(8, 42), settings);
  }
  return MotionModel(load_routes(routes), settings);
}

// Makes the lanes' channels once the io_context exists; may reshape the plan first (MQTT: one
// connection per device). What it returns is destroyed after the run, before the io_context.
using TransportSetup = std::function<ChannelFactory(boost::asio::io_context&, LoadPlan&)>;

// Raises the open-file limit to its hard limit and refuses a run needing more sockets than that.
void need_descriptors(std::size_t sockets, const char* why) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  constexpr std::size_t kReserved = 64;  // the ack log, stdio, libraries' own
  if (sockets + kReserved > limit.rlim_cur) {
    throw std::invalid_argument(fmt::format("{} needs {} sockets, and the open-file limit is {} (ulimit -n): at most {}",
                                            why, sockets, limit.rlim_cur, limit.rlim_cur - kReserved));
  }
}

// The run every transport shares: the plan from the options, the fleet, the summary.
int load(const po::variables_map& options, const TransportSetup& transport) {
  LoadPlan plan;
  plan.devices = options["devices"].as<std::size_t>();
  plan.connections = options["connections"].as<std::size_t>();
  plan.batch = options["batch"].as<std::size_t>();
  plan.records = options["records"].as<std::size_t>();
  plan.rate = options["rate"].as<double>();
  plan.report_interval_s = options["report-interval-s"].as<double>();
  plan.duration_s = options["duration-s"].as<double>();
  plan.max_retries = options["max-retries"].as<std::size_t>();
  plan.profile = parse_profile(options["profile"].as<std::string>());
  plan.id_prefix = options["id-prefix"].as<std::string>();
  plan.run_id = options.count("run-id") ? options["run-id"].as<std::string>() : random_run_id();
  plan.progress = options.count("no-progress") ? false : options.count("progress") ? true : isatty(STDERR_FILENO) != 0;
  const std::string output = options["output"].as<std::string>();
  if (output != "json" && output != "human" && output != "both") throw std::invalid_argument("--output: json | human | both");
  if (plan.devices == 0 || plan.connections == 0 || plan.batch == 0) {
    throw std::invalid_argument("--devices, --connections and --batch must be at least 1");
  }
  if (plan.devices > UINT32_MAX) throw std::invalid_argument("--devices: at most 4294967295");
  if (plan.rate > 0 && plan.report_interval_s > 0) {
    throw std::invalid_argument("--rate and --report-interval-s both set the open-loop rate: give one");
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> ack_log(nullptr, &std::fclose);
  if (options.count("ack-log")) {
    ack_log.reset(std::fopen(options["ack-log"].as<std::string>().c_str(), "w"));
    if (!ack_log) throw std::invalid_argument("--ack-log: cannot write " + options["ack-log"].as<std::string>());
  }

  boost::asio::io_context io;
  const ChannelFactory channels = transport(io, plan);
  const MotionModel motion = motion_model(options, plan.report_interval_s > 0);
  const double rss_before = rss_bytes();
  Fleet fleet(plan, motion);
  const double per_device = (rss_bytes() - rss_before) / static_cast<double>(plan.devices);
  RunReport report(plan.run_id, ack_log.get());
  const auto started = std::chrono::steady_clock::now();
  run_load(io, plan, fleet, channels, report);
  report.finish(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), fleet.made(),
                {options["profile"].as<std::string>(), plan.devices, fleet.forwarded(), per_device});
  if (ack_log && std::fflush(ack_log.get()) != 0) throw std::runtime_error("--ack-log: write failed");
  if (output != "human") std::printf("%s\n", report.json().c_str());
  if (output != "json") std::printf("%s", report.human().c_str());
  if (const int signal_number = report.interrupted_by()) {
    // The lanes' handlers were never run to their end: tearing the transports down (Paho's
    // threads, libcoap's sessions) could wait on requests that will never be answered. The
    // summary and the ack log are out; the kernel closes the sockets.
    std::fflush(stdout);
    std::_Exit(128 + signal_number);
  }
  return report.all_accepted() ? 0 : 1;
}

std::chrono::milliseconds timeout_of(const po::variables_map& options) {
  return std::chrono::milliseconds(options["timeout-ms"].as<std::size_t>());
}

int load_http(const po::variables_map& options) {
  return load(options, [&](boost::asio::io_context& io, LoadPlan&) -> ChannelFactory {
    auto endpoint = std::make_shared<HttpEndpoint>(resolve_http_endpoint(io, options["url"].as<std::string>(), timeout_of(options)));
    return [&io, endpoint] { return make_http_channel(io, *endpoint); };
  });
}

// The gateway's MQTT listener authenticates a device per connection, so a connection never
// plays several devices: there are as many as devices, and --inflight publishes on each.
int load_mqtt(const po::variables_map& options) {
  return load(options, [&](boost::asio::io_context& io, LoadPlan& plan) -> ChannelFactory {
    auto settings = std::make_shared<MqttSettings>();
    settings->broker = options["broker"].as<std::string>();
    const std::string version = options["mqtt-version"].as<std::string>();
    if (version != "3.1.1" && version != "5") throw std::invalid_argument("--mqtt-version: 3.1.1 | 5");
    settings->v5 = version == "5";
    settings->qos = options["qos"].as<int>();
    settings->inflight = options["inflight"].as<std::size_t>();
    settings->topic = options["mqtt-topic"].as<std::string>();
    settings->tenant = options["tenant"].as<std::string>();
    settings->timeout = timeout_of(options);
    check_mqtt_settings(*settings);
    if (!options["connections"].defaulted() && plan.connections != plan.devices) {
      throw std::invalid_argument("--connections: the MQTT listener authenticates one device per connection, so "
                                  "there is one per device (--devices); leave --connections out");
    }
    need_descriptors(plan.devices, "one MQTT connection per device");
    plan.connections = plan.devices * settings->inflight;
    std::shared_ptr<SharedTransport> connections = make_mqtt_connections(io, *settings, plan.devices);
    return [settings, connections] { return connections->channel(); };
  });
}

// One libcoap context; a session per lane (--connections) over UDP, per device over DTLS.
int load_coap(const po::variables_map& options) {
  return load(options, [&](boost::asio::io_context& io, LoadPlan& plan) -> ChannelFactory {
    auto settings = std::make_shared<CoapSettings>(
        parse_coap_uri(options["uri"].as<std::string>(), options.count("psk") > 0, timeout_of(options)));
    check_coap_profile(profile_info(plan.profile).wire);
    if (settings->dtls) {
      need_descriptors(plan.devices, "one DTLS session per device");
    } else {
      need_descriptors(plan.connections, "one UDP session per connection");
    }
    std::shared_ptr<SharedTransport> client = make_coap_client(io, *settings, plan.devices);
    return [settings, client] { return client->channel(); };
  });
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description described("telegate-sim options");
  described.add_options()("help,h", "show this help")("devices", po::value<std::size_t>()->default_value(1),
                                                       "simulated devices (sim-0 … sim-N-1)")(
      "tenant", po::value<std::string>()->default_value("sim"), "provision: tenant name")(
      "device-type", po::value<std::string>()->default_value("tracker"), "provision: device type")(
      "url", po::value<std::string>()->default_value("http://127.0.0.1:8080/v1/telemetry"), "http: endpoint")(
      "connections", po::value<std::size_t>()->default_value(4), "http: concurrent keep-alive connections")(
      "batch", po::value<std::size_t>()->default_value(50), "http: records per request")(
      "records", po::value<std::size_t>()->default_value(10'000), "http: total records to send")(
      "rate", po::value<double>()->default_value(0), "http: records/s (open loop); 0 = closed loop")(
      "max-retries", po::value<std::size_t>()->default_value(20),
      "retries of a batch (408/429/503, 0x97, 4.29/5.03, lost connection, timeout)")(
      "timeout-ms", po::value<std::size_t>()->default_value(30'000), "http: connect, or write + answer, timeout")(
      "ack-log", po::value<std::string>(), "http: write acknowledged msg_ids here; audit: read them")(
      "run-id", po::value<std::string>(), "http: msg_id prefix (default random)")(
      "bootstrap", po::value<std::string>(), "audit, leaders: Kafka bootstrap servers")(
      "topic", po::value<std::string>(), "audit, leaders: topic")(
      "prefix", po::value<std::string>(), "audit: only msg_ids starting with this (a run id)")(
      "profile", po::value<std::string>()->default_value("telegate-json"),
      "provision, http: telegate-json | telegate-protobuf | osmand | owntracks")(
      "id-prefix", po::value<std::string>()->default_value("sim"), "provision, http: devices <prefix>-<i>, tokens <prefix>-token-<i>")(
      "report-interval-s", po::value<double>()->default_value(0),
      "http: each device reports every S s (open loop, devices / S reports/s); 0 = --rate or closed loop")(
      "duration-s", po::value<double>()->default_value(0), "http: stop making records after S s; 0 = after --records")(
      "routes", po::value<std::string>()->default_value(TELEGATE_SIM_ROUTES),
      "http: folder of .gpx recordings devices follow, or none (synthetic roads)")(
      "stop-every-s", po::value<double>()->default_value(600), "http: mean time between a device's stops; 0 = never")(
      "gap-every-s", po::value<double>()->default_value(1800),
      "http: mean time between coverage gaps (with --report-interval-s only); 0 = never")(
      "gap-min-s", po::value<double>()->default_value(30), "http: shortest coverage gap")(
      "gap-max-s", po::value<double>()->default_value(300), "http: longest coverage gap")(
      "output", po::value<std::string>()->default_value("json"), "http: json (one line) | human | both")(
      "progress", "http: a progress line on stderr every second (default when stderr is a terminal)")(
      "no-progress", "http: no progress line")(
      "broker", po::value<std::string>()->default_value("tcp://127.0.0.1:1883"), "mqtt: the gateway's MQTT listener")(
      "mqtt-version", po::value<std::string>()->default_value("3.1.1"), "mqtt: 3.1.1 | 5")(
      "qos", po::value<int>()->default_value(1), "mqtt: 0 | 1 (only QoS 1 is acknowledged)")(
      "inflight", po::value<std::size_t>()->default_value(1), "mqtt: unacknowledged publishes per connection")(
      "mqtt-topic", po::value<std::string>()->default_value("{tenant}/{device_id}/telemetry"),
      "mqtt: topic; {tenant} is --tenant, {device_id} the device")(
      "uri", po::value<std::string>()->default_value("coap://127.0.0.1:5683/v1/telemetry"),
      "coap: coap://host[:port]/path, or coaps:// with --psk")(
      "psk", "coap: DTLS-PSK, identity = device id, key = hex SHA-256 of its token");
  telegate::sim::add_tracker_options(described);
  po::positional_options_description positional;
  positional.add("mode", 1);
  described.add_options()("mode", po::value<std::string>(), "provision | http | mqtt | coap | tracker | audit | leaders");
  try {
    po::variables_map options;
    po::store(po::command_line_parser(argc, argv).options(described).positional(positional).run(), options);
    po::notify(options);
    const std::string mode = options.count("mode") ? options["mode"].as<std::string>() : "";
    if (options.count("help") || mode.empty()) {
      std::printf("usage: telegate-sim provision|http|mqtt|coap|tracker|audit|leaders [options]\n");
      described.print(std::cout);
      return options.count("help") ? 0 : 2;
    }
    if (mode == "provision" && options.count("imei-base")) return telegate::sim::provision_trackers(options);
    if (mode == "provision") return provision(options);
    if (mode == "tracker") return telegate::sim::tracker_replay(options);
    if (mode == "http") return load_http(options);
    if (mode == "mqtt") return load_mqtt(options);
    if (mode == "coap") return load_coap(options);
    if (mode == "audit") return telegate::sim::audit(options);
    if (mode == "leaders") return telegate::sim::leaders(options);
    std::fprintf(stderr, "telegate-sim: unknown mode '%s' (provision | http | mqtt | coap | tracker | audit | leaders)\n", mode.c_str());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "telegate-sim: %s\n", error.what());
    return 2;
  }
}
