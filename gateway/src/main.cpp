// telegate: the gateway process and its operator subcommands.
//
//   telegate [--config FILE] [--set key=value …]        run the gateway
//   telegate check-config [--config FILE] [--set …]     validate the configuration and exit
//   telegate log dump [--dir DIR]                       print a local log as JSON lines
//   telegate hash-token TOKEN                           print the token_sha256 for a device token
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"
#include "telegate/gateway/config.hpp"
#include "telegate/gateway/gateway.hpp"
#include "telegate/sinks/local_log.hpp"

namespace po = boost::program_options;
using namespace telegate;

namespace {

constexpr const char* kUsage =
    "usage: telegate [--config FILE] [--set key=value ...]\n"
    "       telegate check-config [--config FILE] [--set key=value ...]\n"
    "       telegate log dump [--dir DIR]\n"
    "       telegate hash-token TOKEN\n";

std::vector<std::pair<std::string, std::string>> parse_overrides(const std::vector<std::string>& items) {
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const std::string& item : items) {
    const std::size_t equals = item.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw gateway::ConfigError(item, "--set takes key.path=value");
    }
    overrides.emplace_back(item.substr(0, equals), item.substr(equals + 1));
  }
  return overrides;
}

gateway::GatewayConfig config_from(const po::variables_map& options) {
  const auto overrides = parse_overrides(options["set"].as<std::vector<std::string>>());
  if (options.count("config")) return gateway::load_config(options["config"].as<std::string>(), overrides);
  return gateway::parse_config("", overrides);
}

int run_gateway(const std::vector<std::string>& args, bool check_only) {
  po::options_description described("options");
  described.add_options()("config,c", po::value<std::string>(), "YAML config file (default: embedded default)")(
      "set,s", po::value<std::vector<std::string>>()->default_value({}, ""), "override a config key: key.path=value");
  po::variables_map options;
  po::store(po::command_line_parser(args).options(described).run(), options);
  po::notify(options);
  const gateway::GatewayConfig config = config_from(options);
  if (check_only) {
    std::size_t devices = 0;
    for (const auto& tenant : config.tenants) devices += tenant.devices.size();
    std::printf("config ok: instance %s, sink %s, %zu device types, %zu tenants, %zu devices\n",
                config.instance_id.c_str(), config.sink.kind == gateway::SinkKind::kafka ? "kafka" : "local_log",
                config.device_types.size(), config.tenants.size(), devices);
    return 0;
  }
  gateway::Gateway gateway(config);
  return gateway.run();
}

int dump_log(const std::vector<std::string>& args) {
  po::options_description described("options");
  described.add_options()("dir,d", po::value<std::string>()->default_value(sinks::LocalLogConfig{}.directory.string()),
                          "local log directory");
  po::variables_map options;
  po::store(po::command_line_parser(args).options(described).run(), options);
  po::notify(options);

  std::string line;
  std::size_t unreadable = 0;
  const auto read = sinks::read_local_log(options["dir"].as<std::string>(), [&](const sinks::LogEntry& entry) {
    line.clear();
    line += "{\"offset\":" + std::to_string(entry.offset) + ",\"topic\":";
    envelope::append_json_string(line, entry.record.topic);
    line += ",\"key\":";
    envelope::append_json_string(line, entry.record.key);
    line += ",\"tg-route\":";
    envelope::append_json_string(line, entry.record.route_header);
    const auto route = envelope::decode_route_header(entry.record.route_header);
    const auto rendered = route ? envelope::render_json(entry.record.value, route->format)
                                : std::expected<std::string, envelope::EnvelopeError>(std::unexpected(route.error()));
    if (rendered) {
      line += ",\"envelope\":" + *rendered;
    } else {
      ++unreadable;
      line += ",\"error\":";
      envelope::append_json_string(line, rendered.error().message);
    }
    line += "}\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
  });
  if (!read) {
    std::fprintf(stderr, "telegate log dump: %s\n", read.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "telegate log dump: %llu records%s\n", static_cast<unsigned long long>(*read),
               unreadable ? (", " + std::to_string(unreadable) + " with unreadable envelopes").c_str() : "");
  return unreadable ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!args.empty() && args[0] == "--version") {
      std::puts("telegate 0.1.0");
      return 0;
    }
    if (!args.empty() && args[0] == "hash-token") {
      if (args.size() != 2) throw std::invalid_argument("hash-token takes exactly one token");
      std::puts(gateway::sha256_hex(args[1]).c_str());
      return 0;
    }
    if (args.size() >= 2 && args[0] == "log" && args[1] == "dump") {
      return dump_log({args.begin() + 2, args.end()});
    }
    if (!args.empty() && args[0] == "check-config") return run_gateway({args.begin() + 1, args.end()}, true);
    if (!args.empty() && args[0] == "run") args.erase(args.begin());
    return run_gateway(args, false);
  } catch (const gateway::ConfigError& error) {
    std::fprintf(stderr, "telegate: configuration error: %s\n", error.what());
    return 2;
  } catch (const po::error& error) {
    std::fprintf(stderr, "telegate: %s\n%s", error.what(), kUsage);
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "telegate: %s\n", error.what());
    return 1;
  }
}
