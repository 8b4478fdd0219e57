// End to end over CoAP against the real broker: coap-client (libcoap) and aiocoap → telegate
// (real binary) → Kafka, read back read_committed. Proves: CON records land exactly once, also
// when the device retransmits the same message id; NON is counted; Block1 bodies are
// reassembled; DTLS-PSK authenticates by device id and token digest; refusals carry the right
// codes; separate responses come after the commit; garbage datagrams never take the gateway down.
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gateway_process.hpp"
#include "kafka_reader.hpp"
#include "telegate/envelope/envelope.hpp"
#include "telegate/gateway/auth.hpp"

using namespace telegate;
using telegate::testing::GatewayProcess;
using telegate::testing::TempDir;

namespace {

const testing::ExpectedOrigin kFromCoap{"acme", envelope::SourceProtocol::coap};

struct Ports {
  std::uint16_t udp = testing::free_udp_port();
  std::uint16_t dtls = testing::free_udp_port();
};

std::string config_for(const std::string& run, const Ports& ports, const std::string& coap_extra,
                       int transaction_interval_ms, const std::string& top_extra = "") {
  return "instance_id: it-coap-" + run + "\n" + top_extra +
         "coap: {enabled: true, address: 127.0.0.1, port: " + std::to_string(ports.udp) +
         ", dtls: true, dtls_port: " + std::to_string(ports.dtls) + coap_extra + "}\n" +
         testing::kafka_sink_yaml("it." + run + ".{tenant}.{type}", transaction_interval_ms) +
         "device_types:\n"
         "  - {name: tracker, codec: json, coap: {path: /trk}}\n"
         "  - {name: probe, codec: json}\n"
         "tenants:\n"
         "  - name: acme\n"
         "    devices:\n"
         "      - {id: truck-1, device_type: tracker, token_sha256: " + gateway::sha256_hex("truck-1-token") + "}\n" +
         "      - {id: probe-1, device_type: probe, token_sha256: " + gateway::sha256_hex("probe-1-token") + "}\n";
}

std::string location(const std::string& msg_id, std::int64_t ts) {
  return R"({"device_id":"truck-1","type":"location","ts":)" + std::to_string(ts) + R"(,"msg_id":")" + msg_id +
         R"(","lat":46.05,"lon":14.51})";
}

std::string locations(const std::string& prefix, int count, std::int64_t ts, std::set<std::string>* ids) {
  std::string array = "[";
  for (int i = 0; i < count; ++i) {
    const std::string id = prefix + std::to_string(i);
    array += (i ? "," : "") + location(id, ts + i);
    if (ids) ids->insert(id);
  }
  return array + "]";
}

std::string write_file(const TempDir& dir, const std::string& name, const std::string& content) {
  const auto path = dir.path() / name;
  std::ofstream(path, std::ios::binary) << content;
  return path.string();
}

// coap-client from libcoap3-bin: the stdout+stderr it printed (the response payload, prefixed
// with the code for non-2.xx answers) and its exit code. -B bounds the wait.
testing::CommandResult coap_client(std::vector<std::string> args) {
  std::vector<std::string> argv = {"coap-client-openssl", "-B", "10"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = testing::run_command(argv);
  result.out += result.err;
  return result;
}

testing::CommandResult aiocoap(const std::string& uri, int content_format, const std::string& file, bool non = false) {
  const char* python = std::getenv("TELEGATE_PYTHON");
  std::vector<std::string> argv = {python && *python ? python : "python3",
                                   std::string(TELEGATE_SOURCE_DIR) + "/tests/integration/coap_aiocoap_client.py", uri,
                                   std::to_string(content_format), file};
  if (non) argv.push_back("--non");
  return testing::run_command(argv);
}

bool have_aiocoap() {
  const char* python = std::getenv("TELEGATE_PYTHON");
  return testing::run_command({python && *python ? python : "python3", "-c", "import aiocoap"}).exit_code == 0;
}

// A CoAP request datagram built by hand (RFC 7252 §3), so that the test controls the message id.
// `extra`: further options numbered above Uri-Query (15), ascending: Block1 (27), Size1 (60).
std::string datagram(bool confirmable, std::uint16_t mid, const std::string& token, const std::vector<std::string>& path,
                     const std::string& query, std::uint16_t content_format, const std::string& payload,
                     const std::vector<std::pair<int, std::string>>& extra = {}) {
  std::string out;
  out += static_cast<char>(0x40 | (confirmable ? 0 : 0x10) | static_cast<int>(token.size()));
  out += static_cast<char>(0x02);  // POST
  out += static_cast<char>(mid >> 8);
  out += static_cast<char>(mid & 0xff);
  out += token;
  int previous = 0;
  auto option = [&](int number, const std::string& value) {
    const int delta = number - previous;
    previous = number;
    auto nibble = [](std::size_t x, std::string& extended) -> int {
      if (x < 13) return static_cast<int>(x);
      if (x < 269) {
        extended += static_cast<char>(x - 13);
        return 13;
      }
      extended += static_cast<char>((x - 269) >> 8);
      extended += static_cast<char>((x - 269) & 0xff);
      return 14;
    };
    std::string delta_ext;
    std::string length_ext;
    const int d = nibble(static_cast<std::size_t>(delta), delta_ext);
    const int l = nibble(value.size(), length_ext);
    out += static_cast<char>(d << 4 | l);
    out += delta_ext + length_ext + value;
  };
  for (const auto& segment : path) option(11, segment);
  option(12, content_format < 256 ? std::string(1, static_cast<char>(content_format))
                                  : std::string{static_cast<char>(content_format >> 8), static_cast<char>(content_format & 0xff)});
  if (!query.empty()) option(15, query);
  for (const auto& [number, value] : extra) option(number, value);
  if (!payload.empty()) out += '\xff' + payload;
  return out;
}

// A CoAP uint option value: big-endian, no leading zero bytes.
std::string uint_option(std::uint32_t value) {
  std::string bytes;
  for (int shift = 24; shift >= 0; shift -= 8) {
    if (!bytes.empty() || (value >> shift) & 0xff) bytes += static_cast<char>((value >> shift) & 0xff);
  }
  return bytes;
}
std::uint32_t uint_value(const std::string& bytes) {
  std::uint32_t value = 0;
  for (const char byte : bytes) value = value << 8 | static_cast<unsigned char>(byte);
  return value;
}

struct Reply {
  int type = -1;  // 0 CON, 1 NON, 2 ACK, 3 RST
  int code = -1;  // 204 for 2.04, 0 for an empty message
  std::uint16_t mid = 0;
  std::string token;
  std::map<int, std::string> options;  // the first value of each option number
  std::string payload;
};

Reply parse_reply(const std::string& bytes) {
  Reply reply;
  if (bytes.size() < 4) return reply;
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  reply.type = (byte(0) >> 4) & 3;
  reply.code = (byte(1) >> 5) * 100 + (byte(1) & 0x1f);
  reply.mid = static_cast<std::uint16_t>(byte(2) << 8 | byte(3));
  const std::size_t token_length = byte(0) & 0x0f;
  reply.token = bytes.substr(4, token_length);
  std::size_t at = 4 + token_length;
  int number = 0;
  while (at < bytes.size() && byte(at) != 0xff) {
    int delta = byte(at) >> 4;
    int length = byte(at) & 0x0f;
    ++at;
    auto extended = [&](int& x) {
      if (x == 13 && at < bytes.size()) {
        x = 13 + byte(at);
        at += 1;
      } else if (x == 14 && at + 1 < bytes.size()) {
        x = 269 + (byte(at) << 8 | byte(at + 1));
        at += 2;
      }
    };
    extended(delta);
    extended(length);
    number += delta;
    if (at + static_cast<std::size_t>(length) > bytes.size()) break;
    reply.options.emplace(number, bytes.substr(at, static_cast<std::size_t>(length)));
    at += static_cast<std::size_t>(length);
  }
  if (at < bytes.size() && byte(at) == 0xff) reply.payload = bytes.substr(at + 1);
  return reply;
}

// A UDP "device" on loopback: sends datagrams, collects what comes back.
class UdpDevice {
 public:
  explicit UdpDevice(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
    target_.sin_family = AF_INET;
    target_.sin_port = htons(port);
    target_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  ~UdpDevice() { ::close(fd_); }
  void send(const std::string& bytes) {
    ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&target_), sizeof target_);
  }
  // Replies until `count` arrived or nothing came for `quiet`.
  std::vector<Reply> receive(std::size_t count, std::chrono::milliseconds quiet = std::chrono::milliseconds(1500)) {
    std::vector<Reply> replies;
    while (replies.size() < count) {
      pollfd fds{fd_, POLLIN, 0};
      if (::poll(&fds, 1, static_cast<int>(quiet.count())) <= 0) break;
      char buffer[2048];
      const auto length = ::recv(fd_, buffer, sizeof buffer, 0);
      if (length > 0) replies.push_back(parse_reply(std::string(buffer, static_cast<std::size_t>(length))));
    }
    return replies;
  }
  // ACKs a confirmable separate response so that the gateway stops retransmitting it.
  void ack(const Reply& reply) {
    send(std::string{'\x60', '\x00', static_cast<char>(reply.mid >> 8), static_cast<char>(reply.mid & 0xff)});
  }

 private:
  int fd_;
  sockaddr_in target_{};
};

double metric(const GatewayProcess& gateway, const std::string& series) {
  const auto body = testing::curl_get(gateway.url("/metrics")).body;
  const std::size_t at = body.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(body.c_str() + at + series.size() + 2, nullptr);
}

}  // namespace

TEST_CASE("CoAP: CON, NON, Block1, DTLS-PSK and retransmissions land in Kafka exactly once; refusals never") {
  const std::string run = testing::unique_run_id();
  const Ports ports;
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run, ports, "", 50));
  gateway.start();
  gateway.wait_ready();
  const std::string base = "coap://127.0.0.1:" + std::to_string(ports.udp);
  const std::string telemetry = base + "/v1/telemetry?t=truck-1-token";
  const std::int64_t ts = testing::unix_ms() - 10'000;
  std::set<std::string> ids;

  // coap-client, confirmable, JSON (Content-Format 50), to /v1/telemetry and to the type's path.
  auto con = coap_client({"-m", "post", "-t", "50", "-e", locations("con-", 3, ts, &ids), telemetry});
  CHECK_MESSAGE(con.exit_code == 0, con.out);
  CHECK(con.out.find("4.") == std::string::npos);
  auto put = coap_client({"-m", "put", "-t", "json", "-e", location("trk-0", ts), base + "/trk?t=truck-1-token"});
  CHECK_MESSAGE(put.exit_code == 0, put.out);
  ids.insert("trk-0");

  // Block1: a body of ~6 KB, far above one datagram, split by coap-client and by aiocoap.
  const std::string big_file = write_file(dir, "big.json", locations("blk-", 60, ts, &ids));
  auto block = coap_client({"-m", "post", "-t", "50", "-f", big_file, telemetry});
  CHECK_MESSAGE(block.exit_code == 0, block.out);
  CHECK(block.out.find("4.") == std::string::npos);

  // DTLS-PSK: identity = device id (bare or tenant-qualified), key = hex SHA-256 of the token.
  const std::string psk = gateway::sha256_hex("truck-1-token");
  const std::string coaps = "coaps://127.0.0.1:" + std::to_string(ports.dtls) + "/trk";
  auto dtls = coap_client({"-m", "post", "-t", "50", "-u", "truck-1", "-k", psk, "-e", location("dtls-0", ts), coaps});
  CHECK_MESSAGE(dtls.exit_code == 0, dtls.out);
  ids.insert("dtls-0");
  auto qualified = coap_client({"-m", "post", "-t", "50", "-u", "acme/truck-1", "-k", psk, "-e", location("dtls-1", ts),
                                "coaps://127.0.0.1:" + std::to_string(ports.dtls) + "/v1/telemetry"});
  CHECK_MESSAGE(qualified.exit_code == 0, qualified.out);
  ids.insert("dtls-1");
  auto wrong_key = coap_client({"-m", "post", "-t", "50", "-u", "truck-1", "-k", "not-the-key", "-e",
                                location("bad-dtls", ts), coaps});
  CHECK(wrong_key.out.find("2.04") == std::string::npos);

  // aiocoap: Block1 on its own terms, and NON (best effort: answered, but not retransmitted).
  if (have_aiocoap()) {
    const std::string aio_file = write_file(dir, "aio.json", locations("aio-", 40, ts, &ids));
    const auto aio = aiocoap(telemetry, 50, aio_file);
    CHECK_MESSAGE(aio.out.starts_with("2.04"), aio.out << aio.err);
    const std::string non_file = write_file(dir, "non.json", location("non-0", ts));
    const auto non = aiocoap(telemetry, 50, non_file, true);
    CHECK_MESSAGE((non.out.starts_with("2.04") || non.out.starts_with("timeout")), non.out << non.err);
    ids.insert("non-0");
    CHECK(metric(gateway, "telegate_coap_requests_total{type=\"non\"}") >= 1);
  } else {
    MESSAGE("aiocoap not importable (run scripts/test, or TELEGATE_PYTHON=$(scripts/python-env)): skipping its part");
  }

  // Retransmission: the same datagram (same endpoint, same message id) twice, after the answer
  // and back to back. Each gets the same answer; each record is ingested once.
  {
    UdpDevice device(ports.udp);
    const std::string first = datagram(true, 0x4242, "\x01\x02", {"v1", "telemetry"}, "t=truck-1-token", 50,
                                       location("dup-0", ts));
    device.send(first);
    const auto original = device.receive(1);
    REQUIRE(original.size() == 1);
    CHECK(original[0].type == 2);
    CHECK(original[0].code == 204);
    device.send(first);
    const auto again = device.receive(1);
    REQUIRE(again.size() == 1);
    CHECK(again[0].mid == 0x4242);
    CHECK(again[0].code == 204);
    const std::string second = datagram(true, 0x4243, "\x03", {"v1", "telemetry"}, "t=truck-1-token", 50,
                                        location("dup-1", ts));
    device.send(second);
    device.send(second);
    const auto both = device.receive(4);
    for (const auto& reply : both) {
      if (reply.type == 0) device.ack(reply);  // a separate response, if the wait was cut short
    }
    CHECK(std::any_of(both.begin(), both.end(), [](const Reply& reply) { return reply.code == 204; }));
    ids.insert({"dup-0", "dup-1"});
    CHECK(metric(gateway, "telegate_coap_duplicates_total") >= 2);
  }

  // Refusals, each with its code and a diagnostic payload.
  auto unauthenticated = coap_client({"-m", "post", "-t", "50", "-e", location("bad-token", ts), base + "/v1/telemetry?t=nope"});
  CHECK_MESSAGE(unauthenticated.out.find("4.01") != std::string::npos, unauthenticated.out);
  auto no_credentials = coap_client({"-m", "post", "-t", "50", "-e", location("bad-none", ts), base + "/v1/telemetry"});
  CHECK_MESSAGE(no_credentials.out.find("4.01") != std::string::npos, no_credentials.out);
  auto unsupported = coap_client({"-m", "post", "-t", "0", "-e", location("bad-format", ts), telemetry});
  CHECK_MESSAGE(unsupported.out.find("4.15") != std::string::npos, unsupported.out);
  auto malformed = coap_client({"-m", "post", "-t", "50", "-e", "[{\"device_id\":", telemetry});
  CHECK_MESSAGE(malformed.out.find("4.00") != std::string::npos, malformed.out);
  CHECK(malformed.out.find("malformed") != std::string::npos);
  auto forbidden = coap_client({"-m", "post", "-t", "50", "-e", location("bad-forbidden", ts), base + "/trk?t=probe-1-token"});
  CHECK_MESSAGE(forbidden.out.find("4.03") != std::string::npos, forbidden.out);
  auto not_found = coap_client({"-m", "post", "-t", "50", "-e", location("bad-path", ts), base + "/nowhere?t=truck-1-token"});
  CHECK_MESSAGE(not_found.out.find("4.04") != std::string::npos, not_found.out);
  const std::string too_big = write_file(dir, "huge.json", "[" + std::string(80 * 1024, ' ') + "]");
  auto too_large = coap_client({"-m", "post", "-t", "50", "-f", too_big, telemetry});
  CHECK_MESSAGE(too_large.out.find("4.13") != std::string::npos, too_large.out);
  auto rejected = coap_client({"-m", "post", "-t", "50", "-e", R"({"device_id":"truck-1","type":"location","ts":)" + std::to_string(ts) + R"(,"msg_id":"bad-lat","lat":91,"lon":1})", telemetry});
  CHECK_MESSAGE(rejected.out.find("4.22") != std::string::npos, rejected.out);
  CHECK_MESSAGE(rejected.out.find("\"field\":\"lat\"") != std::string::npos, rejected.out);

  // Garbage: random datagrams, truncations of a valid one, absurd options. Nothing may crash.
  {
    UdpDevice device(ports.udp);
    std::mt19937 random(7);
    const std::string valid = datagram(true, 0x5000, "\x09", {"v1", "telemetry"}, "t=truck-1-token", 50,
                                       location("bad-truncated", ts));
    for (std::size_t cut = 0; cut < valid.size(); cut += 3) device.send(valid.substr(0, cut));
    for (int i = 0; i < 400; ++i) {
      std::string junk(random() % 300, '\0');
      for (char& c : junk) c = static_cast<char>(random());
      if (i % 2 == 0 && junk.size() >= 4) junk[0] = static_cast<char>(0x40 | (junk[0] & 0x3f));  // version 1
      device.send(junk);
    }
    device.receive(1000, std::chrono::milliseconds(300));
  }
  auto after = coap_client({"-m", "post", "-t", "50", "-e", location("after-junk", ts), telemetry});
  CHECK_MESSAGE(after.exit_code == 0, after.out);
  ids.insert("after-junk");
  CHECK(gateway.running());

  const auto seen =
      testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", ids.size(), kFromCoap);
  for (const auto& id : ids) CHECK_MESSAGE(seen.count(id) == 1, "msg_id " << id);
  for (const auto& [id, count] : seen) {
    CHECK_MESSAGE(count == 1, "duplicate in Kafka: " << id);
    CHECK_MESSAGE(!id.starts_with("bad"), "refused record in Kafka: " << id);
  }
  CHECK(metric(gateway, "telegate_coap_sink_responses_total{mode=\"piggybacked\"}") >= 1);
}

TEST_CASE("CoAP: a slow commit gets an empty ACK, then a separate 2.04; a retransmission is not ingested again") {
  const std::string run = testing::unique_run_id();
  const Ports ports;
  TempDir dir;
  // Commits every 600 ms and no piggyback wait: every CON is answered separately.
  GatewayProcess gateway(dir.path(), config_for(run, ports, ", piggyback_wait_ms: 0", 600));
  gateway.start();
  gateway.wait_ready();
  const std::int64_t ts = testing::unix_ms() - 10'000;

  auto client = coap_client({"-m", "post", "-t", "50", "-e", location("sep-0", ts),
                             "coap://127.0.0.1:" + std::to_string(ports.udp) + "/v1/telemetry?t=truck-1-token"});
  CHECK_MESSAGE(client.exit_code == 0, client.out);
  CHECK(client.out.find("4.") == std::string::npos);

  UdpDevice device(ports.udp);
  const std::string request = datagram(true, 0x7001, "\x11\x22\x33", {"v1", "telemetry"}, "t=truck-1-token", 50,
                                       location("sep-1", ts));
  device.send(request);
  const auto empty_ack = device.receive(1);
  REQUIRE(empty_ack.size() == 1);
  CHECK(empty_ack[0].type == 2);
  CHECK(empty_ack[0].code == 0);
  CHECK(empty_ack[0].mid == 0x7001);
  device.send(request);  // retransmitted while pending: another empty ACK, nothing ingested
  const auto responses = device.receive(2, std::chrono::milliseconds(3000));
  const auto separate = std::find_if(responses.begin(), responses.end(), [](const Reply& r) { return r.type == 0; });
  REQUIRE(separate != responses.end());
  CHECK(separate->code == 204);
  CHECK(separate->token == "\x11\x22\x33");
  device.ack(*separate);
  device.send(request);  // after the separate response: an empty ACK again
  const auto late = device.receive(1);
  REQUIRE(late.size() == 1);
  CHECK(late[0].type == 2);
  CHECK(late[0].code == 0);

  const auto seen =
      testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", 2, kFromCoap);
  CHECK(seen.size() == 2);
  CHECK(seen.count("sep-0") == 1);
  CHECK(seen.count("sep-1") == 1);
  for (const auto& [id, count] : seen) CHECK_MESSAGE(count == 1, "duplicate in Kafka: " << id);
  CHECK(metric(gateway, "telegate_coap_sink_responses_total{mode=\"separate\"}") >= 2);
  CHECK(metric(gateway, "telegate_coap_duplicates_total") >= 2);
}

TEST_CASE("CoAP Block1: 4.13 with Size1 comes at the block that crosses max_body_bytes, not after the body") {
  const std::string run = testing::unique_run_id();
  const Ports ports;
  TempDir dir;
  GatewayProcess gateway(dir.path(), config_for(run, ports, ", max_body_bytes: 4096", 50));
  gateway.start();
  gateway.wait_ready();
  const std::int64_t ts = testing::unix_ms() - 10'000;
  UdpDevice device(ports.udp);
  std::uint16_t mid = 0x9000;
  constexpr int kSzx1024 = 6;
  auto block = [&](const std::string& body, std::uint32_t num, std::optional<std::uint32_t> size1 = {}) {
    const std::string piece = body.substr(num * 1024, 1024);
    const bool more = (num + 1) * 1024 < body.size();
    std::vector<std::pair<int, std::string>> extra{{27, uint_option(num << 4 | (more ? 8 : 0) | kSzx1024)}};
    if (size1) extra.emplace_back(60, uint_option(*size1));
    device.send(datagram(true, mid++, "\x0b", {"v1", "telemetry"}, "t=truck-1-token", 50, piece, extra));
    auto replies = device.receive(1);
    REQUIRE(replies.size() == 1);
    return replies[0];
  };

  // A 100 KB body of records, sent block by block: blocks 0..3 (4096 bytes) are taken with 2.31
  // and their Block1 echoed; block 4 would cross 4096 and is refused at once, with Size1 = 4096.
  std::string huge = "[";
  for (int i = 0; huge.size() < 100 * 1024; ++i) huge += (i ? "," : "") + location("bad-huge-" + std::to_string(i), ts + i);
  huge += "]";
  for (std::uint32_t num = 0; num < 4; ++num) {
    const Reply reply = block(huge, num);
    CHECK(reply.type == 2);
    CHECK(reply.code == 231);
    REQUIRE(reply.options.count(27) == 1);
    CHECK(uint_value(reply.options.at(27)) == (num << 4 | 8 | kSzx1024));
  }
  const Reply refused = block(huge, 4);
  CHECK(refused.code == 413);
  REQUIRE(refused.options.count(60) == 1);
  CHECK(uint_value(refused.options.at(60)) == 4096);
  // The transfer is gone: a later block belongs to nothing (4.08), it is never ingested.
  CHECK(block(huge, 5).code == 408);

  // A client that announces the total (Size1) is refused at block 0, before anything is stored.
  const Reply announced = block(huge, 0, static_cast<std::uint32_t>(huge.size()));
  CHECK(announced.code == 413);
  CHECK(uint_value(announced.options.at(60)) == 4096);

  // Out of order: block 1 without block 0 → 4.08 Request Entity Incomplete.
  CHECK(block(huge, 1).code == 408);

  // A body within the limit, in three blocks, lands once; the final answer echoes the last block.
  std::set<std::string> ids;
  std::string fits = locations("blk-ok-", 24, ts, &ids);
  REQUIRE(fits.size() > 2048);
  REQUIRE(fits.size() <= 3072);
  CHECK(block(fits, 0).code == 231);
  CHECK(block(fits, 1).code == 231);
  Reply last = block(fits, 2);
  if (last.type == 2 && last.code == 0) {  // empty ACK: the separate response follows
    const auto separate = device.receive(1, std::chrono::milliseconds(3000));
    REQUIRE(separate.size() == 1);
    device.ack(separate[0]);
    last = separate[0];
  }
  CHECK(last.code == 204);
  REQUIRE(last.options.count(27) == 1);
  CHECK(uint_value(last.options.at(27)) == (2u << 4 | kSzx1024));

  // coap-client with a body above the limit gets 4.13 too.
  const std::string too_big = write_file(dir, "huge.json", huge);
  auto client = coap_client({"-m", "post", "-t", "50", "-f", too_big, "coap://127.0.0.1:" + std::to_string(ports.udp) +
                                                                          "/v1/telemetry?t=truck-1-token"});
  CHECK_MESSAGE(client.out.find("4.13") != std::string::npos, client.out);
  CHECK(gateway.running());

  const auto seen =
      testing::committed_copies(testing::kafka_bootstrap(), "it." + run + ".acme.location", ids.size(), kFromCoap);
  for (const auto& id : ids) CHECK_MESSAGE(seen.count(id) == 1, "msg_id " << id);
  for (const auto& [id, count] : seen) {
    CHECK_MESSAGE(count == 1, "duplicate in Kafka: " << id);
    CHECK_MESSAGE(!id.starts_with("bad"), "refused record in Kafka: " << id);
  }
}

TEST_CASE("CoAP: over a rate quota, 4.29 Too Many Requests with Max-Age (RFC 8516)") {
  const std::string run = testing::unique_run_id();
  const Ports ports;
  TempDir dir;
  // 2 records saved up, then one every 10 s: the second request is 2 records too many.
  GatewayProcess gateway(dir.path(),
                         config_for(run, ports, "", 50, "quotas: {device: {records_per_second: 0.1, burst: 2}}\n"));
  gateway.start();
  gateway.wait_ready();
  const std::int64_t ts = testing::unix_ms() - 10'000;
  const std::string uri = "coap://127.0.0.1:" + std::to_string(ports.udp) + "/v1/telemetry?t=truck-1-token";
  const auto within = coap_client({"-m", "post", "-t", "50", "-e", locations("quota-a-", 2, ts, nullptr), uri});
  CHECK_MESSAGE(within.exit_code == 0, within.out);
  CHECK(within.out.find("4.") == std::string::npos);

  UdpDevice device(ports.udp);
  device.send(datagram(true, 0xA001, "\x42", {"v1", "telemetry"}, "t=truck-1-token", 50, locations("quota-b-", 2, ts, nullptr)));
  const auto replies = device.receive(1);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].type == 2);  // piggybacked: refused at once
  CHECK(replies[0].code == 429);
  REQUIRE(replies[0].options.count(14) == 1);  // Max-Age: when the quota lets 2 records through
  CHECK(uint_value(replies[0].options.at(14)) >= 10);
  CHECK(uint_value(replies[0].options.at(14)) <= 20);
  CHECK(metric(gateway, "telegate_records_rejected_total{protocol=\"coap\",reason=\"quota_exceeded\"}") == 2);
}
