// telegate-sim: simulated devices posting telemetry to telegate, and the load generator for
// tests and benchmarks.
//
//   telegate-sim provision --devices N [--tenant T] [--device-type D]
//       prints the YAML `tenants:` block for N simulated devices (tokens sim-token-<i>)
//   telegate-sim http --url URL --devices N --connections C --batch B --records R [--rate RPS]
//                     [--ack-log FILE] [--run-id ID] [--timeout-ms MS] [--max-retries N]
//       closed loop (as fast as acknowledged) or open loop (--rate records/s), prints a JSON
//       summary: counts by outcome, records/s and ack latency percentiles. --ack-log writes
//       every acknowledged msg_id, one per line.
//   telegate-sim audit --bootstrap B --topic T --ack-log FILE [--prefix P]
//       reads T with read_committed and compares it with the ack log (sim_audit.hpp).
//   telegate-sim leaders --bootstrap B --topic T
//       prints each partition's leader node id.
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

#include "sim_audit.hpp"
#include "tracker_replay.hpp"
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
  std::size_t acknowledged = 0;  // msg_ids listed by 2xx answers
  std::size_t requests = 0;
  std::size_t connection_errors = 0;
  std::size_t retries = 0;
  std::map<std::string, std::size_t> outcomes;         // requests by "200", "503", "connect_error", …
  std::map<std::string, std::size_t> refused_records;  // records given up on, by the last answer
  std::vector<double> latencies_ms;
  std::FILE* ack_log = nullptr;  // --ack-log, or null
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
  std::chrono::milliseconds timeout;  // one request's write + answer
};

// Random per process, in hex: the run id when --run-id is not given.
std::string random_run_id() {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx",
                static_cast<unsigned long long>(std::random_device{}()) << 32 | std::random_device{}());
  return text;
}

// One keep-alive connection posting batches in a loop. Lives until the record budget is spent
// and its last batch is resolved; runs on the single io_context thread.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, const LoadOptions& options, const std::string& run_id, std::size_t index,
             std::size_t& remaining, Stats& stats)
      : stream_(io), timer_(io), options_(options), remaining_(remaining), stats_(stats), random_(index * 7919 + 17) {
    device_ = index % options.devices;
    // Unique per run and connection: the gateway de-duplicates by msg_id, so a second run (or a
    // second connection playing the same device) must not reuse the first one's ids. The run id
    // comes first so that `audit --prefix RUN_ID` selects one run.
    msg_id_prefix_ = run_id + "-" + device_id(device_) + "-" + std::to_string(index);
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
    stream_.expires_after(options_.timeout);
    stream_.async_connect(endpoints_, [self = shared_from_this()](beast::error_code error, auto) {
      if (error) return self->fail("connect_error");
      self->next();
    });
  }

  // Sends the pending batch again (a retry) or builds the next one.
  void next() {
    if (!pending_) {
      if (remaining_ == 0) return close();
      count_ = std::min(options_.batch, remaining_);
      remaining_ -= count_;
      build_body();
      pending_ = true;
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
    stream_.expires_after(options_.timeout);
    http::async_write(stream_, request_, [self = shared_from_this()](beast::error_code error, std::size_t) {
      if (error) return self->fail("write_error");
      self->response_ = {};
      http::async_read(self->stream_, self->buffer_, self->response_,
                       [self](beast::error_code read_error, std::size_t) { self->on_response(read_error); });
    });
  }

  void on_response(beast::error_code error) {
    if (error) return fail(error == beast::error::timeout ? "timeout" : "read_error");
    const unsigned status = response_.result_int();
    ++stats_.requests;
    ++stats_.outcomes[std::to_string(status)];
    if (status == 200 || status == 207 || status == 422) {
      stats_.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent_at_).count());
      const std::string& body = response_.body();
      stats_.records_accepted += field(body, "\"accepted\":");
      stats_.records_rejected += field(body, "\"rejected\":");
      log_acknowledged(body);
      pending_ = false;
      retries_ = 0;
      return next();
    }
    if ((status == 429 || status == 503) && retries_ < options_.max_retries) {
      ++retries_;
      ++stats_.retries;
      return after_backoff([](Connection& self) { self.send(); });
    }
    give_up(std::to_string(status));
    next();
  }

  // Only what a 2xx answer lists in "msg_ids" was acknowledged (a 207 lists the accepted
  // records only). The sim's msg_ids need no JSON unescaping.
  void log_acknowledged(const std::string& body) {
    const std::size_t list = body.find("\"msg_ids\":[");
    if (list == std::string::npos) return;
    const std::size_t end = body.find(']', list);
    for (std::size_t at = body.find('"', list + 11); at < end; at = body.find('"', at + 1)) {
      const std::size_t close = body.find('"', at + 1);
      if (close > end) break;
      ++stats_.acknowledged;
      if (stats_.ack_log) {
        std::fwrite(body.data() + at + 1, 1, close - at - 1, stats_.ack_log);
        std::fputc('\n', stats_.ack_log);
      }
      at = close;
    }
  }

  void give_up(const std::string& last_outcome) {
    stats_.records_rejected += count_;
    stats_.refused_records[last_outcome] += count_;
    pending_ = false;
    retries_ = 0;
  }

  static std::size_t field(const std::string& body, std::string_view name) {
    const std::size_t at = body.find(name);
    return at == std::string::npos ? 0 : std::strtoull(body.c_str() + at + name.size(), nullptr, 10);
  }

  // Waits an exponential backoff (with jitter), then runs `then`. Retries resend the same body:
  // same msg_ids, so the gateway's exactly-once handling is what keeps Kafka free of duplicates.
  template <typename Then>
  void after_backoff(Then then) {
    std::uniform_int_distribution<int> jitter(0, 50);
    timer_.expires_after(std::chrono::milliseconds((50 << std::min<std::size_t>(retries_, 6)) + jitter(random_)));
    timer_.async_wait([self = shared_from_this(), then](beast::error_code) { then(*self); });
  }

  // A lost connection, a refused connect or a timeout: the pending batch may or may not have
  // been committed, so it is resent as it was (the gateway acknowledges a committed one as a
  // duplicate) on a new connection.
  void fail(const char* what) {
    ++stats_.outcomes[what];
    ++stats_.connection_errors;
    beast::error_code ignored;
    stream_.socket().close(ignored);
    if (pending_) {
      if (retries_ < options_.max_retries) {
        ++retries_;
        ++stats_.retries;
      } else {
        give_up(what);
      }
    }
    if (!pending_ && remaining_ == 0) return;
    after_backoff([](Connection& self) { self.connect(); });
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
  bool pending_ = false;  // the body holds a batch not yet acknowledged or given up on
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
                   options["max-retries"].as<std::size_t>(),
                   std::chrono::milliseconds(options["timeout-ms"].as<std::size_t>())};
  if (load.devices == 0 || load.connections == 0 || load.batch == 0) {
    throw std::invalid_argument("--devices, --connections and --batch must be at least 1");
  }

  Stats stats;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> ack_log(nullptr, &std::fclose);
  if (options.count("ack-log")) {
    ack_log.reset(std::fopen(options["ack-log"].as<std::string>().c_str(), "w"));
    if (!ack_log) throw std::invalid_argument("--ack-log: cannot write " + options["ack-log"].as<std::string>());
    stats.ack_log = ack_log.get();
  }
  const std::string run_id = options.count("run-id") ? options["run-id"].as<std::string>() : random_run_id();

  asio::io_context io;
  const auto endpoints = asio::ip::tcp::resolver(io).resolve(load.host, load.port);
  std::size_t remaining = load.records;
  for (std::size_t i = 0; i < load.connections; ++i) {
    std::make_shared<Connection>(io, load, run_id, i, remaining, stats)->start(endpoints);
  }
  const auto started = Clock::now();
  io.run();
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (ack_log && std::fflush(ack_log.get()) != 0) throw std::runtime_error("--ack-log: write failed");

  std::sort(stats.latencies_ms.begin(), stats.latencies_ms.end());
  const auto json_counts = [](const std::map<std::string, std::size_t>& counts) {
    std::string json;
    for (const auto& [name, count] : counts) {
      json += (json.empty() ? "" : ",") + ("\"" + name + "\":" + std::to_string(count));
    }
    return json;
  };
  std::printf(
      "{\"run_id\":\"%s\",\"records\":%zu,\"accepted\":%zu,\"rejected\":%zu,\"acknowledged\":%zu,"
      "\"requests\":%zu,\"retries\":%zu,\"connection_errors\":%zu,\"seconds\":%.3f,"
      "\"records_per_second\":%.0f,\"ack_latency_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},"
      "\"outcomes\":{%s},\"refused_records\":{%s}}\n",
      run_id.c_str(), load.records, stats.records_accepted, stats.records_rejected, stats.acknowledged, stats.requests,
      stats.retries, stats.connection_errors, seconds,
      static_cast<double>(stats.records_accepted) / seconds, percentile(stats.latencies_ms, 50),
      percentile(stats.latencies_ms, 90), percentile(stats.latencies_ms, 99),
      stats.latencies_ms.empty() ? 0.0 : stats.latencies_ms.back(), json_counts(stats.outcomes).c_str(),
      json_counts(stats.refused_records).c_str());
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
      "max-retries", po::value<std::size_t>()->default_value(20),
      "http: retries of a batch (429/503 answer, lost connection, timeout)")(
      "timeout-ms", po::value<std::size_t>()->default_value(30'000), "http: connect, or write + answer, timeout")(
      "ack-log", po::value<std::string>(), "http: write acknowledged msg_ids here; audit: read them")(
      "run-id", po::value<std::string>(), "http: msg_id prefix (default random)")(
      "bootstrap", po::value<std::string>(), "audit, leaders: Kafka bootstrap servers")(
      "topic", po::value<std::string>(), "audit, leaders: topic")(
      "prefix", po::value<std::string>(), "audit: only msg_ids starting with this (a run id)");
  telegate::sim::add_tracker_options(described);
  po::positional_options_description positional;
  positional.add("mode", 1);
  described.add_options()("mode", po::value<std::string>(), "provision | http | audit | leaders");
  try {
    po::variables_map options;
    po::store(po::command_line_parser(argc, argv).options(described).positional(positional).run(), options);
    po::notify(options);
    const std::string mode = options.count("mode") ? options["mode"].as<std::string>() : "";
    if (options.count("help") || mode.empty()) {
      std::printf("usage: telegate-sim provision|http|audit|leaders [options]\n");
      described.print(std::cout);
      return options.count("help") ? 0 : 2;
    }
    if (mode == "provision" && options.count("imei-base")) return telegate::sim::provision_trackers(options);
    if (mode == "provision") return provision(options);
    if (mode == "tracker") return telegate::sim::tracker_replay(options);
    if (mode == "http") return load_http(options);
    if (mode == "audit") return telegate::sim::audit(options);
    if (mode == "leaders") return telegate::sim::leaders(options);
    std::fprintf(stderr, "telegate-sim: unknown mode '%s' (provision | http | audit | leaders)\n", mode.c_str());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "telegate-sim: %s\n", error.what());
    return 2;
  }
}
