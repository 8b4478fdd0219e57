// telegate-mqtt-bench: MQTT 3.1.1 load for bench/mqtt_connections.sh, against telegate or any
// broker (Mosquitto as the baseline). Devices are telegate-sim's: id sim-<i>, token
// sim-token-<i>, topic <tenant>/sim-<i>/location. One thread, epoll, non-blocking sockets.
//
//   telegate-mqtt-bench idle --port P --connections N [--sources 200] [--devices D] [--tenant bench]
//       opens N connections (source addresses 127.0.0.2 … 127.0.0.<1+sources>, so that ephemeral
//       ports do not run out), CONNECTs each (keep alive 1200 s), waits for every CONNACK, prints
//       {"connected":n,"refused":r,"seconds":s} and then holds them until stdin closes or SIGTERM.
//   telegate-mqtt-bench publish --port P --connections C --qos 0|1 --records N [--window 32] [--rate R]
//       C devices each publish one-record JSON locations. QoS 1: closed loop with `window`
//       PUBLISHes unacknowledged per connection; prints records/s and PUBACK latency
//       percentiles. QoS 0: open loop as fast as the socket takes them; prints the send rate.
//       --rate R (QoS 1): open loop instead, R records/s over all connections, each connection
//       on its own fixed schedule; latency counts from the scheduled time, so a PUBLISH held
//       back by a full window (or a slow server) is charged its wait (no coordinated omission).
//       `late` in the summary counts PUBLISHes sent more than 10 ms after their slot.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

void put_length(std::string& out, std::size_t length) {
  do {
    auto byte = static_cast<unsigned char>(length % 128);
    length /= 128;
    if (length > 0) byte = static_cast<unsigned char>(byte | 0x80);
    out += static_cast<char>(byte);
  } while (length > 0);
}

void put_string(std::string& out, const std::string& text) {
  out += static_cast<char>(text.size() >> 8);
  out += static_cast<char>(text.size() & 0xff);
  out += text;
}

std::string connect_packet(const std::string& client_id, const std::string& user, const std::string& password) {
  std::string body;
  put_string(body, "MQTT");
  body += '\x04';                       // 3.1.1
  body += static_cast<char>(0xC2);      // username, password, clean session
  body += '\x04';                       // keep alive 1200 s
  body += static_cast<char>(0xB0);
  put_string(body, client_id);
  put_string(body, user);
  put_string(body, password);
  std::string out(1, '\x10');
  put_length(out, body.size());
  return out + body;
}

std::string publish_packet(const std::string& topic, int qos, std::uint16_t id, const std::string& payload) {
  std::string body;
  put_string(body, topic);
  if (qos > 0) {
    body += static_cast<char>(id >> 8);
    body += static_cast<char>(id & 0xff);
  }
  body += payload;
  std::string out(1, static_cast<char>(0x30 | (qos << 1)));
  put_length(out, body.size());
  return out + body;
}

struct Connection {
  int fd = -1;
  std::size_t device = 0;
  std::string out;
  std::size_t out_at = 0;
  std::string in;
  bool connected = false;
  bool refused = false;
  std::size_t sent = 0;
  std::size_t in_flight = 0;
  std::vector<Clock::time_point> sent_at;  // by packet id
  Clock::time_point next_due{};            // --rate: this connection's next scheduled PUBLISH
};

std::map<std::string, std::string> parse_options(int argc, char** argv) {
  std::map<std::string, std::string> options;
  for (int i = 2; i + 1 < argc; i += 2) options[std::string(argv[i]).substr(2)] = argv[i + 1];
  return options;
}

std::size_t number(const std::map<std::string, std::string>& options, const std::string& key, std::size_t fallback) {
  const auto it = options.find(key);
  return it == options.end() ? fallback : std::strtoull(it->second.c_str(), nullptr, 10);
}

int open_connection(std::uint16_t port, std::size_t index, std::size_t sources) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in source{};
  source.sin_family = AF_INET;
  source.sin_addr.s_addr = htonl((127u << 24) | static_cast<std::uint32_t>(2 + index % sources));
  ::bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof source);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Writes what is queued; false when the connection failed.
bool flush(Connection& c) {
  while (c.out_at < c.out.size()) {
    const auto n = ::send(c.fd, c.out.data() + c.out_at, c.out.size() - c.out_at, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN;
    c.out_at += static_cast<std::size_t>(n);
  }
  c.out.clear();
  c.out_at = 0;
  return true;
}

// Complete packets in c.in: (type, packet id or CONNACK code).
template <class OnPacket>
void parse(Connection& c, OnPacket on_packet) {
  std::size_t at = 0;
  while (c.in.size() - at >= 2) {
    const auto type = static_cast<unsigned char>(c.in[at]) >> 4;
    std::size_t length = 0;
    std::size_t shift = 0;
    std::size_t i = at + 1;
    bool complete = false;
    while (i < c.in.size()) {
      const auto byte = static_cast<unsigned char>(c.in[i++]);
      length |= static_cast<std::size_t>(byte & 0x7f) << shift;
      shift += 7;
      if (!(byte & 0x80)) {
        complete = true;
        break;
      }
    }
    if (!complete || c.in.size() - i < length) break;
    int value = 0;
    if (type == 2 && length >= 2) value = static_cast<unsigned char>(c.in[i + 1]);
    if ((type == 4 || type == 5) && length >= 2) {
      value = static_cast<unsigned char>(c.in[i]) << 8 | static_cast<unsigned char>(c.in[i + 1]);
    }
    on_packet(type, value);
    at = i + length;
  }
  c.in.erase(0, at);
}

bool read_some(Connection& c) {
  char buffer[16384];
  while (true) {
    const auto n = ::recv(c.fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      c.in.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

std::string location(std::size_t device, std::size_t sequence) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  return R"({"device_id":"sim-)" + std::to_string(device) + R"(","type":"location","ts":)" +
         std::to_string(now.count() - 1000) + R"(,"lat":46.05,"lon":14.)" + std::to_string(sequence % 1000) + "}";
}

int run(int argc, char** argv) {
  const std::string mode = argv[1];
  const auto options = parse_options(argc, argv);
  const auto port = static_cast<std::uint16_t>(number(options, "port", 1883));
  const std::size_t count = number(options, "connections", 100);
  const std::size_t sources = std::max<std::size_t>(1, number(options, "sources", 200));
  const std::size_t devices = number(options, "devices", count);
  const std::string tenant = options.count("tenant") ? options.at("tenant") : "bench";
  const int qos = static_cast<int>(number(options, "qos", 1));
  const std::size_t records = number(options, "records", 100'000);
  const std::size_t window = std::min<std::size_t>(number(options, "window", 32), 30'000);
  const bool publishing = mode == "publish";
  const double rate = std::strtod(options.count("rate") ? options.at("rate").c_str() : "0", nullptr);
  const bool open_loop = publishing && qos > 0 && rate > 0;
  // Each connection publishes every `interval`, the connections' schedules spread evenly over it.
  const auto interval = open_loop ? std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(static_cast<double>(count) / rate))
                                  : Clock::duration::zero();

  const int epoll = ::epoll_create1(0);
  std::vector<Connection> connections(count);
  const auto started = Clock::now();
  std::size_t connected = 0;
  std::size_t refused = 0;
  std::size_t failed = 0;
  // Open in slices so that the listen backlog is not overrun.
  std::size_t opened = 0;
  auto open_more = [&] {
    const std::size_t until = std::min(count, connected + refused + failed + 2000);
    for (; opened < until; ++opened) {
      Connection& c = connections[opened];
      c.device = opened % devices;
      c.fd = open_connection(port, opened, sources);
      if (c.fd < 0) {
        ++failed;
        continue;
      }
      // Appended rather than "c" + to_string(…): g++ 12 at -O3 warns (-Wrestrict) on the latter.
      std::string client_id = "c";
      client_id += std::to_string(opened);
      c.out = connect_packet(client_id, "sim-" + std::to_string(c.device), "sim-token-" + std::to_string(c.device));
      epoll_event event{};
      event.events = EPOLLIN | EPOLLOUT;
      event.data.u64 = opened;
      ::epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &event);
    }
  };
  open_more();

  std::size_t acked = 0;
  std::size_t queued = 0;
  std::vector<double> latencies;
  latencies.reserve(publishing ? records : 0);
  Clock::time_point publish_started{};
  std::size_t late = 0;
  auto enqueue = [&](Connection& c) {
    const auto now = Clock::now();
    while (queued < records && (qos == 0 ? c.out.size() < 65536 : c.in_flight < window) &&
           (!open_loop || c.next_due <= now)) {
      const auto id = static_cast<std::uint16_t>(c.sent % 65535 + 1);
      c.out += publish_packet(tenant + "/sim-" + std::to_string(c.device) + "/location", qos, id,
                              location(c.device, c.sent));
      if (qos > 0) {
        if (c.sent_at.empty()) c.sent_at.resize(65536);
        c.sent_at[id] = open_loop ? c.next_due : now;
        if (open_loop && now - c.next_due > std::chrono::milliseconds(10)) ++late;
        c.next_due += interval;
        ++c.in_flight;
      } else {
        ++acked;  // QoS 0: "done" once handed to the socket
      }
      ++c.sent;
      ++queued;
    }
  };

  std::vector<epoll_event> events(1024);
  while (true) {
    const bool all_connected = connected + refused + failed == count;
    if (all_connected && !publishing) break;
    if (publishing && all_connected && acked >= records) break;
    // Open loop: wake at least every millisecond to send what is due (the schedule's resolution).
    const int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), open_loop ? 1 : 1000);
    if (n == 0 && Clock::now() - started > std::chrono::minutes(open_loop ? 30 : 10)) break;
    if (open_loop && publish_started != Clock::time_point{}) {
      for (Connection& c : connections) {
        if (c.fd < 0 || !c.connected || c.next_due > Clock::now()) continue;
        enqueue(c);
        if (!flush(c)) continue;  // the failure shows on its next epoll event
        if (!c.out.empty()) {
          epoll_event event{};
          event.events = EPOLLIN | EPOLLOUT;
          event.data.u64 = static_cast<std::uint64_t>(&c - connections.data());
          ::epoll_ctl(epoll, EPOLL_CTL_MOD, c.fd, &event);
        }
      }
    }
    for (int e = 0; e < n; ++e) {
      Connection& c = connections[events[static_cast<std::size_t>(e)].data.u64];
      if (c.fd < 0) continue;
      bool alive = read_some(c);
      parse(c, [&](int type, int value) {
        if (type == 2) {
          if (value == 0) {
            c.connected = true;
            ++connected;
            if (publishing) {
              if (publish_started == Clock::time_point{}) publish_started = Clock::now();
              // Spread over one interval, so that the connections do not publish in lockstep.
              c.next_due = Clock::now() + interval * static_cast<long>(&c - connections.data()) / static_cast<long>(count);
            }
          } else {
            c.refused = true;
            ++refused;
          }
        } else if (type == 4) {
          const auto now = Clock::now();
          latencies.push_back(std::chrono::duration<double, std::milli>(now - c.sent_at[static_cast<std::size_t>(value)]).count());
          --c.in_flight;
          ++acked;
        }
      });
      if (publishing && c.connected) enqueue(c);
      if (alive) alive = flush(c);
      if (!alive || c.refused) {
        if (!c.connected && !c.refused) ++failed;
        ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
        continue;
      }
      epoll_event event{};
      // QoS 0 gets no answers to wake it: it waits for room in the socket instead.
      const bool want_write = !c.out.empty() || (publishing && qos == 0 && c.connected && queued < records);
      event.events = EPOLLIN | (want_write ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
      event.data.u64 = events[static_cast<std::size_t>(e)].data.u64;
      ::epoll_ctl(epoll, EPOLL_CTL_MOD, c.fd, &event);
    }
    if (opened < count) open_more();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (!publishing) {
    std::printf("{\"connected\":%zu,\"refused\":%zu,\"failed\":%zu,\"seconds\":%.2f}\n", connected, refused, failed, seconds);
    std::fflush(stdout);
    char byte;
    while (::read(0, &byte, 1) > 0) {
    }
    return connected == count ? 0 : 1;
  }
  const double publish_seconds = std::chrono::duration<double>(Clock::now() - publish_started).count();
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&](double p) {
    return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, static_cast<std::size_t>(p * static_cast<double>(latencies.size())))];
  };
  std::printf("{\"qos\":%d,\"connections\":%zu,\"window\":%zu,\"rate\":%.0f,\"late\":%zu,\"records\":%zu,"
              "\"seconds\":%.2f,\"records_per_s\":%.0f,\"ack_ms\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f}}\n",
              qos, connected, window, rate, late, acked, publish_seconds, static_cast<double>(acked) / publish_seconds,
              percentile(0.5), percentile(0.9), percentile(0.99), latencies.empty() ? 0.0 : latencies.back());
  return acked >= records ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (std::string(argv[1]) != "idle" && std::string(argv[1]) != "publish")) {
    std::fprintf(stderr, "usage: telegate-mqtt-bench idle|publish --port P --connections N [...] (see the source)\n");
    return 2;
  }
  return run(argc, argv);
}
