// telegate-sim: simulated devices posting telemetry to telegate, and the load generator for
// tests and benchmarks.
//
//   telegate-sim provision --devices N [--tenant T] [--device-type D]
//       prints the YAML `tenants:` block for N simulated devices (tokens sim-token-<i>)
//   telegate-sim http --url URL --devices N --connections C --batch B --records R [--rate RPS]
//       closed loop (as fast as acknowledged) or open loop (--rate records/s), prints a JSON
//       summary: counts by outcome, records/s and ack latency percentiles.
//
// Each connection plays one device at a time (device i = connection i mod N) and moves it along
// a plausible track: speed and heading drift, positions advance by speed × elapsed time.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "telegate/gateway/auth.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

namespace {

std::string device_id(std::size_t index) { return "sim-" + std::to_string(index); }
std::string device_token(std::size_t index) { return "sim-token-" + std::to_string(index); }

int provision(const po::variables_map& options) {
  const auto devices = options["devices"].as<std::size_t>();
  std::printf("tenants:\n  - name: %s\n    devices:\n", options["tenant"].as<std::string>().c_str());
  for (std::size_t i = 0; i < devices; ++i) {
    std::printf("      - {id: %s, device_type: %s, token_sha256: %s}\n", device_id(i).c_str(),
                options["device-type"].as<std::string>().c_str(), telegate::gateway::sha256_hex(device_token(i)).c_str());
  }
  return 0;
}

// A device moving along a road-like track; owned by one connection.
struct Track {
  double lat;
  double lon;
  double speed_mps;
  double heading_deg;
  std::int64_t last_ms;

  void advance(std::int64_t now_ms, std::mt19937_64& random) {
    const double seconds = static_cast<double>(now_ms - last_ms) / 1000.0;
    last_ms = now_ms;
    std::normal_distribution<double> turn(0.0, 3.0), accelerate(0.0, 0.5);
    // Rounded as it is printed (%.1f), so 359.96 cannot go out as "360.0", which is invalid.
    heading_deg = std::fmod(std::round((heading_deg + turn(random) + 360.0) * 10.0) / 10.0, 360.0);
    speed_mps = std::clamp(speed_mps + accelerate(random), 0.0, 33.0);
    const double metres = speed_mps * seconds;
    const double radians = heading_deg * M_PI / 180.0;
    lat += metres * std::cos(radians) / 111'320.0;
    lon += metres * std::sin(radians) / (111'320.0 * std::cos(lat * M_PI / 180.0));
  }
};

struct Stats {
  std::size_t records_accepted = 0;
  std::size_t records_rejected = 0;
  std::size_t requests = 0;
  std::map<std::string, std::size_t> outcomes;  // "200", "503", "connect_error", …
  std::vector<double> latencies_ms;
};

struct LoadOptions {
  std::string host;
  std::string port;
  std::string target;
  std::size_t devices;
  std::size_t connections;
  std::size_t batch;
  std::size_t records;
  double rate;  // records/s over all connections; 0 = closed loop
  std::size_t max_retries;
};

// One keep-alive connection posting batches in a loop. Lives until the record budget is spent;
// runs on the single io_context thread.
// Random per process, in hex.
const std::string& run_nonce() {
  static const std::string nonce = [] {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(std::random_device{}()) << 32 |
                                                    std::random_device{}());
    return std::string(text);
  }();
  return nonce;
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, const LoadOptions& options, std::size_t index, std::size_t& remaining, Stats& stats)
      : stream_(io), timer_(io), options_(options), remaining_(remaining), stats_(stats), random_(index * 7919 + 17) {
    device_ = index % options.devices;
    // Unique per run and connection: the gateway de-duplicates by msg_id, so a second run (or a
    // second connection playing the same device) must not reuse the first one's ids.
    msg_id_prefix_ = device_id(device_) + "-" + run_nonce() + "-" + std::to_string(index);
    std::uniform_real_distribution<double> spread(-0.2, 0.2);
    track_ = Track{46.05 + spread(random_), 14.51 + spread(random_), 12.0, 90.0, now_ms()};
    interval_ = options.rate > 0 ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                       static_cast<double>(options.batch * options.connections) / options.rate))
                                 : Clock::duration::zero();
    next_send_ = Clock::now();
  }

  void start(const asio::ip::tcp::resolver::results_type& endpoints) {
    endpoints_ = endpoints;
    connect();
  }

 private:
  static std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  void connect() {
    stream_.async_connect(endpoints_, [self = shared_from_this()](beast::error_code error, auto) {
      if (error) return self->fail("connect_error");
      self->next();
    });
  }

  void next() {
    if (retries_ == 0) {
      if (remaining_ == 0) return close();
      count_ = std::min(options_.batch, remaining_);
      remaining_ -= count_;
      build_body();
    }
    if (interval_ != Clock::duration::zero()) {
      timer_.expires_at(next_send_);
      next_send_ += interval_;
      timer_.async_wait([self = shared_from_this()](beast::error_code) { self->send(); });
    } else {
      send();
    }
  }

  void build_body() {
    std::string& body = request_.body();
    body.clear();
    body += '[';
    const std::string id = device_id(device_);
    for (std::size_t i = 0; i < count_; ++i) {
      track_.advance(now_ms(), random_);
      char record[320];
      const int length = std::snprintf(
          record, sizeof record,
          R"(%s{"device_id":"%s","type":"location","ts":%lld,"msg_id":"%s-%llu","lat":%.7f,"lon":%.7f,"speed":%.2f,"heading":%.1f,"accuracy":4.5,"battery":87})",
          i ? "," : "", id.c_str(), static_cast<long long>(track_.last_ms), msg_id_prefix_.c_str(),
          static_cast<unsigned long long>(sequence_++), track_.lat, track_.lon, track_.speed_mps, track_.heading_deg);
      body.append(record, static_cast<std::size_t>(length));
    }
    body += ']';
    request_.method(http::verb::post);
    request_.target(options_.target);
    request_.version(11);
    request_.keep_alive(true);
    request_.set(http::field::host, options_.host);
    request_.set(http::field::content_type, "application/json");
    request_.set(http::field::authorization, "Bearer " + device_token(device_));
    request_.prepare_payload();
  }

  void send() {
    sent_at_ = Clock::now();
    http::async_write(stream_, request_, [self = shared_from_this()](beast::error_code error, std::size_t) {
      if (error) return self->fail("write_error");
      self->response_ = {};
      http::async_read(self->stream_, self->buffer_, self->response_,
                       [self](beast::error_code read_error, std::size_t) { self->on_response(read_error); });
    });
  }

  void on_response(beast::error_code error) {
    if (error) return fail("read_error");
    const unsigned status = response_.result_int();
    ++stats_.requests;
    ++stats_.outcomes[std::to_string(status)];
    if (status == 200 || status == 207 || status == 422) {
      stats_.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent_at_).count());
      const std::string& body = response_.body();
      stats_.records_accepted += field(body, "\"accepted\":");
      stats_.records_rejected += field(body, "\"rejected\":");
      retries_ = 0;
      return next();
    }
    if ((status == 429 || status == 503) && retries_ < options_.max_retries) return retry();
    stats_.records_rejected += count_;
    retries_ = 0;
    next();
  }

  static std::size_t field(const std::string& body, std::string_view name) {
    const std::size_t at = body.find(name);
    return at == std::string::npos ? 0 : std::strtoull(body.c_str() + at + name.size(), nullptr, 10);
  }

  // Backs off exponentially (with jitter) and resends the same body: same msg_ids, so the
  // gateway's exactly-once handling is what keeps Kafka free of duplicates.
  void retry() {
    ++retries_;
    std::uniform_int_distribution<int> jitter(0, 50);
    timer_.expires_after(std::chrono::milliseconds((50 << std::min<std::size_t>(retries_, 6)) + jitter(random_)));
    timer_.async_wait([self = shared_from_this()](beast::error_code) { self->send(); });
  }

  void fail(const char* what) {
    ++stats_.outcomes[what];
    stats_.records_rejected += count_;
    retries_ = 0;
    beast::error_code ignored;
    stream_.socket().close(ignored);
    if (remaining_ == 0) return;
    timer_.expires_after(std::chrono::milliseconds(200));
    timer_.async_wait([self = shared_from_this()](beast::error_code) { self->connect(); });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  }

  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  const LoadOptions& options_;
  std::size_t& remaining_;
  Stats& stats_;
  std::mt19937_64 random_;
  std::size_t device_;
  Track track_{};
  std::uint64_t sequence_ = 0;
  std::string msg_id_prefix_;
  std::size_t count_ = 0;
  std::size_t retries_ = 0;
  Clock::duration interval_;
  Clock::time_point next_send_;
  Clock::time_point sent_at_;
  asio::ip::tcp::resolver::results_type endpoints_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  beast::flat_buffer buffer_;
};

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size()))) - 1;
  return sorted[std::min(rank, sorted.size() - 1)];
}

int load_http(const po::variables_map& options) {
  const std::string url = options["url"].as<std::string>();
  if (!url.starts_with("http://")) throw std::invalid_argument("--url must start with http://");
  const std::string rest = url.substr(7);
  const std::size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  const std::size_t colon = authority.rfind(':');
  LoadOptions load{authority.substr(0, colon),
                   colon == std::string::npos ? "80" : authority.substr(colon + 1),
                   slash == std::string::npos ? "/v1/telemetry" : rest.substr(slash),
                   options["devices"].as<std::size_t>(),
                   options["connections"].as<std::size_t>(),
                   options["batch"].as<std::size_t>(),
                   options["records"].as<std::size_t>(),
                   options["rate"].as<double>(),
                   options["max-retries"].as<std::size_t>()};
  if (load.devices == 0 || load.connections == 0 || load.batch == 0) {
    throw std::invalid_argument("--devices, --connections and --batch must be at least 1");
  }

  asio::io_context io;
  const auto endpoints = asio::ip::tcp::resolver(io).resolve(load.host, load.port);
  Stats stats;
  std::size_t remaining = load.records;
  for (std::size_t i = 0; i < load.connections; ++i) {
    std::make_shared<Connection>(io, load, i, remaining, stats)->start(endpoints);
  }
  const auto started = Clock::now();
  io.run();
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();

  std::sort(stats.latencies_ms.begin(), stats.latencies_ms.end());
  std::string outcomes;
  for (const auto& [name, count] : stats.outcomes) {
    outcomes += (outcomes.empty() ? "" : ",") + ("\"" + name + "\":" + std::to_string(count));
  }
  std::printf(
      "{\"records\":%zu,\"accepted\":%zu,\"rejected\":%zu,\"requests\":%zu,\"seconds\":%.3f,"
      "\"records_per_second\":%.0f,\"ack_latency_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},"
      "\"outcomes\":{%s}}\n",
      load.records, stats.records_accepted, stats.records_rejected, stats.requests, seconds,
      static_cast<double>(stats.records_accepted) / seconds, percentile(stats.latencies_ms, 50),
      percentile(stats.latencies_ms, 90), percentile(stats.latencies_ms, 99),
      stats.latencies_ms.empty() ? 0.0 : stats.latencies_ms.back(), outcomes.c_str());
  return stats.records_accepted == load.records ? 0 : 1;
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
      "max-retries", po::value<std::size_t>()->default_value(20), "http: retries of a 429/503 answer");
  po::positional_options_description positional;
  positional.add("mode", 1);
  described.add_options()("mode", po::value<std::string>(), "provision | http");
  try {
    po::variables_map options;
    po::store(po::command_line_parser(argc, argv).options(described).positional(positional).run(), options);
    po::notify(options);
    const std::string mode = options.count("mode") ? options["mode"].as<std::string>() : "";
    if (options.count("help") || mode.empty()) {
      std::printf("usage: telegate-sim provision|http [options]\n");
      described.print(std::cout);
      return options.count("help") ? 0 : 2;
    }
    if (mode == "provision") return provision(options);
    if (mode == "http") return load_http(options);
    std::fprintf(stderr, "telegate-sim: unknown mode '%s' (provision | http)\n", mode.c_str());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "telegate-sim: %s\n", error.what());
    return 2;
  }
}
