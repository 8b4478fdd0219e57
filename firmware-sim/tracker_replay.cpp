#include "tracker_replay.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <memory>
#include <stdexcept>

#include "latency_histogram.hpp"
#include "telegate/gateway/auth.hpp"
#include "tracker/gt06/gt06_protocol.hpp"
#include "tracker/teltonika/teltonika_protocol.hpp"

namespace telegate::sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace po = boost::program_options;
namespace gt06 = gateway::tracker::gt06;
using Clock = std::chrono::steady_clock;

namespace {

void put_be(std::string& out, std::uint64_t value, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xFF);
}

std::span<const std::uint8_t> bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// An IMEI as the tracker sends it: 15 digits, the base plus the device's index.
std::string imei_of(std::uint64_t base, std::size_t index) {
  char text[24];
  std::snprintf(text, sizeof text, "%015llu", static_cast<unsigned long long>(base + index));
  return text;
}

}  // namespace

// ---- encoders ----

std::string gt06_login(std::string_view imei, std::uint16_t serial) {
  std::array<std::uint8_t, 8> bcd{};
  const std::string digits = "0" + std::string(imei);  // 16 nibbles
  for (std::size_t i = 0; i < bcd.size(); ++i) {
    bcd[i] = static_cast<std::uint8_t>((digits[2 * i] - '0') << 4 | (digits[2 * i + 1] - '0'));
  }
  return gt06::packet(gt06::kLogin, bcd, serial);
}

std::string gt06_location(const TrackerFix& fix, std::uint16_t serial) {
  const std::time_t seconds = static_cast<std::time_t>(fix.time_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  std::string content;
  for (const int field : {utc.tm_year - 100, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec}) {
    content += static_cast<char>(field);
  }
  content += static_cast<char>(0xC0 | std::min(fix.satellites, 15u));  // GPS info length 12, satellites
  put_be(content, static_cast<std::uint64_t>(std::llround(std::fabs(fix.lat) * 1'800'000.0)), 4);
  put_be(content, static_cast<std::uint64_t>(std::llround(std::fabs(fix.lon) * 1'800'000.0)), 4);
  content += static_cast<char>(std::clamp(std::lround(fix.speed_kmh), 0L, 255L));
  unsigned course_status = static_cast<unsigned>(std::lround(fix.heading_deg)) % 360 | 1u << 12;  // positioned
  if (fix.lon < 0) course_status |= 1u << 11;
  if (fix.lat >= 0) course_status |= 1u << 10;
  put_be(content, course_status, 2);
  put_be(content, 293, 2);       // MCC: Slovenia, where the simulated fleet drives
  put_be(content, 41, 1);        // MNC
  put_be(content, 0x1234, 2);    // LAC
  put_be(content, 0xABCD, 3);    // cell id
  return gt06::packet(gt06::kLocation, bytes_of(content), serial);
}

std::string gt06_location_msg_id(std::string_view imei, std::uint16_t serial, std::int64_t time_ms) {
  char id[96];
  std::snprintf(id, sizeof id, "%.*s-gt06-%02x%04x-%lld", static_cast<int>(imei.size()), imei.data(), gt06::kLocation,
                serial, static_cast<long long>(time_ms / 1000));
  return id;
}

std::string teltonika_login(std::string_view imei) {
  std::string out;
  put_be(out, imei.size(), 2);
  out += imei;
  return out;
}

namespace {

// Codec 8's AVL data array as both transports carry it: codec id, count, records, count again.
std::string codec8_data(std::span<const AvlRecord> records) {
  std::string data;
  data += static_cast<char>(0x08);
  data += static_cast<char>(records.size());
  for (const AvlRecord& record : records) {
    put_be(data, record.timestamp_ms, 8);
    data += static_cast<char>(record.priority);
    put_be(data, static_cast<std::uint32_t>(record.lon_e7), 4);
    put_be(data, static_cast<std::uint32_t>(record.lat_e7), 4);
    put_be(data, static_cast<std::uint16_t>(record.altitude_m), 2);
    put_be(data, record.angle_deg, 2);
    data += static_cast<char>(record.satellites);
    put_be(data, record.speed_kmh, 2);
    data += static_cast<char>(record.event_io);
    data += static_cast<char>(record.io1.size() + record.io2.size() + record.io4.size() + record.io8.size());
    const auto elements = [&data](const auto& list, int width) {
      data += static_cast<char>(list.size());
      for (const auto& [id, value] : list) {
        data += static_cast<char>(id);
        put_be(data, value, width);
      }
    };
    elements(record.io1, 1);
    elements(record.io2, 2);
    elements(record.io4, 4);
    elements(record.io8, 8);
  }
  data += static_cast<char>(records.size());
  return data;
}

}  // namespace

std::string teltonika_codec8(std::span<const AvlRecord> records) {
  const std::string data = codec8_data(records);
  std::string out;
  put_be(out, 0, 4);
  put_be(out, data.size(), 4);
  out += data;
  put_be(out, gateway::tracker::teltonika::crc16_ibm(bytes_of(data)), 4);
  return out;
}

std::string teltonika_udp(std::uint16_t packet_id, std::uint8_t avl_packet_id, std::string_view imei,
                          std::span<const AvlRecord> records) {
  std::string body;
  put_be(body, packet_id, 2);
  body += static_cast<char>(0x01);  // "not usable byte", always 01
  body += static_cast<char>(avl_packet_id);
  put_be(body, imei.size(), 2);
  body += imei;
  body += codec8_data(records);
  std::string out;
  put_be(out, body.size(), 2);
  return out + body;
}

AvlRecord teltonika_record(const TrackerFix& fix) {
  AvlRecord record;
  record.timestamp_ms = static_cast<std::uint64_t>(fix.time_ms);
  record.lon_e7 = static_cast<std::int32_t>(std::lround(fix.lon * 1e7));
  record.lat_e7 = static_cast<std::int32_t>(std::lround(fix.lat * 1e7));
  record.altitude_m = static_cast<std::int16_t>(std::lround(fix.altitude_m));
  record.angle_deg = static_cast<std::uint16_t>(std::lround(fix.heading_deg) % 360);
  record.satellites = static_cast<std::uint8_t>(fix.satellites);
  record.speed_kmh = static_cast<std::uint16_t>(std::lround(fix.speed_kmh));
  record.io1 = {{239, 1}};                                                     // ignition on
  record.io2 = {{66, 12'600}};                                                 // external voltage, mV
  record.io4 = {{16, static_cast<std::uint32_t>(fix.time_ms / 1000 % 1'000'000)}};  // odometer, m
  return record;
}

// ---- the load ----

namespace {

enum class Protocol : std::uint8_t { teltonika, teltonika_udp, gt06 };

struct TrackerOptions {
  Protocol protocol;
  std::string host;
  std::string port;
  std::size_t devices;
  std::size_t records;
  std::size_t batch;
  std::uint64_t imei_base;
  std::size_t max_retries;
  std::chrono::milliseconds timeout;
};

struct TrackerStats {
  std::size_t remaining = 0;  // records not yet put in a frame (shared budget)
  std::size_t frames = 0;
  std::size_t acked_frames = 0;
  std::size_t accepted = 0;
  std::size_t refused = 0;       // records given up on after max_retries
  std::size_t resent_frames = 0;
  std::map<std::string, std::size_t> errors;  // by "connect_error", "login_refused", "timeout", …
  LatencyHistogram latencies;
  std::FILE* ack_log = nullptr;
};

// A tracker driving a circle (radius ~600 m at 50 km/h) around its own centre near Ljubljana.
TrackerFix fix_at(std::size_t device, std::int64_t time_ms) {
  constexpr double kRadiusDeg = 0.0054;
  constexpr double kSpeedKmh = 50.0;
  const double radians_per_s = kSpeedKmh / 3.6 / (kRadiusDeg * 111'320.0);
  const double angle = std::fmod(static_cast<double>(time_ms) / 1000.0 * radians_per_s, 2 * M_PI);
  const double centre_lat = 46.0 + 0.01 * static_cast<double>(device % 20);
  const double centre_lon = 14.4 + 0.01 * static_cast<double>(device / 20 % 20);
  TrackerFix fix;
  fix.time_ms = time_ms;
  fix.lat = centre_lat + kRadiusDeg * std::cos(angle);
  fix.lon = centre_lon + kRadiusDeg * std::sin(angle) / std::cos(centre_lat * M_PI / 180.0);
  fix.altitude_m = 295;
  fix.speed_kmh = kSpeedKmh;
  fix.heading_deg = std::fmod(angle * 180.0 / M_PI + 90.0, 360.0);
  fix.satellites = 9;
  return fix;
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One simulated tracker: its connection, its frame waiting for an ack, and its serial number.
// Lives in its coroutine on the single io_context thread, so the shared stats need no lock.
class Tracker {
 public:
  Tracker(const TrackerOptions& options, std::size_t index, TrackerStats& stats)
      : options_(options), index_(index), imei_(imei_of(options.imei_base, index)), stats_(stats) {}

  asio::awaitable<void> run(asio::ip::tcp::resolver::results_type endpoints) {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    bool logged_in = false;
    while (pending_records_ > 0 || take_next_frame()) {
      beast::error_code ignored;
      if (!logged_in) {
        if (auto failure = co_await log_in(stream, endpoints); failure) {
          stream.socket().close(ignored);
          co_await lost(failure);
          continue;
        }
        logged_in = true;
      }
      const auto sent_at = Clock::now();
      const auto failure = co_await exchange(stream, frame_, options_.protocol == Protocol::gt06 ? 10 : 4);
      const auto accepted = failure ? std::nullopt : accepted_by_ack(ack_.size());
      if (!accepted) {
        logged_in = false;
        stream.socket().close(ignored);
        co_await lost(failure ? failure : "bad_ack");
        continue;
      }
      acknowledged(sent_at, *accepted);
    }
    beast::error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  }

  // Teltonika over UDP: every datagram carries the IMEI, so there is no login; a datagram not
  // acknowledged within --timeout-ms is sent again as it was.
  asio::awaitable<void> run_udp(asio::ip::udp::endpoint gateway) {
    const auto socket = std::make_shared<asio::ip::udp::socket>(co_await asio::this_coro::executor);
    socket->open(gateway.protocol());
    asio::steady_timer timer(socket->get_executor());
    while (pending_records_ > 0 || take_next_frame()) {
      const auto sent_at = Clock::now();
      beast::error_code error;
      co_await socket->async_send_to(asio::buffer(frame_), gateway, asio::redirect_error(asio::use_awaitable, error));
      std::optional<std::size_t> accepted;
      if (!error) {
        // The timer cancels the receive. Its handler holds the socket, which it may outlive, and
        // a flag, so that an expiry queued just as the ack came cannot cancel the next receive.
        const auto waiting = std::make_shared<bool>(true);
        timer.expires_after(options_.timeout);
        timer.async_wait([socket, waiting](beast::error_code expired) {
          if (!expired && *waiting) socket->cancel();
        });
        ack_.resize(64);
        while (!error && !accepted) {  // acks of earlier copies of other packets are skipped
          const std::size_t size =
              co_await socket->async_receive(asio::buffer(ack_), asio::redirect_error(asio::use_awaitable, error));
          if (!error) accepted = accepted_by_ack(size);
        }
        *waiting = false;
        timer.cancel();
      }
      if (!accepted) {
        co_await lost(error == asio::error::operation_aborted ? "timeout" : "socket_error");
        continue;
      }
      acknowledged(sent_at, *accepted);
    }
  }

 private:
  // Builds the next frame from the shared record budget; false when it is spent.
  bool take_next_frame() {
    if (stats_.remaining == 0) return false;
    const std::size_t count = options_.protocol == Protocol::gt06 ? 1 : std::min(options_.batch, stats_.remaining);
    ++packet_id_;
    stats_.remaining -= count;
    pending_records_ = count;
    ++stats_.frames;
    msg_ids_.clear();
    const std::int64_t now = wall_ms();
    if (options_.protocol == Protocol::gt06) {
      const TrackerFix fix = fix_at(index_, now);
      serial_ = static_cast<std::uint16_t>(serial_ + 1);
      frame_serial_ = serial_;
      frame_ = gt06_location(fix, serial_);
      msg_ids_.push_back(gt06_location_msg_id(imei_, frame_serial_, fix.time_ms));
    } else {
      records_.clear();
      // A batch spans the last `count` seconds, one fix per second, as a logging tracker's does.
      for (std::size_t i = count; i-- > 0;) {
        records_.push_back(teltonika_record(fix_at(index_, now - static_cast<std::int64_t>(i) * 1000)));
      }
      frame_ = options_.protocol == Protocol::teltonika
                   ? teltonika_codec8(records_)
                   : teltonika_udp(packet_id_, static_cast<std::uint8_t>(packet_id_), imei_, records_);
    }
    return true;
  }

  // The records the ack in ack_ (`size` bytes) accepts, or nullopt when it is not this frame's:
  // GT06 echoes protocol number and serial (the packet's one record); Teltonika TCP answers the
  // count as 4 bytes, UDP echoes packet and AVL packet ids before a 1-byte count.
  std::optional<std::size_t> accepted_by_ack(std::size_t size) const {
    const auto* ack = reinterpret_cast<const std::uint8_t*>(ack_.data());
    std::size_t count = 0;
    switch (options_.protocol) {
      case Protocol::gt06:
        if (ack[0] != 0x78 || ack[1] != 0x78 || ack[3] != gt06::kLocation || (ack[4] << 8 | ack[5]) != frame_serial_ ||
            (ack[6] << 8 | ack[7]) != gt06::crc_itu({ack + 2, 4})) {
          return std::nullopt;
        }
        count = pending_records_;
        break;
      case Protocol::teltonika:
        count = static_cast<std::size_t>(ack[0]) << 24 | ack[1] << 16 | ack[2] << 8 | ack[3];
        break;
      case Protocol::teltonika_udp:
        if (size != 7 || ack[0] != 0 || ack[1] != 5 || (ack[2] << 8 | ack[3]) != packet_id_ ||
            ack[5] != static_cast<std::uint8_t>(packet_id_)) {
          return std::nullopt;
        }
        count = ack[6];
        break;
    }
    if (count > pending_records_) return std::nullopt;
    return count;
  }

  void acknowledged(Clock::time_point sent_at, std::size_t accepted) {
    stats_.latencies.record(Clock::now() - sent_at);
    ++stats_.acked_frames;
    stats_.accepted += accepted;
    if (stats_.ack_log) {
      for (const std::string& id : msg_ids_) std::fprintf(stats_.ack_log, "%s\n", id.c_str());
    }
    pending_records_ = 0;
    retries_ = 0;
  }

  // Connects and sends the login; null, or what failed.
  asio::awaitable<const char*> log_in(beast::tcp_stream& stream, const asio::ip::tcp::resolver::results_type& endpoints) {
    beast::error_code error;
    stream.expires_after(options_.timeout);
    co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, error));
    if (error) co_return "connect_error";
    const bool gt06 = options_.protocol == Protocol::gt06;
    if (gt06) serial_ = static_cast<std::uint16_t>(serial_ + 1);
    const std::string login = gt06 ? gt06_login(imei_, serial_) : teltonika_login(imei_);
    // A GT06 refusal is silence and a close; Teltonika answers 00.
    if (const auto failure = co_await exchange(stream, login, gt06 ? 10 : 1)) {
      co_return error_is_close_ ? "login_refused" : failure;
    }
    const auto* reply = reinterpret_cast<const std::uint8_t*>(ack_.data());
    if (gt06 ? reply[3] != gt06::kLogin : reply[0] != 0x01) co_return "login_refused";
    co_return nullptr;
  }

  // Writes `bytes` and reads an answer of `answer_size` bytes into ack_; null, or what failed.
  asio::awaitable<const char*> exchange(beast::tcp_stream& stream, const std::string& bytes, std::size_t answer_size) {
    beast::error_code error;
    error_is_close_ = false;
    stream.expires_after(options_.timeout);
    co_await asio::async_write(stream, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, error));
    if (error) co_return "write_error";
    ack_.resize(answer_size);
    co_await asio::async_read(stream, asio::buffer(ack_), asio::redirect_error(asio::use_awaitable, error));
    if (error == beast::error::timeout) co_return "timeout";
    error_is_close_ = error == asio::error::eof || error == asio::error::connection_reset;
    if (error) co_return "read_error";
    co_return nullptr;
  }

  // The frame was not acknowledged: count why, give the frame up after max_retries, back off;
  // the caller sends the same frame again (after a reconnect and login on TCP).
  asio::awaitable<void> lost(const char* what) {
    ++stats_.errors[what];
    beast::error_code ignored;
    if (pending_records_ > 0) {
      if (retries_ < options_.max_retries) {
        ++retries_;
        ++stats_.resent_frames;
      } else {
        stats_.refused += pending_records_;
        pending_records_ = 0;
        retries_ = 0;
      }
    }
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(std::chrono::milliseconds(50 << std::min<std::size_t>(retries_, 6)));
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }

  const TrackerOptions& options_;
  std::size_t index_;
  std::string imei_;
  TrackerStats& stats_;
  std::uint16_t serial_ = 0;        // GT06: the last serial number used (logins take one too)
  std::uint16_t frame_serial_ = 0;  // GT06: frame_'s, kept when it is resent after a new login
  std::uint16_t packet_id_ = 0;     // Teltonika UDP: frame_'s packet id (its low byte: AVL packet id)
  std::string frame_;                // the frame waiting for its ack
  std::size_t pending_records_ = 0;  // records in frame_; 0 = nothing pending
  std::vector<AvlRecord> records_;
  std::vector<std::string> msg_ids_;  // what the ack log gets when frame_ is acknowledged
  std::string ack_;
  bool error_is_close_ = false;
  std::size_t retries_ = 0;
};

}  // namespace

int tracker_replay(const po::variables_map& options) {
  const std::string protocol = options["protocol"].as<std::string>();
  if (protocol != "teltonika" && protocol != "gt06") {
    throw std::invalid_argument("--protocol must be teltonika or gt06, got '" + protocol + "'");
  }
  if (options.count("udp") && protocol != "teltonika") throw std::invalid_argument("--udp: only Teltonika trackers use UDP");
  TrackerOptions tracker{protocol == "gt06"       ? Protocol::gt06
                         : options.count("udp") ? Protocol::teltonika_udp
                                                : Protocol::teltonika,
                         options["host"].as<std::string>(),
                         std::to_string(options["port"].as<unsigned>()),
                         options["devices"].as<std::size_t>(),
                         options["records"].as<std::size_t>(),
                         options["batch"].as<std::size_t>(),
                         options.count("imei-base") ? options["imei-base"].as<std::uint64_t>() : 356307042440000ULL,
                         options["max-retries"].as<std::size_t>(),
                         std::chrono::milliseconds(options["timeout-ms"].as<std::size_t>())};
  if (tracker.devices == 0 || tracker.batch == 0 || tracker.batch > 255) {
    throw std::invalid_argument("--devices must be at least 1 and --batch 1 to 255 (Codec 8 counts in one byte)");
  }

  TrackerStats stats;
  stats.remaining = tracker.records;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> ack_log(nullptr, &std::fclose);
  if (options.count("ack-log")) {
    ack_log.reset(std::fopen(options["ack-log"].as<std::string>().c_str(), "w"));
    if (!ack_log) throw std::invalid_argument("--ack-log: cannot write " + options["ack-log"].as<std::string>());
    stats.ack_log = ack_log.get();
  }
  const std::string run_id = options.count("run-id") ? options["run-id"].as<std::string>() : "";

  asio::io_context io;
  const auto endpoints = asio::ip::tcp::resolver(io).resolve(tracker.host, tracker.port);
  std::vector<std::unique_ptr<Tracker>> trackers;
  for (std::size_t i = 0; i < tracker.devices; ++i) {
    trackers.push_back(std::make_unique<Tracker>(tracker, i, stats));
    if (tracker.protocol == Protocol::teltonika_udp) {
      asio::co_spawn(io, trackers.back()->run_udp(*asio::ip::udp::resolver(io).resolve(tracker.host, tracker.port).begin()),
                     asio::detached);
    } else {
      asio::co_spawn(io, trackers.back()->run(endpoints), asio::detached);
    }
  }
  const auto started = Clock::now();
  io.run();
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (ack_log && std::fflush(ack_log.get()) != 0) throw std::runtime_error("--ack-log: write failed");

  std::string errors;
  for (const auto& [name, count] : stats.errors) {
    errors += (errors.empty() ? "" : ",") + ("\"" + name + "\":" + std::to_string(count));
  }
  std::printf(
      "{\"run_id\":\"%s\",\"protocol\":\"%s\",\"transport\":\"%s\",\"devices\":%zu,\"records\":%zu,\"accepted\":%zu,\"refused\":%zu,"
      "\"frames\":%zu,\"acked_frames\":%zu,\"resent_frames\":%zu,\"seconds\":%.3f,\"records_per_second\":%.0f,"
      "\"ack_latency_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},\"errors\":{%s}}\n",
      run_id.c_str(), protocol.c_str(), tracker.protocol == Protocol::teltonika_udp ? "udp" : "tcp", tracker.devices, tracker.records, stats.accepted, stats.refused, stats.frames,
      stats.acked_frames, stats.resent_frames, seconds, static_cast<double>(stats.accepted) / seconds,
      stats.latencies.percentile_micros(50) / 1000, stats.latencies.percentile_micros(90) / 1000,
      stats.latencies.percentile_micros(99) / 1000, stats.latencies.max_micros() / 1000,
      errors.c_str());
  return stats.accepted == tracker.records ? 0 : 1;
}

int provision_trackers(const po::variables_map& options) {
  const auto devices = options["devices"].as<std::size_t>();
  const auto base = options["imei-base"].as<std::uint64_t>();
  std::printf("tenants:\n  - name: %s\n    devices:\n", options["tenant"].as<std::string>().c_str());
  for (std::size_t i = 0; i < devices; ++i) {
    // Trackers authenticate by IMEI alone; the token is only there because every device has
    // one, and no tracker can present it.
    const std::string imei = imei_of(base, i);
    std::printf("      - {id: \"%s\", device_type: %s, token_sha256: %s}\n", imei.c_str(),
                options["device-type"].as<std::string>().c_str(),
                gateway::sha256_hex("tracker-no-token-" + imei).c_str());
  }
  return 0;
}

void add_tracker_options(po::options_description& described) {
  described.add_options()("protocol", po::value<std::string>()->default_value("gt06"), "tracker: teltonika | gt06")(
      "host", po::value<std::string>()->default_value("127.0.0.1"), "tracker: gateway host")(
      "port", po::value<unsigned>()->default_value(5023), "tracker: gateway port")(
      "udp", "tracker: Teltonika over UDP (one datagram per AVL packet, IMEI in each)")(
      "imei-base", po::value<std::uint64_t>(), "tracker, provision: first IMEI (default 356307042440000)");
}

}  // namespace telegate::sim
